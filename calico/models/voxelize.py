"""Pillarisation: points (ΣP, 6) -> pillars (V, T, 5), pillar coordinates and point counts; ``voxelize``: the
same for 3-D voxels (the sparse VoxelNet's input).

Deterministic choice shared by both implementations: per sample, points are taken **in input order**; a
pillar keeps its **first** ``max_points`` points; when a sample has more than ``max_voxels`` pillars, the
pillars whose first point comes earliest are kept (spconv's CPU ``PointToVoxel`` does exactly this, which
the tests check). Output pillars are ordered by (batch, y index, x index) so both backends agree row by row.
On CUDA, spconv fills pillars with parallel atomics, so which points a pillar over ``max_points`` keeps is not
guaranteed to be the first ones (the pillar set and counts still agree); use ``torch`` where it must be exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Pillars:
    """Pillarised batch: ``features`` (V, T, 5) zero-padded, ``coords`` (V, 3) int64 (batch, iy, ix),
    ``num_points`` (V,) int64."""

    features: torch.Tensor
    coords: torch.Tensor
    num_points: torch.Tensor


@dataclass
class Voxels:
    """Voxelised batch: ``features`` (V, T, 5) zero-padded, ``coords`` (V, 4) int64 (batch, iz, iy, ix),
    ``num_points`` (V,) int64. Ordered by (batch, iz, iy, ix)."""

    features: torch.Tensor
    coords: torch.Tensor
    num_points: torch.Tensor


def grid_shape(point_cloud_range: tuple[float, ...], voxel_size: tuple[float, ...]) -> tuple[int, int]:
    """(ny, nx) pillars over the range; raises when the range is not a whole number of pillars."""
    out = []
    for lo, hi, v in ((point_cloud_range[1], point_cloud_range[4], voxel_size[1]),
                      (point_cloud_range[0], point_cloud_range[3], voxel_size[0])):
        n = (hi - lo) / v
        if abs(n - round(n)) > 1e-4:
            raise ValueError(f"point_cloud_range {point_cloud_range} is not a whole number of {voxel_size} pillars")
        out.append(int(round(n)))
    return out[0], out[1]


def _sort_pillars(p: Pillars, nx: int, ny: int) -> Pillars:
    key = (p.coords[:, 0] * ny + p.coords[:, 1]) * nx + p.coords[:, 2]
    order = torch.argsort(key)
    return Pillars(p.features[order], p.coords[order], p.num_points[order])


def voxelize_torch(points: torch.Tensor, pc_range: tuple[float, ...], voxel_size: tuple[float, ...],
                   max_points: int, max_voxels: int, batch_size: int, pillars: bool = False) -> Voxels:
    """Pure-PyTorch voxelisation of a batch's points (ΣP, 6) = (batch_idx, x, y, z, intensity, dt) into 3-D
    voxels (same first-points / earliest-voxels rule as the module doc); coords (V, 4) = (batch, iz, iy, ix).
    ``pillars``: one voxel per (iy, ix) column (iz = 0), z only decides which points are inside."""
    ny, nx = grid_shape(pc_range, voxel_size)
    nz_in = int(round((pc_range[5] - pc_range[2]) / voxel_size[2]))
    nz = 1 if pillars else nz_in
    feats = points[:, 1:]
    lo = points.new_tensor(pc_range[:3])
    vs = points.new_tensor(voxel_size)
    cell = torch.floor((feats[:, :3] - lo) / vs).long()
    inside = ((cell[:, 0] >= 0) & (cell[:, 0] < nx) & (cell[:, 1] >= 0) & (cell[:, 1] < ny)
              & (cell[:, 2] >= 0) & (cell[:, 2] < nz_in))
    b = points[:, 0].long()
    idx = torch.nonzero(inside, as_tuple=False).squeeze(1)  # input order preserved
    iz = torch.zeros_like(idx) if pillars else cell[idx, 2]
    key = ((b[idx] * nz + iz) * ny + cell[idx, 1]) * nx + cell[idx, 0]
    uniq, inv = torch.unique(key, return_inverse=True)
    V = uniq.numel()
    # first input position of each voxel, then rank of each point within its voxel (stable in input order)
    pos = torch.arange(idx.numel(), device=points.device)
    first = torch.full((V,), idx.numel(), dtype=torch.long, device=points.device).scatter_reduce(
        0, inv, pos, reduce="amin")
    order = torch.sort(inv, stable=True).indices  # group by voxel, keep input order inside
    inv_sorted = inv[order]
    start = torch.zeros(V + 1, dtype=torch.long, device=points.device)
    start[1:] = torch.cumsum(torch.bincount(inv, minlength=V), 0)
    rank = torch.empty_like(inv)
    rank[order] = torch.arange(order.numel(), device=points.device) - start[inv_sorted]
    # per-sample cap on voxels: keep those whose first point is earliest
    voxel_b = uniq // (nz * ny * nx)
    keep_voxel = torch.ones(V, dtype=torch.bool, device=points.device)
    for s in range(batch_size):
        sel = torch.nonzero(voxel_b == s, as_tuple=False).squeeze(1)
        if sel.numel() > max_voxels:
            drop = sel[torch.argsort(first[sel])[max_voxels:]]
            keep_voxel[drop] = False
    new_id = torch.cumsum(keep_voxel.long(), 0) - 1
    pt_keep = keep_voxel[inv] & (rank < max_points)
    Vk = int(keep_voxel.sum())
    out = feats.new_zeros(Vk, max_points, feats.shape[1])
    out[new_id[inv[pt_keep]], rank[pt_keep]] = feats[idx[pt_keep]]
    counts = torch.bincount(new_id[inv[pt_keep]], minlength=Vk)
    uk = uniq[keep_voxel]
    coords = torch.stack([uk // (nz * ny * nx), (uk // (ny * nx)) % nz, (uk // nx) % ny, uk % nx], 1)
    return Voxels(out, coords, counts)


def pillarize_torch(points: torch.Tensor, pc_range: tuple[float, ...], voxel_size: tuple[float, ...],
                    max_points: int, max_voxels: int, batch_size: int) -> Pillars:
    """Pure-PyTorch pillarisation: a pillar is a voxel column (all z cells of (iy, ix) in one)."""
    v = voxelize_torch(points, pc_range, voxel_size, max_points, max_voxels, batch_size, pillars=True)
    return Pillars(v.features, v.coords[:, [0, 2, 3]], v.num_points)


def pillarize_spconv(points: torch.Tensor, pc_range: tuple[float, ...], voxel_size: tuple[float, ...],
                     max_points: int, max_voxels: int, batch_size: int) -> Pillars:
    """Pillarisation by spconv's ``PointToVoxel`` (CPU or CUDA by the points' device), one call per sample."""
    try:
        from spconv.pytorch.utils import PointToVoxel
    except ImportError as exc:  # optional extra
        raise RuntimeError("model.voxelizer='spconv' needs the spconv package (pip install calico-bev[extras])") from exc
    ny, nx = grid_shape(pc_range, voxel_size)
    gen = PointToVoxel(vsize_xyz=list(voxel_size), coors_range_xyz=list(pc_range),
                       num_point_features=points.shape[1] - 1, max_num_voxels=max_voxels,
                       max_num_points_per_voxel=max_points, device=points.device)
    feats, coords, counts = [], [], []
    for s in range(batch_size):
        pc = points[points[:, 0] == s, 1:].contiguous()
        v, c, n = gen(pc)
        feats.append(v)
        # spconv indices are (z, y, x)
        coords.append(torch.cat([torch.full_like(c[:, :1], s), c[:, 1:2], c[:, 2:3]], 1).long())
        counts.append(n.long())
    p = Pillars(torch.cat(feats), torch.cat(coords), torch.cat(counts))
    return _sort_pillars(p, nx, ny)


def pillarize(points: torch.Tensor, pc_range: tuple[float, ...], voxel_size: tuple[float, ...],
              max_points: int, max_voxels: int, batch_size: int, backend: str = "torch") -> Pillars:
    """Dispatch to the ``torch`` or ``spconv`` pillariser (same output, see module doc)."""
    if points.ndim != 2 or points.shape[1] != 6:
        raise ValueError(f"points must be (N, 6) batch_idx,x,y,z,intensity,dt; got {tuple(points.shape)}")
    if backend == "torch":
        return pillarize_torch(points, pc_range, voxel_size, max_points, max_voxels, batch_size)
    if backend == "spconv":
        return pillarize_spconv(points, pc_range, voxel_size, max_points, max_voxels, batch_size)
    raise ValueError(f"model.voxelizer must be 'torch' or 'spconv', got {backend!r}")


def voxelize(points: torch.Tensor, pc_range: tuple[float, ...], voxel_size: tuple[float, ...],
             max_points: int, max_voxels: int, batch_size: int) -> Voxels:
    """3-D voxels by the torch voxeliser (the VoxelNet backbone's input; module doc for which points stay)."""
    if points.ndim != 2 or points.shape[1] != 6:
        raise ValueError(f"points must be (N, 6) batch_idx,x,y,z,intensity,dt; got {tuple(points.shape)}")
    return voxelize_torch(points, pc_range, voxel_size, max_points, max_voxels, batch_size)
