"""The other framework's config for an exported checkpoint: the module settings under which its tensors load.

Printed by ``calico export`` so a user can write the matching mmdetection3d config / OpenPCDet yaml; the tests
rebuild those modules from the same numbers.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from calico.config import Config
from calico.models.voxelize import grid_shape

POINT_FEATURES = 5  # x, y, z, intensity, dt (s): calico's loader, nuScenes' multi-sweep convention


def upsample_strides(strides: tuple[int, ...]) -> list[int]:
    """Our FPN brings level i to level 0's resolution: the product of the strides after the first."""
    out, rel = [], 1
    for i, s in enumerate(strides):
        rel *= s if i else 1
        out.append(rel)
    return out


def their_config(cfg: Config, fmt: str, model: nn.Module) -> dict[str, Any]:
    """``{module: settings}`` in the framework's own spelling (dict keys for mmdet3d, yaml keys for OpenPCDet)."""
    m, d = cfg.model, cfg.data
    ny, nx = grid_shape(d.point_cloud_range, m.voxel_size)
    ups = upsample_strides(m.backbone_strides)
    out: dict[str, Any] = {}
    if getattr(model, "lidar_backbone", None) is not None and fmt == "mmdet3d":
        out["pts_voxel_encoder"] = dict(type="PillarFeatureNet", in_channels=POINT_FEATURES,
                                        feat_channels=[m.pfn_channels], with_distance=False,
                                        with_cluster_center=True, with_voxel_center=True, legacy=False,
                                        voxel_size=list(m.voxel_size), point_cloud_range=list(d.point_cloud_range))
        out["pts_middle_encoder"] = dict(type="PointPillarsScatter", in_channels=m.pfn_channels, output_shape=[ny, nx])
        out["pts_backbone"] = dict(type="SECOND", in_channels=m.pfn_channels, out_channels=list(m.backbone_channels),
                                   layer_nums=list(m.backbone_layers), layer_strides=list(m.backbone_strides))
        out["pts_neck"] = dict(type="SECONDFPN", in_channels=list(m.backbone_channels),
                               out_channels=list(m.neck_channels), upsample_strides=ups, use_conv_for_no_stride=True)
    if getattr(model, "lidar_backbone", None) is not None and fmt == "openpcdet":
        out["VFE"] = dict(NAME="PillarVFE", WITH_DISTANCE=False, USE_ABSLOTE_XYZ=True, USE_NORM=True,
                          NUM_FILTERS=[m.pfn_channels])
        out["MAP_TO_BEV"] = dict(NAME="PointPillarScatter", NUM_BEV_FEATURES=m.pfn_channels)
        out["BACKBONE_2D"] = dict(NAME="BaseBEVBackbone", LAYER_NUMS=list(m.backbone_layers),
                                  LAYER_STRIDES=list(m.backbone_strides), NUM_FILTERS=list(m.backbone_channels),
                                  UPSAMPLE_STRIDES=ups, NUM_UPSAMPLE_FILTERS=list(m.neck_channels))
        out["DATA"] = dict(POINT_CLOUD_RANGE=list(d.point_cloud_range), VOXEL_SIZE=list(m.voxel_size),
                           MAX_POINTS_PER_VOXEL=m.max_points_per_voxel,
                           used_feature_list=["x", "y", "z", "intensity", "timestamp"])
    if getattr(model, "view_transform", None) is not None and fmt == "mmdet3d":
        x0, y0, z0, x1, y1, z1 = d.point_cloud_range
        g = m.bev_size * m.camera_bev_downsample
        H, W = d.image_size
        s = m.camera_feat_stride
        out["view_transform"] = dict(type="LSSTransform", in_channels=m.camera_neck_channels,
                                     out_channels=m.camera_channels, image_size=[H, W], feature_size=[H // s, W // s],
                                     xbound=[x0, x1, (x1 - x0) / g], ybound=[y0, y1, (y1 - y0) / g],
                                     zbound=[z0, z1, z1 - z0], dbound=list(m.depth_bound),
                                     downsample=m.camera_bev_downsample)
        from calico.interop.convert import swin_windows

        if str(m.camera_backbone).startswith("swin") and swin_windows(model) is None:
            out["img_backbone"] = swin_config(model.camera_backbone)
        if str(m.camera_backbone).startswith("resnet"):
            depth = int("".join(c for c in m.camera_backbone if c.isdigit()) or 50)
            out["img_backbone"] = dict(type="mmdet.ResNet", depth=depth,
                                       num_stages=len(model.camera_backbone.net.feature_info.reduction()) - 1)
    return out


def swin_config(camera_backbone: nn.Module) -> dict[str, Any]:
    """mmdet ``SwinTransformer`` settings of our timm Swin, read off its weights (stages, heads, window)."""
    sd = camera_backbone.net.state_dict()
    stages = sorted({int(k.split(".")[0].split("_")[1]) for k in sd if k.startswith("layers_")})
    depths = [len({k.split(".")[2] for k in sd if k.startswith(f"layers_{i}.blocks.")}) for i in stages]
    tables = [sd[f"layers_{i}.blocks.0.attn.relative_position_bias_table"] for i in stages]
    window = int(round(tables[0].shape[0] ** 0.5) + 1) // 2
    return dict(type="mmdet.SwinTransformer", embed_dims=int(sd["patch_embed.proj.weight"].shape[0]), depths=depths,
                num_heads=[int(t.shape[1]) for t in tables], window_size=window, patch_size=4,
                out_indices=list(camera_backbone.levels), convert_weights=False)
