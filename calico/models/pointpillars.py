"""LiDAR branch f_LiDAR: PointPillars (pillarisation, PillarFeatureNet, scatter) + SECOND 2-D backbone + FPN neck.

``PointPillarsBackbone(batch) -> (B, lidar_channels, bev_size, bev_size)``: the ``lidar_backbone`` part.
Any module with the same call signature (a batch in, a BEV map out) can replace it, e.g. a sparse VoxelNet.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from calico.config import DataConfig, ModelConfig
from calico.data.batch import batch_size_of
from calico.models.voxelize import Pillars, grid_shape, pillarize


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False),
                         nn.BatchNorm2d(cout, eps=1e-3), nn.ReLU(inplace=True))


class PillarFeatureNet(nn.Module):
    """Decorate each point (x,y,z,intensity,dt + offset to pillar mean (3) + offset to pillar centre (3)),
    a linear+BN+ReLU layer, max over the pillar's points."""

    def __init__(self, out_channels: int, voxel_size: tuple[float, ...], pc_range: tuple[float, ...]):
        super().__init__()
        self.linear = nn.Linear(5 + 3 + 3, out_channels, bias=False)
        self.norm = nn.BatchNorm1d(out_channels, eps=1e-3)
        self.register_buffer("voxel_size", torch.tensor(voxel_size, dtype=torch.float32), persistent=False)
        self.register_buffer("lo", torch.tensor(pc_range[:3], dtype=torch.float32), persistent=False)
        self.z_centre = (pc_range[2] + pc_range[5]) / 2  # one pillar spans the whole z range

    def forward(self, p: Pillars) -> torch.Tensor:
        feats, n = p.features, p.num_points
        if feats.shape[0] == 0:  # no point in range anywhere in the batch: an empty pseudo-image
            return feats.new_zeros(0, self.linear.out_features)
        T = feats.shape[1]
        mask = (torch.arange(T, device=feats.device)[None] < n[:, None]).unsqueeze(-1).to(feats.dtype)
        xyz = feats[..., :3]
        mean = (xyz * mask).sum(1, keepdim=True) / n.clamp(min=1).view(-1, 1, 1).to(feats.dtype)
        centre = torch.stack([
            p.coords[:, 2].to(feats.dtype) * self.voxel_size[0] + self.lo[0] + self.voxel_size[0] / 2,
            p.coords[:, 1].to(feats.dtype) * self.voxel_size[1] + self.lo[1] + self.voxel_size[1] / 2,
            torch.full_like(p.coords[:, 0], 0).to(feats.dtype) + self.z_centre,
        ], 1).unsqueeze(1)
        x = self.linear(torch.cat([feats, xyz - mean, xyz - centre], -1))
        # BatchNorm statistics over real points only (padded slots would bias them towards the zero input)
        valid = mask.squeeze(-1).bool()
        y = x.new_full(x.shape, float("-inf"))
        y[valid] = self.norm(x[valid]).relu()
        return y.amax(1)  # every pillar has >= 1 point, so no -inf survives


class SECOND(nn.Module):
    """SECOND-style 2-D backbone: one strided conv then ``layers[i]`` 3x3 convs per level."""

    def __init__(self, cin: int, layers: tuple[int, ...], strides: tuple[int, ...], channels: tuple[int, ...]):
        super().__init__()
        self.blocks = nn.ModuleList()
        for n, s, c in zip(layers, strides, channels):
            block = [conv_bn_relu(cin, c, 3, s)] + [conv_bn_relu(c, c) for _ in range(n)]
            self.blocks.append(nn.Sequential(*block))
            cin = c

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for b in self.blocks:
            x = b(x)
            outs.append(x)
        return outs


class SECONDFPN(nn.Module):
    """Upsample every level to the first level's resolution, concatenate, and project to ``out_channels``."""

    def __init__(self, in_channels: tuple[int, ...], strides: tuple[int, ...], neck_channels: tuple[int, ...],
                 out_channels: int):
        super().__init__()
        self.ups = nn.ModuleList()
        rel = 1
        for i, (cin, cout) in enumerate(zip(in_channels, neck_channels)):
            if i > 0:
                rel *= strides[i]
            if rel == 1:
                self.ups.append(conv_bn_relu(cin, cout, 1))
            else:
                self.ups.append(nn.Sequential(nn.ConvTranspose2d(cin, cout, rel, rel, bias=False),
                                              nn.BatchNorm2d(cout, eps=1e-3), nn.ReLU(inplace=True)))
        self.out = conv_bn_relu(sum(neck_channels), out_channels)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.out(torch.cat([up(f) for up, f in zip(self.ups, feats)], 1))


class PointPillarsBackbone(nn.Module):
    """f_LiDAR: batch["points"] -> F^LiDAR (B, lidar_channels, bev_size, bev_size)."""

    def __init__(self, cfg: ModelConfig, data: DataConfig):
        super().__init__()
        self.pc_range = tuple(data.point_cloud_range)
        self.voxel_size = tuple(cfg.voxel_size)
        self.max_points = cfg.max_points_per_voxel
        self.max_voxels = cfg.max_voxels
        self.voxelizer = cfg.voxelizer
        self.ny, self.nx = grid_shape(self.pc_range, self.voxel_size)
        first = cfg.backbone_strides[0]
        if self.nx != self.ny or self.nx % first or self.nx // first != cfg.bev_size:
            raise ValueError(f"LiDAR grid {self.ny}x{self.nx} pillars with first stride {first} does not give "
                             f"model.bev_size={cfg.bev_size}; adjust voxel_size / point_cloud_range / strides")
        self.pfn = PillarFeatureNet(cfg.pfn_channels, self.voxel_size, self.pc_range)
        self.backbone = SECOND(cfg.pfn_channels, cfg.backbone_layers, cfg.backbone_strides, cfg.backbone_channels)
        self.neck = SECONDFPN(cfg.backbone_channels, cfg.backbone_strides, cfg.neck_channels, cfg.lidar_channels)

    def pillarize(self, points: torch.Tensor, batch_size: int) -> Pillars:
        return pillarize(points, self.pc_range, self.voxel_size, self.max_points, self.max_voxels,
                         batch_size, self.voxelizer)

    def scatter(self, pillar_feats: torch.Tensor, coords: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Pillar features (V, C) -> pseudo-image (B, C, ny, nx), rows along +y (calico.models.bev)."""
        C = pillar_feats.shape[1]
        canvas = pillar_feats.new_zeros(batch_size * self.ny * self.nx, C)
        flat = (coords[:, 0] * self.ny + coords[:, 1]) * self.nx + coords[:, 2]
        canvas = canvas.index_copy(0, flat, pillar_feats)
        return canvas.view(batch_size, self.ny, self.nx, C).permute(0, 3, 1, 2).contiguous()

    def forward(self, batch: dict) -> torch.Tensor:
        points = batch["points"]
        B = batch_size_of(batch)
        pillars = self.pillarize(points, B)
        x = self.scatter(self.pfn(pillars), pillars.coords, B)
        return self.neck(self.backbone(x))


