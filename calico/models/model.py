"""BEVModel: the CALICO fine-tuning architecture (BEVFusion restructured, App. B) and ``build_model``.

f_LiDAR (``lidar_backbone``) and f_Camera (``camera_backbone`` + ``view_transform``) give F^LiDAR / F^Camera on
the shared BEV grid; each goes through its own decoder; one conv fuses them late; CenterPoint and map
segmentation heads read the fused map. Parts are chosen from small dicts (no global registry).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from calico.config import DataConfig, ModelConfig
from calico.models.camera import CameraBackbone, LSSTransform
from calico.models.centerpoint import CenterHead
from calico.models.decoders import BEVDecoder, ConvFuser
from calico.models.pointpillars import PointPillarsBackbone
from calico.models.seg_head import SegHead
from calico.models.transfusion import TransFusionHead
from calico.models.voxelnet import VoxelNetBackbone

# the named choices per kind of part, picked by model.lidar_backbone / view_transform / det_head (a LiDAR
# backbone: batch in, BEV map out; a det head: fused map in, loss / decode as CenterHead)
LIDAR_BACKBONES = {"pointpillars": PointPillarsBackbone, "voxelnet": VoxelNetBackbone}
VIEW_TRANSFORMS = {"lss": LSSTransform}
DET_HEADS = {"centerpoint": CenterHead, "transfusion": TransFusionHead}
CHOICES = {"lidar_backbone": LIDAR_BACKBONES, "view_transform": VIEW_TRANSFORMS, "det_head": DET_HEADS}
PART_NAMES = ("lidar_backbone", "camera_backbone", "view_transform", "lidar_decoder", "camera_decoder",
              "fuser", "det_head", "seg_head")


class BEVModel(nn.Module):
    """L, C or L+C BEV perception model; absent parts are ``None``."""

    def __init__(self, cfg: ModelConfig, data: DataConfig):
        super().__init__()
        for key, options in CHOICES.items():
            if getattr(cfg, key) not in options:
                raise ValueError(f"model.{key}={getattr(cfg, key)!r} is not built here; choose one of {sorted(options)}")
        if cfg.modality not in ("L", "C", "L+C"):
            raise ValueError(f"model.modality must be 'L', 'C' or 'L+C', got {cfg.modality!r}")
        if not (cfg.with_det or cfg.with_seg):
            raise ValueError("model.with_det and model.with_seg are both off: the model would have no head")
        self.cfg, self.data = cfg, data
        self.use_lidar = "L" in cfg.modality
        self.use_camera = "C" in cfg.modality
        dc = cfg.decoder_channels
        self.lidar_backbone = LIDAR_BACKBONES[cfg.lidar_backbone](cfg, data) if self.use_lidar else None
        self.lidar_decoder = BEVDecoder(cfg.lidar_channels, dc, cfg.decoder_layers) if self.use_lidar else None
        self.camera_backbone = CameraBackbone(cfg, data) if self.use_camera else None
        self.view_transform = VIEW_TRANSFORMS[cfg.view_transform](cfg, data) if self.use_camera else None
        self.camera_decoder = BEVDecoder(cfg.camera_channels, dc, cfg.decoder_layers) if self.use_camera else None
        self.fuser = ConvFuser(dc, int(self.use_lidar) + int(self.use_camera))
        self.det_head = DET_HEADS[cfg.det_head](cfg, data, dc) if cfg.with_det else None
        self.seg_head = SegHead(cfg, data, dc) if cfg.with_seg else None

    def part_names(self) -> list[str]:
        """Names of the parts this model has (the keys pre-trained checkpoints are organised by)."""
        return [n for n in PART_NAMES if getattr(self, n) is not None]

    def extract(self, batch: dict, decoded: bool = False) -> dict[str, torch.Tensor | None]:
        """F^LiDAR (B, lidar_channels, S, S) and F^Camera (B, camera_channels, S, S); None for an absent modality.

        ``decoded=True`` returns the per-modality decoder outputs instead (B, decoder_channels, S, S): App. B's
        "separate decoders so pre-training covers more parameters" reading, for pre-training that wants them.
        """
        lidar = self.lidar_backbone(batch) if self.use_lidar else None
        camera = None
        if self.use_camera:
            for key in ("images", "intrinsics", "cam2lidar"):
                if batch.get(key) is None:
                    raise KeyError(f"modality {self.cfg.modality!r} needs batch[{key!r}] (data.load_images on?)")
            camera = self.view_transform(self.camera_backbone(batch["images"]), batch)
        if decoded:
            lidar = self.lidar_decoder(lidar) if lidar is not None else None
            camera = self.camera_decoder(camera) if camera is not None else None
        return {"lidar_bev": lidar, "camera_bev": camera}

    def forward(self, batch: dict) -> dict:
        """Runs everything: ``lidar_bev``, ``camera_bev``, ``fused``, ``det`` (per-task head maps), ``seg`` logits."""
        out: dict = dict(self.extract(batch))
        maps = []
        if out["lidar_bev"] is not None:
            maps.append(self.lidar_decoder(out["lidar_bev"]))
        if out["camera_bev"] is not None:
            maps.append(self.camera_decoder(out["camera_bev"]))
        out["fused"] = self.fuser(maps)
        if self.det_head is not None:
            out["det"] = self.det_head(out["fused"])
        if self.seg_head is not None:
            out["seg"] = self.seg_head(out["fused"])
        return out

    def loss(self, out: dict, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """Detection loss (needs gt_boxes/gt_labels) + segmentation loss (needs map_masks); stats by name."""
        total = out["fused"].new_zeros(())
        stats: dict[str, float] = {}
        if self.det_head is not None:
            if "gt_boxes" not in batch or "gt_labels" not in batch:
                raise KeyError("detection loss needs batch['gt_boxes'] and batch['gt_labels']")
            det, s = self.det_head.loss(out["det"], batch["gt_boxes"], batch["gt_labels"])
            total = total + det
            stats.update(s)
            stats["det"] = float(det.detach())
        if self.seg_head is not None:
            if batch.get("map_masks") is None:
                raise KeyError("segmentation loss needs batch['map_masks'] (run calico prepare with maps, or "
                               "set model.with_seg=false)")
            seg, s = self.seg_head.loss(out["seg"], batch["map_masks"])
            total = total + seg
            stats.update(s)
            stats["seg"] = float(seg.detach())
        stats["total"] = float(total.detach())
        return total, stats

    def decode(self, out: dict) -> list[dict[str, torch.Tensor]]:
        """Per sample {"boxes": (K, 9), "scores": (K,), "labels": (K,)}; [] when the model has no det head.
        Segmentation probabilities are ``out["seg"].sigmoid()``."""
        return self.det_head.decode(out["det"]) if self.det_head is not None else []


def build_model(cfg: ModelConfig, data: DataConfig) -> BEVModel:
    """Build the model the config describes (modality, heads, sizes)."""
    model = BEVModel(cfg, data)
    # One BatchNorm momentum for every part (timm's backbones included): OpenPCDet's 0.01 leaves the
    # running statistics far from the batch statistics for hundreds of steps, so a short run evaluates
    # (eval mode) a different network from the one it trained; 0.1 converges in tens of steps.
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = cfg.bn_momentum
    return model


def count_params(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def param_report(model: BEVModel) -> str:
    """A markdown table of parameter counts per named part, with each part's share of the total."""
    total = count_params(model)
    lines = ["| part | parameters | share |", "|---|---:|---:|"]
    for name in model.part_names():
        n = count_params(getattr(model, name))
        lines.append(f"| {name} | {n:,} | {100 * n / max(total, 1):.1f}% |")
    lines.append(f"| **total** | {total:,} | 100% |")
    return "\n".join(lines)
