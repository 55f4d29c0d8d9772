"""Camera branch f_Camera: timm image backbone + FPN neck (``camera_backbone``) and the LSS view transform
(``view_transform``: depth net, frustum -> LiDAR frame, cumulative BEV pooling, small BEV conv)."""

from __future__ import annotations

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from calico.config import DataConfig, ModelConfig
from calico.models.pointpillars import conv_bn_relu


class CameraBackbone(nn.Module):
    """timm backbone (features_only) + FPN neck: images (B, N, 3, H, W) -> (B*N, neck_channels, H/s, W/s)."""

    def __init__(self, cfg: ModelConfig, data: DataConfig):
        super().__init__()
        self.stride = cfg.camera_feat_stride
        kwargs = dict(pretrained=cfg.camera_pretrained, features_only=True)
        self.net = self._create(cfg, data, kwargs)
        red = self.net.feature_info.reduction()
        if max(red) > cfg.camera_max_stride:
            # Drop the deepest stages (timm truncates the network): most of the parameters, a quarter of
            # the FLOPs of a ResNet; the cpu preset keeps strides <= 16.
            keep = tuple(i for i, r in enumerate(red) if r <= cfg.camera_max_stride)
            self.net = self._create(cfg, data, dict(kwargs, out_indices=keep))
            red = self.net.feature_info.reduction()
        chans = self.net.feature_info.channels()
        self.levels = [i for i, r in enumerate(red) if r >= self.stride]
        if not self.levels or red[self.levels[0]] != self.stride:
            raise ValueError(f"{cfg.camera_backbone} has no feature level at stride {self.stride} (has {red})")
        # Swin in timm returns NHWC feature maps
        self.nhwc = str(getattr(self.net, "output_fmt", "NCHW")).upper().endswith("NHWC")
        c = cfg.camera_neck_channels
        self.lateral = nn.ModuleList([nn.Conv2d(chans[i], c, 1) for i in self.levels])
        self.out = conv_bn_relu(c, c)

    @staticmethod
    def _create(cfg: ModelConfig, data: DataConfig, kwargs: dict) -> nn.Module:
        try:  # ViT/Swin need the real input size; CNNs reject the argument
            return timm.create_model(cfg.camera_backbone, img_size=tuple(data.image_size), **kwargs)
        except TypeError:
            return timm.create_model(cfg.camera_backbone, **kwargs)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        B, N = images.shape[:2]
        feats = self.net(images.flatten(0, 1))
        feats = [feats[i] for i in self.levels]
        if self.nhwc:
            feats = [f.permute(0, 3, 1, 2) for f in feats]
        x = self.lateral[-1](feats[-1].contiguous())
        for lat, f in zip(reversed(self.lateral[:-1]), reversed(feats[:-1])):
            x = lat(f.contiguous()) + F.interpolate(x, size=f.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(x)


class LSSTransform(nn.Module):
    """Lift-Splat-Shoot: per pixel a depth distribution x context features, lifted along the camera ray,
    transformed to the LiDAR frame and sum-pooled into BEV cells, then a small BEV conv."""

    def __init__(self, cfg: ModelConfig, data: DataConfig):
        super().__init__()
        d0, d1, dd = cfg.depth_bound
        self.register_buffer("depths", torch.arange(d0, d1, dd, dtype=torch.float32), persistent=False)
        self.D = int(self.depths.numel())
        self.C = cfg.camera_channels
        self.pc_range = tuple(data.point_cloud_range)
        self.image_size = tuple(data.image_size)
        self.stride = cfg.camera_feat_stride
        self.k = cfg.camera_bev_downsample
        self.grid = cfg.bev_size * self.k  # LSS pooling grid (finer than the BEV map by k)
        self.depthnet = nn.Conv2d(cfg.camera_neck_channels, self.D + self.C, 1)
        if self.k > 1:  # BEVFusion's downsample block
            self.bev_conv = nn.Sequential(conv_bn_relu(self.C, self.C), conv_bn_relu(self.C, self.C, 3, self.k),
                                          conv_bn_relu(self.C, self.C))
        else:
            self.bev_conv = conv_bn_relu(self.C, self.C)

    def frustum_points(self, intrinsics: torch.Tensor, cam2lidar: torch.Tensor, fH: int, fW: int) -> torch.Tensor:
        """LiDAR-frame points (B, N, D, fH, fW, 3) of every (depth bin, feature cell) of every camera.

        A feature cell (r, c) looks through the image pixel at its centre, u = (c + 0.5) * W / fW - 0.5
        (pixel centres at integer coordinates, as the intrinsics of the resized image assume). At least float32,
        outside autocast: bf16 einsums would misplace points at 60 m by ~0.25 m, most of a 0.3 m pooling cell.
        """
        dt = torch.promote_types(torch.promote_types(intrinsics.dtype, cam2lidar.dtype), torch.float32)
        with torch.autocast("cuda", enabled=False), torch.autocast("cpu", enabled=False):
            return self._frustum_points(intrinsics.to(dt), cam2lidar.to(dt), fH, fW)

    def _frustum_points(self, intrinsics: torch.Tensor, cam2lidar: torch.Tensor, fH: int, fW: int) -> torch.Tensor:
        H, W = self.image_size
        dev, dt = intrinsics.device, intrinsics.dtype
        u = (torch.arange(fW, device=dev, dtype=dt) + 0.5) * (W / fW) - 0.5
        v = (torch.arange(fH, device=dev, dtype=dt) + 0.5) * (H / fH) - 0.5
        d = self.depths.to(dev, dt)
        dd, vv, uu = torch.meshgrid(d, v, u, indexing="ij")
        pix = torch.stack([uu * dd, vv * dd, dd], -1)  # (D, fH, fW, 3): depth-scaled homogeneous pixel
        kinv = torch.linalg.inv(intrinsics)  # (B, N, 3, 3)
        cam = torch.einsum("bnij,dhwj->bndhwi", kinv, pix)
        R, t = cam2lidar[..., :3, :3], cam2lidar[..., :3, 3]
        return torch.einsum("bnij,bndhwj->bndhwi", R, cam) + t[:, :, None, None, None, :]

    def bev_pool(self, geom: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """Sum ``feats`` (B, N, D, fH, fW, C) into (B, C, grid, grid) cells by their points ``geom``.

        index_add_ on the flattened cell index: the "cumsum trick" without a custom CUDA op, differentiable.
        """
        B = geom.shape[0]
        x0, y0, z0, x1, y1, z1 = self.pc_range
        G = self.grid
        g = geom.reshape(B, -1, 3)
        ix = torch.floor((g[..., 0] - x0) / ((x1 - x0) / G)).long()
        iy = torch.floor((g[..., 1] - y0) / ((y1 - y0) / G)).long()
        keep = (ix >= 0) & (ix < G) & (iy >= 0) & (iy < G) & (g[..., 2] >= z0) & (g[..., 2] < z1)
        bidx = torch.arange(B, device=geom.device)[:, None].expand_as(ix)
        flat = ((bidx * G + iy) * G + ix)[keep]
        f = feats.reshape(B, -1, feats.shape[-1])[keep]
        out = feats.new_zeros(B * G * G, feats.shape[-1]).index_add_(0, flat, f)
        return out.view(B, G, G, -1).permute(0, 3, 1, 2).contiguous()

    def forward(self, img_feats: torch.Tensor, batch: dict) -> torch.Tensor:
        intr, c2l = batch["intrinsics"], batch["cam2lidar"]
        B, N = intr.shape[:2]
        fH, fW = img_feats.shape[-2:]
        x = self.depthnet(img_feats)
        depth = x[:, : self.D].softmax(1)
        ctx = x[:, self.D:]
        vol = depth.unsqueeze(2) * ctx.unsqueeze(1)  # (BN, D, C, fH, fW)
        vol = vol.view(B, N, self.D, self.C, fH, fW).permute(0, 1, 2, 4, 5, 3)
        geom = self.frustum_points(intr.float(), c2l.float(), fH, fW)
        return self.bev_conv(self.bev_pool(geom, vol))
