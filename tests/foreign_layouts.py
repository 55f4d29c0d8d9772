"""mmdetection3d and OpenPCDet module layouts, rebuilt in plain torch from their published shapes and module
structure (no install of those frameworks), so tests can load exported state dicts with ``strict=True`` and
compare their forward passes with ours. Written from reading their code; nothing here is copied.
"""

from __future__ import annotations

import torch
from torch import nn


def bn2d(c: int, eps: float = 1e-3) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=eps)


class PFNLayer(nn.Module):
    """Both frameworks' last PFN layer: ``linear`` (no bias) -> ``norm`` (BN1d, eps 1e-3) -> ReLU -> max over points."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.linear = nn.Linear(cin, cout, bias=False)
        self.norm = nn.BatchNorm1d(cout, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        V, T, _ = x.shape
        y = self.norm(self.linear(x).view(V * T, -1)).view(V, T, -1).relu()
        return y.amax(1)


class PillarNet(nn.Module):
    """``PillarFeatureNet`` (mmdet3d) / ``PillarVFE`` (OpenPCDet): decorate, then ``pfn_layers``."""

    def __init__(self, in_channels: int, feat: list[int], voxel_size: list[float], pc_range: list[float]):
        super().__init__()
        self.pfn_layers = nn.ModuleList([PFNLayer(in_channels + 6, feat[0])])
        self.vs, self.lo = voxel_size, pc_range[:3]

    def forward(self, feats: torch.Tensor, coords_zyx: torch.Tensor) -> torch.Tensor:
        """feats (V, T, C) all slots valid; coords (V, 3) = (z, y, x) pillar indices."""
        xyz = feats[..., :3]
        f_cluster = xyz - xyz.mean(1, keepdim=True)
        centre = torch.stack([coords_zyx[:, 2 - a].float() * self.vs[a] + self.lo[a] + self.vs[a] / 2
                              for a in range(3)], -1)
        x = torch.cat([feats, f_cluster, xyz - centre[:, None]], -1)
        return self.pfn_layers[0](x)


class SECOND(nn.Module):
    """mmdet3d ``SECOND``: blocks[i] = flat Sequential(conv(stride), bn, relu, [conv, bn, relu] x layer_num)."""

    def __init__(self, in_channels: int, out_channels: list[int], layer_nums: list[int], layer_strides: list[int],
                 zero_pad: bool = False):
        super().__init__()
        self.blocks = nn.ModuleList()
        cin = in_channels
        for c, n, s in zip(out_channels, layer_nums, layer_strides):
            head = [nn.ZeroPad2d(1), nn.Conv2d(cin, c, 3, s, 0, bias=False)] if zero_pad else \
                [nn.Conv2d(cin, c, 3, s, 1, bias=False)]
            layers = head + [bn2d(c), nn.ReLU()]
            for _ in range(n):
                layers += [nn.Conv2d(c, c, 3, 1, 1, bias=False), bn2d(c), nn.ReLU()]
            self.blocks.append(nn.Sequential(*layers))
            cin = c

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for b in self.blocks:
            x = b(x)
            outs.append(x)
        return outs


def deblocks(in_channels: list[int], out_channels: list[int], strides: list[int], conv_for_stride1: bool) -> nn.ModuleList:
    """mmdet3d ``SECONDFPN`` / OpenPCDet ``BaseBEVBackbone.deblocks``: Sequential(up, bn, relu) per level."""
    out = nn.ModuleList()
    for cin, cout, s in zip(in_channels, out_channels, strides):
        up = nn.Conv2d(cin, cout, 1, 1, bias=False) if (s == 1 and conv_for_stride1) else \
            nn.ConvTranspose2d(cin, cout, s, s, bias=False)
        out.append(nn.Sequential(up, bn2d(cout), nn.ReLU()))
    return out


class SECONDFPN(nn.Module):
    def __init__(self, in_channels: list[int], out_channels: list[int], upsample_strides: list[int],
                 use_conv_for_no_stride: bool = False, **_):
        super().__init__()
        self.deblocks = deblocks(in_channels, out_channels, upsample_strides, use_conv_for_no_stride)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([d(f) for d, f in zip(self.deblocks, feats)], 1)


class BaseBEVBackbone(nn.Module):
    """OpenPCDet: ZeroPad2d-headed blocks, ConvTranspose2d deblocks for every stride >= 1, concatenated."""

    def __init__(self, cfg: dict, input_channels: int):
        super().__init__()
        second = SECOND(input_channels, cfg["NUM_FILTERS"], cfg["LAYER_NUMS"], cfg["LAYER_STRIDES"], zero_pad=True)
        self.blocks = second.blocks
        self.deblocks = deblocks(cfg["NUM_FILTERS"], cfg["NUM_UPSAMPLE_FILTERS"], cfg["UPSAMPLE_STRIDES"], False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ups = []
        for b, d in zip(self.blocks, self.deblocks):
            x = b(x)
            ups.append(d(x))
        return torch.cat(ups, 1)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, c: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)
        if stride != 1 or cin != c:
            self.downsample = nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))


class ResNet18Layout(nn.Module):
    """mmdet ``ResNet(depth=18, num_stages=n)`` parameter layout (torchvision names)."""

    def __init__(self, num_stages: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
        cin = 64
        for i in range(num_stages):
            c = 64 * 2 ** i
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, c, 1 if i == 0 else 2), BasicBlock(c, c, 1)))
            cin = c


def mmdet_relative_position_index(window: int) -> torch.Tensor:
    """mmdet ``WindowMSA``'s index into the bias table (its own "about 2x faster" construction)."""
    seq = (torch.arange(0, (2 * window - 1) * window, 2 * window - 1)[:, None] + torch.arange(window)[None]).reshape(1, -1)
    return (seq + seq.T).flip(1).contiguous()


class WindowMSA(nn.Module):
    def __init__(self, dims: int, heads: int, window: int):
        super().__init__()
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", mmdet_relative_position_index(window))
        self.qkv, self.proj = nn.Linear(dims, 3 * dims), nn.Linear(dims, dims)


class SwinBlock(nn.Module):
    def __init__(self, dims: int, heads: int, window: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dims), nn.LayerNorm(dims)
        self.attn = nn.Module()
        self.attn.w_msa = WindowMSA(dims, heads, window)
        # mmcv FFN: layers = Sequential(Sequential(fc1, act, drop), fc2, drop)
        self.ffn = nn.Module()
        self.ffn.layers = nn.Sequential(nn.Sequential(nn.Linear(dims, 4 * dims), nn.GELU(), nn.Dropout()),
                                        nn.Linear(4 * dims, dims), nn.Dropout())


class PatchMerging(nn.Module):
    """mmdet ``PatchMerging``: nn.Unfold(2, stride 2) -> LayerNorm(4C) -> Linear(4C, 2C, bias=False)."""

    def __init__(self, dims: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dims)
        self.reduction = nn.Linear(4 * dims, 2 * dims, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H/2, W/2, 2C)."""
        B, H, W, _ = x.shape
        cols = nn.functional.unfold(x.permute(0, 3, 1, 2), 2, stride=2).transpose(1, 2)
        return self.reduction(self.norm(cols)).view(B, H // 2, W // 2, -1)


class SwinTransformer(nn.Module):
    """mmdet ``SwinTransformer`` parameter layout: patch_embed.projection/norm, stages[i].blocks, the patch
    merging at the end of every stage but the last, and a LayerNorm ``norm{i}`` per output index."""

    def __init__(self, embed_dims: int, depths: list[int], num_heads: list[int], window_size: int,
                 out_indices: list[int], patch_size: int = 4, **_):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.projection = nn.Conv2d(3, embed_dims, patch_size, patch_size)
        self.patch_embed.norm = nn.LayerNorm(embed_dims)
        self.stages = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            dims = embed_dims * 2 ** i
            stage = nn.Module()
            stage.blocks = nn.ModuleList([SwinBlock(dims, heads, window_size) for _ in range(depth)])
            if i < len(depths) - 1:
                stage.downsample = PatchMerging(dims)
            self.stages.append(stage)
        for i in out_indices:
            self.add_module(f"norm{i}", nn.LayerNorm(embed_dims * 2 ** i))


class LSSTransform(nn.Module):
    """BEVFusion's ``LSSTransform`` weights: ``depthnet`` 1x1 and, for downsample 2, ``downsample`` (BN eps 1e-5)."""

    def __init__(self, in_channels: int, out_channels: int, dbound: list[float], downsample: int, **_):
        super().__init__()
        D = len(torch.arange(*dbound))
        self.depthnet = nn.Conv2d(in_channels, D + out_channels, 1)
        c = out_channels
        layers = []
        for stride in (1, downsample, 1):
            layers += [nn.Conv2d(c, c, 3, stride, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)]
        self.downsample = nn.Sequential(*layers)


class MMDet3DModel(nn.Module):
    """The BEVFusion / PointPillars modules an export fills, from ``calico.interop.frameworks.their_config``."""

    def __init__(self, cfg: dict):
        super().__init__()
        v = cfg["pts_voxel_encoder"]
        self.pts_voxel_encoder = PillarNet(v["in_channels"], v["feat_channels"], v["voxel_size"], v["point_cloud_range"])
        b = cfg["pts_backbone"]
        self.pts_backbone = SECOND(b["in_channels"], b["out_channels"], b["layer_nums"], b["layer_strides"])
        self.pts_neck = SECONDFPN(**{k: v for k, v in cfg["pts_neck"].items() if k != "type"})
        if cfg.get("img_backbone", {}).get("type") == "mmdet.ResNet":
            self.img_backbone = ResNet18Layout(cfg["img_backbone"]["num_stages"])
        if cfg.get("img_backbone", {}).get("type") == "mmdet.SwinTransformer":
            self.img_backbone = SwinTransformer(**cfg["img_backbone"])
        if "view_transform" in cfg:
            self.view_transform = LSSTransform(**cfg["view_transform"])


class OpenPCDetModel(nn.Module):
    """OpenPCDet's PointPillar detector modules with weights before the head: ``vfe`` and ``backbone_2d``."""

    def __init__(self, cfg: dict, num_point_features: int = 5):
        super().__init__()
        d = cfg["DATA"]
        self.vfe = PillarNet(num_point_features, cfg["VFE"]["NUM_FILTERS"], d["VOXEL_SIZE"], d["POINT_CLOUD_RANGE"])
        self.backbone_2d = BaseBEVBackbone(cfg["BACKBONE_2D"], cfg["MAP_TO_BEV"]["NUM_BEV_FEATURES"])
