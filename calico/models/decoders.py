"""Per-modality BEV decoders and the late conv fuser (CALICO App. B: BEVFusion with separate decoders,
fusion moved late as one conv)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from calico.models.pointpillars import conv_bn_relu


class BEVDecoder(nn.Module):
    """Two-level SECOND/FPN-style decoder on one modality's BEV map (BEVFusion's decoder, per modality):
    level 1 at stride 1, level 2 at stride 2, upsampled and concatenated, projected to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, layers: int):
        super().__init__()
        c = out_channels
        self.level1 = nn.Sequential(conv_bn_relu(in_channels, c), *[conv_bn_relu(c, c) for _ in range(layers)])
        self.level2 = nn.Sequential(conv_bn_relu(c, c, 3, 2), *[conv_bn_relu(c, c) for _ in range(layers)])
        self.out = conv_bn_relu(2 * c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.level1(x)
        b = self.level2(a)
        b = F.interpolate(b, size=a.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(torch.cat([a, b], 1))


class ConvFuser(nn.Module):
    """One conv merging the decoded LiDAR and camera maps; identity when only one map is present."""

    def __init__(self, channels: int, num_inputs: int):
        super().__init__()
        self.num_inputs = num_inputs
        self.conv = conv_bn_relu(channels * num_inputs, channels) if num_inputs > 1 else nn.Identity()

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        if len(maps) != self.num_inputs:
            raise ValueError(f"fuser built for {self.num_inputs} maps, got {len(maps)}")
        return self.conv(torch.cat(maps, 1)) if self.num_inputs > 1 else maps[0]
