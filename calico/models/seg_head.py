"""BEV map-segmentation head (BEVFusion style): resample the fused BEV map onto the segmentation grid, a few
convs, one logit per map class; per-class sigmoid focal (or BCE) loss against ``batch["map_masks"]``."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from calico.config import MAP_CLASSES, DataConfig, ModelConfig
from calico.models.bev import resample_bev
from calico.models.pointpillars import conv_bn_relu


class SegHead(nn.Module):
    """Fused map (B, C, S, S) -> logits (B, 6, seg_size, seg_size) on the raster of calico.models.bev."""

    def __init__(self, cfg: ModelConfig, data: DataConfig, in_channels: int):
        super().__init__()
        r = data.point_cloud_range
        self.src_range = (r[0], r[1], r[3], r[4])
        self.seg_range, self.seg_size, self.loss_kind = cfg.seg_range, cfg.seg_size, cfg.seg_loss
        c = cfg.head_channels
        self.convs = nn.Sequential(conv_bn_relu(in_channels, c), conv_bn_relu(c, c), nn.Conv2d(c, len(MAP_CLASSES), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(resample_bev(x, self.src_range, self.seg_range, self.seg_size))

    def loss(self, logits: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean loss per class, summed over classes (BEVFusion); stats per class."""
        if masks.shape != logits.shape:
            raise ValueError(f"map_masks must be (B, {len(MAP_CLASSES)}, {self.seg_size}, {self.seg_size}) "
                             f"to match model.seg_size; got {tuple(masks.shape)}")
        target = masks.to(logits.dtype)
        if self.loss_kind == "focal":
            per = sigmoid_focal_loss(logits.float(), target.float(), alpha=0.25, gamma=2.0, reduction="none")
        elif self.loss_kind == "bce":
            per = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
        else:
            raise ValueError(f"model.seg_loss must be 'focal' or 'bce', got {self.loss_kind!r}")
        per_class = per.mean((0, 2, 3))
        stats = {f"seg/{n}": float(v) for n, v in zip(MAP_CLASSES, per_class.detach())}
        return per_class.sum(), stats
