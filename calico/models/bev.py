"""The BEV raster convention shared by every BEV map in calico, and point-feature interpolation.

Convention (one place; docs/ARCHITECTURE.md "BEV raster" repeats it): a BEV tensor is (B, C, S_y, S_x),
**row index i along +y, column index j along +x** of the LiDAR frame, and cell (i, j) covers
``[x0 + j*dx, x0 + (j+1)*dx) x [y0 + i*dy, y0 + (i+1)*dy)`` with centre ``x0 + (j+0.5)*dx``. This holds
for F^LiDAR / F^Camera (over ``data.point_cloud_range``), the detection heatmaps, and the map
segmentation grid / ``map_masks`` (over ``[-seg_range, seg_range]^2``). Interpolation uses
``grid_sample(..., align_corners=False)``, under which normalised -1 / +1 are the outer cell *edges*, so a
point at a cell centre reads exactly that cell.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from calico.config import DataConfig, ModelConfig


def bev_cell_centers(size: int, lo: float, hi: float) -> torch.Tensor:
    """Cell-centre coordinates (size,) of a 1-D axis [lo, hi) split into ``size`` cells."""
    step = (hi - lo) / size
    return lo + (torch.arange(size, dtype=torch.float32) + 0.5) * step


def seg_cell_centers(cfg_model: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) centres of the map-segmentation grid, each (S, S) indexed [row=y, col=x].

    The data layer rasterises ``map_masks[b, k, i, j]`` = class k present at
    (x = xs[i, j], y = ys[i, j]) of the keyframe LiDAR frame.
    """
    c = bev_cell_centers(cfg_model.seg_size, -cfg_model.seg_range, cfg_model.seg_range)
    ys, xs = torch.meshgrid(c, c, indexing="ij")
    return xs, ys


def bev_coords(points_xy: torch.Tensor, cfg_data: DataConfig) -> torch.Tensor:
    """Normalised ``grid_sample`` coordinates (K, 2) in [-1, 1] (x then y) of LiDAR-frame points on the BEV grid.

    The grid spans ``cfg_data.point_cloud_range`` in x/y; its cell count does not change the mapping.
    """
    x0, y0, _, x1, y1, _ = cfg_data.point_cloud_range
    lo = points_xy.new_tensor([x0, y0])
    hi = points_xy.new_tensor([x1, y1])
    return (points_xy - lo) / (hi - lo) * 2.0 - 1.0


def sample_bev(feature_map: torch.Tensor, xy: torch.Tensor, batch_idx: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample ``feature_map`` (B, C, S, S) at normalised coords ``xy`` (K, 2) of sample ``batch_idx`` (K,).

    Returns (K, C). Points outside the map read zeros (padding), as grid_sample does. A half / bf16 map (AMP) is
    read in float32 and the result is float32: coordinates in bf16 would be off by up to a third of a cell on
    a 180-cell grid, and under autocast ``grid_sample`` returns float32 anyway.
    """
    if xy.ndim != 2 or xy.shape[1] != 2 or batch_idx.shape[0] != xy.shape[0]:
        raise ValueError(f"sample_bev: expected xy (K,2) and batch_idx (K,), got {tuple(xy.shape)}, "
                         f"{tuple(batch_idx.shape)}")
    B, C = feature_map.shape[:2]
    dtype = torch.promote_types(feature_map.dtype, torch.float32)
    out = feature_map.new_zeros(xy.shape[0], C, dtype=dtype)
    for b in range(B):
        sel = batch_idx == b
        if not bool(sel.any()):
            continue
        grid = xy[sel].to(dtype).view(1, 1, -1, 2)
        val = F.grid_sample(feature_map[b: b + 1].to(dtype), grid, mode="bilinear", align_corners=False)
        out[sel] = val[0, :, 0].t().to(dtype)
    return out


def resample_bev(feature_map: torch.Tensor, src_range: tuple[float, float, float, float],
                 dst_range: float, dst_size: int) -> torch.Tensor:
    """Resample a BEV map over ``src_range`` (x0, y0, x1, y1) onto the square grid [-dst_range, dst_range]^2
    of ``dst_size`` cells (BEVFusion's BEVGridTransform for the segmentation head). Like ``sample_bev``, a
    half / bf16 map is read with float32 coordinates and gives a float32 map."""
    c = bev_cell_centers(dst_size, -dst_range, dst_range).to(feature_map.device)
    ys, xs = torch.meshgrid(c, c, indexing="ij")
    x0, y0, x1, y1 = src_range
    gx = (xs - x0) / (x1 - x0) * 2 - 1
    gy = (ys - y0) / (y1 - y0) * 2 - 1
    dtype = torch.promote_types(feature_map.dtype, torch.float32)
    grid = torch.stack([gx, gy], -1).to(dtype)
    grid = grid.unsqueeze(0).expand(feature_map.shape[0], -1, -1, -1)
    return F.grid_sample(feature_map.to(dtype), grid, mode="bilinear", align_corners=False)


def bev_cell_index(xy: torch.Tensor, bev_range: tuple[float, float, float, float],
                   shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(row i, column j) int64 of the raster cell holding each LiDAR-frame point ``xy`` (K, 2).

    ``bev_range`` is (x0, y0, x1, y1) and ``shape`` the map's (rows along +y, columns along +x); cell (i, j)
    covers ``[x0 + j*dx, x0 + (j+1)*dx) x [y0 + i*dy, y0 + (i+1)*dy)``. Points outside get indices outside
    ``[0, rows) x [0, cols)``; callers mask them.
    """
    x0, y0, x1, y1 = bev_range
    rows, cols = shape
    j = torch.floor((xy[:, 0] - x0) / ((x1 - x0) / cols)).long()
    i = torch.floor((xy[:, 1] - y0) / ((y1 - y0) / rows)).long()
    return i, j
