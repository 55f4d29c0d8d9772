"""LiDAR branch f_LiDAR as a sparse VoxelNet (SECOND / BEVFusion's LiDAR-only backbone, CALICO Fig. 4).

``VoxelNetBackbone(batch) -> (B, lidar_channels, bev_size, bev_size)``: the ``lidar_backbone`` part, selected with
``model.lidar_backbone=voxelnet``. Points -> 3-D voxels (mean of each voxel's kept points, BEVFusion's
HardSimpleVFE) -> spconv 3-D encoder (submanifold residual blocks, stride-2 sparse convs between stages, one
stride-2 conv along z at the end) -> dense, the z cells stacked into channels: F^LiDAR on the shared BEV grid
(rows along +y, columns along +x, calico.models.bev), so PRC, RAD, fine-tuning and every method read it as
they read PointPillars' map. Paper preset: 0.075 x 0.075 x 0.2 m voxels, 1440 x 1440 x 41 -> 180 x 180 x 2,
128 x 2 = 256 channels.
"""

from __future__ import annotations

import functools

import torch
import torch.nn as nn

from calico.config import DataConfig, ModelConfig
from calico.data.batch import batch_size_of
from calico.models.pointpillars import conv_bn_relu
from calico.models.voxelize import grid_shape, voxelize


def _import_spconv():
    """``spconv.pytorch``, with the two CPU fixes below applied once (a hard dependency of this backbone only)."""
    try:
        import spconv.pytorch as spconv
        import spconv.pytorch.ops as ops
    except ImportError as exc:  # optional extra
        raise RuntimeError("model.lidar_backbone='voxelnet' needs the spconv package "
                           "(pip install calico-bev[extras])") from exc
    if not getattr(ops, "calico_patched", False):
        _patch_spconv_cpu(ops)
    return spconv


def _one_thread_on_cpu(fn):
    """Run spconv's CPU gather-mm-scatter conv with one intra-op thread: with two or more torch threads,
    spconv 2.3.8's CPU ``indice_conv`` / ``indice_conv_backward`` return wrong features and input gradients
    (off by O(1) against a dense Conv3d, measured; tests/test_models_voxelnet.py checks it at 2 threads)."""
    @functools.wraps(fn)
    def wrapper(features: torch.Tensor, *args, **kwargs):
        n = torch.get_num_threads()
        if features.is_cuda or n == 1:
            return fn(features, *args, **kwargs)
        torch.set_num_threads(1)
        try:
            return fn(features, *args, **kwargs)
        finally:
            torch.set_num_threads(n)
    return wrapper


def _patch_spconv_cpu(ops) -> None:
    """Make spconv 2.3.x's CPU sparse convs usable (both are checked against dense convs by the tests)."""
    ops.indice_conv = _one_thread_on_cpu(ops.indice_conv)
    ops.indice_conv_backward = _one_thread_on_cpu(ops.indice_conv_backward)
    # the backward asks torch.cuda for the current stream *before* it branches to its CPU path (which never uses
    # the stream); without a CUDA driver that raises, so there the stream is 0: only the CPU path can run
    if not torch.cuda.is_available():
        ops.get_current_stream = lambda: 0
    ops.calico_patched = True


def conv_out_size(n: int, kernel: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - kernel) // stride + 1


class SparseBasicBlock(nn.Module):
    """Residual block of two 3x3x3 submanifold convs (the active sites never change)."""

    def __init__(self, channels: int, key: str):
        super().__init__()
        spconv = _import_spconv()
        self.conv1 = spconv.SubMConv3d(channels, channels, 3, padding=1, bias=False, indice_key=key)
        self.bn1 = nn.BatchNorm1d(channels, eps=1e-3)
        self.conv2 = spconv.SubMConv3d(channels, channels, 3, padding=1, bias=False, indice_key=key)
        self.bn2 = nn.BatchNorm1d(channels, eps=1e-3)

    def forward(self, x):  # spconv.SparseConvTensor in and out
        out = self.conv1(x)
        out = out.replace_feature(self.bn1(out.features).relu())
        out = self.conv2(out)
        return out.replace_feature((self.bn2(out.features) + x.features).relu())


class SparseEncoder(nn.Module):
    """SECOND-style sparse 3-D encoder over a (nz + 1, ny, nx) grid: input conv, then per stage ``blocks`` residual
    blocks and (between stages) a stride-2 sparse conv; a (3,1,1) stride-(2,1,1) conv along z at the end.
    Output: dense (B, out_channels * D, ny / 2^(stages-1), nx / 2^(stages-1))."""

    def __init__(self, in_channels: int, spatial_shape: tuple[int, int, int], channels: tuple[int, ...],
                 blocks: int, out_channels: int):
        super().__init__()
        spconv = _import_spconv()
        self.spatial_shape = list(spatial_shape)
        c0 = channels[0]
        self.conv_input = spconv.SparseSequential(
            spconv.SubMConv3d(in_channels, c0, 3, padding=1, bias=False, indice_key="subm0"),
            nn.BatchNorm1d(c0, eps=1e-3), nn.ReLU())
        # residual blocks are plain nn.Modules on sparse tensors (spconv's SparseSequential would hand them
        # features only), so each stage is a list of blocks plus a SparseSequential down-sampling conv
        self.blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        d, h, w = spatial_shape
        for i, c in enumerate(channels):
            self.blocks.append(nn.ModuleList([SparseBasicBlock(c, f"subm{i}") for _ in range(blocks)]))
            if i + 1 < len(channels):
                # BEVFusion pads z by 1 except in the last down-sampling conv, so 41 z cells end at 5, then 2
                pz = 0 if i + 2 == len(channels) else 1
                self.downs.append(spconv.SparseSequential(
                    spconv.SparseConv3d(c, channels[i + 1], 3, stride=2, padding=(pz, 1, 1), bias=False,
                                        indice_key=f"down{i}"),
                    nn.BatchNorm1d(channels[i + 1], eps=1e-3), nn.ReLU()))
                d, h, w = conv_out_size(d, 3, 2, pz), conv_out_size(h, 3, 2, 1), conv_out_size(w, 3, 2, 1)
        self.conv_out = spconv.SparseSequential(
            spconv.SparseConv3d(channels[-1], out_channels, (3, 1, 1), stride=(2, 1, 1), bias=False,
                                indice_key="out"),
            nn.BatchNorm1d(out_channels, eps=1e-3), nn.ReLU())
        d = conv_out_size(d, 3, 2, 0)
        if d < 1:
            raise ValueError(f"sparse encoder: {spatial_shape[0]} z cells are too few for {len(channels)} stages")
        self.out_shape = (out_channels * d, h, w)

    def forward(self, features: torch.Tensor, coords: torch.Tensor, batch_size: int) -> torch.Tensor:
        spconv = _import_spconv()
        # fp32 even under AMP: spconv 2.3.8 has no bf16 kernels (its tensor bridge raises on bfloat16), and the
        # engine's "auto" AMP picks bf16; the dense parts after the encoder still run under autocast
        with torch.autocast(features.device.type, enabled=False):
            x = spconv.SparseConvTensor(features.float(), coords.int(), self.spatial_shape, batch_size)
            x = self.conv_input(x)
            for i, blocks in enumerate(self.blocks):
                for block in blocks:
                    x = block(x)
                if i < len(self.downs):
                    x = self.downs[i](x)
            dense = self.conv_out(x).dense()  # (B, C, D, H, W), H along +y, W along +x
        B, C, D, H, W = dense.shape
        return dense.reshape(B, C * D, H, W)


class VoxelNetBackbone(nn.Module):
    """f_LiDAR: batch["points"] -> F^LiDAR (B, lidar_channels, bev_size, bev_size) through sparse 3-D convs."""

    def __init__(self, cfg: ModelConfig, data: DataConfig):
        super().__init__()
        self.pc_range = tuple(data.point_cloud_range)
        self.voxel_size = tuple(cfg.sparse_voxel_size)
        self.max_points = cfg.sparse_max_points_per_voxel
        self.max_voxels = cfg.sparse_max_voxels
        ny, nx = grid_shape(self.pc_range, self.voxel_size)
        nz = (self.pc_range[5] - self.pc_range[2]) / self.voxel_size[2]
        if abs(nz - round(nz)) > 1e-4:
            raise ValueError(f"z range of {self.pc_range} is not a whole number of {self.voxel_size[2]} m voxels")
        # SECOND's spatial shape has one z cell more than the voxels fill (41 for 40), so the z convs end even
        self.encoder = SparseEncoder(5, (int(round(nz)) + 1, ny, nx), tuple(cfg.sparse_channels),
                                     cfg.sparse_blocks, cfg.sparse_out_channels)
        c, h, w = self.encoder.out_shape
        if (h, w) != (cfg.bev_size, cfg.bev_size):
            raise ValueError(f"VoxelNet grid {ny}x{nx} voxels through {len(cfg.sparse_channels) - 1} stride-2 "
                             f"stages gives {h}x{w}, not model.bev_size={cfg.bev_size}; adjust sparse_voxel_size / "
                             "point_cloud_range / sparse_channels")
        # z cells x channels rarely equals lidar_channels by accident; a 1x1 conv keeps F^LiDAR's width the config's
        self.project = conv_bn_relu(c, cfg.lidar_channels, 1) if c != cfg.lidar_channels else nn.Identity()

    def forward(self, batch: dict) -> torch.Tensor:
        points = batch["points"]
        B = batch_size_of(batch)
        vox = voxelize(points, self.pc_range, self.voxel_size, self.max_points, self.max_voxels, B)
        if vox.coords.shape[0] == 0:  # no point in range: an empty map, still in the graph (DDP's all-reduce)
            c, h, w = self.encoder.out_shape
            zero = sum(p.sum() for p in self.parameters()) * 0.0
            return self.project(points.new_zeros(B, c, h, w) + zero)
        # mean VFE: the average of each voxel's kept points (x, y, z, intensity, dt)
        mean = vox.features.sum(1) / vox.num_points.clamp(min=1).unsqueeze(1).to(vox.features.dtype)
        return self.project(self.encoder(mean, vox.coords, B))
