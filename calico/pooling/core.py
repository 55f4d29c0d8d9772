"""``semantic_pooling``: ground removal, DBSCAN, filters -> one region id per point (paper §2.2).

After the paper's DBSCAN (eps 0.75 m, 5 points) and the size filters, clusters rejected as too large
(a row of parked cars, a pedestrian against a hedge) and kept clusters that fall apart into two big pieces
(two pedestrians side by side) are re-clustered at the smaller ``split_eps`` (see ``_split``); kept clusters
that still fall apart seen from above are cut last (``bev_split``). Rows of barriers still too long after the
last re-clustering are cut into barrier-sized pieces (``rows.cut_rows``). Measured before/after on scene-0916,
PandaSet and the synthetic world in BENCHMARKS.md.
"""

from __future__ import annotations

import dataclasses

import numba as nb
import numpy as np

from calico.config import PoolingConfig
from calico.pooling.bev_split import bev_split
from calico.pooling.dbscan import dbscan
from calico.pooling.filters import cluster_stats, keep_clusters, support_below
from calico.pooling.ground import ground_mask
from calico.pooling.rings import estimate_ring_spacing, ring_scaled
from calico.pooling.rows import cut_rows, row_candidates


def cluster(xyz: np.ndarray, cfg: PoolingConfig, eps: float | None = None) -> np.ndarray:
    """DBSCAN ``xyz`` with the configured backend at ``eps`` (default ``cfg.eps``); int64 labels, -1 for noise."""
    eps = cfg.eps if eps is None else eps
    if cfg.dbscan_backend == "numba":
        return dbscan(xyz, eps, cfg.min_points)
    if cfg.dbscan_backend == "dbscan":
        import dbscan as dbscan_pkg  # the PyPI `dbscan` package (exact, C++)

        labels, _ = dbscan_pkg.DBSCAN(np.ascontiguousarray(xyz, dtype=np.float64), eps=eps,
                                      min_samples=cfg.min_points)
        return labels.astype(np.int64)
    if cfg.dbscan_backend == "sklearn":
        from sklearn.cluster import DBSCAN

        return DBSCAN(eps=eps, min_samples=cfg.min_points).fit_predict(xyz).astype(np.int64)
    raise ValueError(f"unknown pooling.dbscan_backend {cfg.dbscan_backend!r} (numba, dbscan or sklearn)")


@nb.njit(cache=True)
def _valid_xyz(pts, max_coord):
    """Indices of rows whose x, y, z are finite and within ``max_coord``, and those xyz as float64 (one pass)."""
    n = pts.shape[0]
    idx = np.empty(n, np.int64)
    xyz = np.empty((n, 3))
    m = 0
    for i in range(n):
        a, b, c = pts[i, 0], pts[i, 1], pts[i, 2]
        # abs(nan) <= x is False, so this also drops non-finite values
        if abs(a) <= max_coord and abs(b) <= max_coord and abs(c) <= max_coord:
            idx[m] = i
            xyz[m, 0], xyz[m, 1], xyz[m, 2] = a, b, c
            m += 1
    return idx[:m], xyz[:m]


@nb.njit(cache=True)
def _big_pieces(parent, sub, k, count, share, min_points):
    """Per parent cluster (0..k-1), how many of its pieces (points of one ``sub`` cluster) hold at least
    ``max(share * count[parent], min_points)`` points.

    Linear time: a sub-cluster lies within one parent except for border points DBSCAN gave to a
    neighbouring cluster, so each sub-cluster counts its first parent directly and only the rare other
    (parent, sub) pairs are sorted (``np.unique`` sorted every point, a large share of the split step's time).
    """
    ks = 0
    for i in range(len(sub)):
        ks = max(ks, sub[i] + 1)
    first = np.full(ks, -1, np.int64)
    n_first = np.zeros(ks, np.int64)
    other = np.empty(len(sub), np.int64)
    m = 0
    for i in range(len(sub)):
        s = sub[i]
        if s < 0:
            continue
        if first[s] < 0:
            first[s] = parent[i]
        if parent[i] == first[s]:
            n_first[s] += 1
        else:
            other[m] = parent[i] * ks + s
            m += 1
    nbig = np.zeros(k, np.int64)
    for s in range(ks):
        p = first[s]
        if p >= 0 and n_first[s] >= max(share * count[p], min_points):
            nbig[p] += 1
    other = np.sort(other[:m])
    j = 0
    while j < m:
        e = j
        while e < m and other[e] == other[j]:
            e += 1
        p = other[j] // ks
        if e - j >= max(share * count[p], min_points):
            nbig[p] += 1
        j = e
    return nbig


def _compact(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..R-1 in order of their old ids, -1 kept (``np.unique``'s inverse without a sort)."""
    present = np.zeros(int(labels.max(initial=-1)) + 2, bool)
    present[labels + 1] = True
    new = np.cumsum(present) - 1 - int(present[0])
    return np.where(labels >= 0, new[labels + 1], -1)


def semantic_pooling(points: np.ndarray, cfg: PoolingConfig | None = None,
                     return_ground: bool = False):
    """Region id per point: -1 semantic-less (ground, noise, filtered clusters), else 0..R-1.

    ``points``: (N, >=3) array, x, y, z first in the LiDAR frame (extra columns ignored). Rows with a
    non-finite x, y or z get -1. With ``return_ground=True`` also returns the (N,) ground mask.
    """
    cfg = cfg or PoolingConfig()
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise ValueError(f"semantic_pooling: points must be (N, >=3), got shape {pts.shape}")
    n = len(pts)
    regions = np.full(n, -1, dtype=np.int64)
    ground = np.zeros(n, dtype=bool)
    # non-finite rows and absurd coordinates (beyond any LiDAR's range) are semantic-less, not an error
    valid, v = _valid_xyz(pts, float(cfg.max_coord))
    if len(valid) == 0:
        return (regions, ground) if return_ground else regions
    g, h = ground_mask(v, cfg.ground_cell, cfg.ground_thresh, cfg.ground_max_slope, cfg.ground_passes,
                       cfg.ground_radial, cfg.ground_thresh_near, cfg.ground_near_range)
    ground[valid] = g
    cand = np.flatnonzero(~g)
    if len(cand):
        vc = v[cand]
        # far away the LiDAR rings of one object lie further apart than eps: cluster on ring-scaled heights
        vz = vc
        if cfg.ring_scaling:
            ring = cfg.ring_spacing_deg if cfg.ring_spacing_deg > 0 else estimate_ring_spacing(v)
            vz = ring_scaled(vc, h[cand], cfg.eps * cfg.ring_eps_share, ring)
        lab0 = cluster(vz, cfg)
        # a roof ring seen 1.5-2 m up at range is no canopy when its car's lower ring lies right under it
        sup = support_below(vc, lab0, cfg.ground_cell, cfg.bottom_support_gap, cfg.bottom_support_max) \
            if cfg.bottom_support_gap > 0 else None
        labels = _split(vc, h[cand], lab0, cfg, tuple(cfg.split_eps), sup, vz)
        # people side by side, a person by a car: cut kept clusters that fall apart seen from above
        labels = bev_split(vc, labels, cfg.bev_split_eps, cfg.bev_split_min_points, cfg.bev_split_share,
                           cfg.bev_split_min_piece, cfg.bev_split_max_extent)
        regions[valid[cand]] = labels
    return (regions, ground) if return_ground else regions


def _number(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Labels of kept clusters renumbered 0..R-1, everything else -1."""
    return np.where(labels >= 0, np.where(keep, np.cumsum(keep) - 1, -1)[np.maximum(labels, 0)], -1)


def _with_rows(labels: np.ndarray, keep: np.ndarray, piece: np.ndarray) -> np.ndarray:
    """``_number(labels, keep)`` plus the pieces of cut barrier rows (``rows.cut_rows``) as further regions."""
    out = _number(labels, keep)
    return np.where(piece >= 0, piece + int(keep.sum()), out)


def _split(xyz: np.ndarray, h: np.ndarray, labels: np.ndarray, cfg: PoolingConfig,
           eps_list: tuple[float, ...], sup: np.ndarray | None = None, xyz_c: np.ndarray | None = None) -> np.ndarray:
    """Apply the filters; clusters rejected as too large are re-clustered at the next, smaller eps.

    Clusters at a smaller eps are subsets of those at a larger one, so this only ever cuts clusters (a row
    of parked cars, a pedestrian against a wall) into pieces, which face the filters again. A kept cluster
    that falls apart at the smaller eps into >= 2 pieces holding ``split_kept_share`` of its points each
    (two pedestrians side by side) is cut as well. ``xyz_c``: the coordinates DBSCAN sees (``ring_scaled``;
    default ``xyz``), the filters always measure ``xyz``. Too-large clusters that are rows of barriers (thin, low) are
    cut along their axis instead of re-clustered (``rows.cut_rows``: a smaller eps crumbles a row at random
    gaps or into single LiDAR rings, never into its barriers). Returns labels 0..R-1 (-1 semantic-less).
    """
    k = int(labels.max()) + 1
    if k == 0:
        return labels
    xyz_c = xyz if xyz_c is None else xyz_c
    stats = cluster_stats(xyz, h, labels, k, sup, (cfg.max_extent, cfg.max_area) if cfg.size_pca else None)
    keep = keep_clusters(stats, cfg)
    piece, row = cut_rows(xyz, labels, row_candidates(stats, keep, cfg), cfg)
    keep &= ~row  # a kept row holding several barriers is replaced by its pieces
    n_pieces = int(piece.max(initial=-1)) + 1
    if not eps_list:
        return _with_rows(labels, keep, piece)
    # Clusters far longer than any row of merged objects (building facades, walls and hedges along a street)
    # are not re-clustered: their pieces would only pass the filters as impure regions, at a large cost in
    # time on multi-sweep clouds.
    retry = ~keep & ~row & (stats["count"] >= cfg.min_cluster_points) & (stats["length"] <= cfg.split_max_extent) & (
        (stats["length"] > cfg.max_extent) | (stats["area"] > cfg.max_area))
    try_kept = cfg.split_kept_share < 1.0
    idx = np.flatnonzero((labels >= 0) & (retry | (keep & try_kept))[np.maximum(labels, 0)])
    if len(idx) == 0:
        return _with_rows(labels, keep, piece)
    sub = cluster(xyz_c[idx], cfg, eps_list[0])  # one DBSCAN serves both cases
    parent = labels[idx]
    if try_kept:
        nbig = _big_pieces(parent, sub, k, stats["count"], float(cfg.split_kept_share), int(cfg.split_min_points))
        cut = keep & (nbig >= 2)
        retry |= cut
        keep &= ~cut
    out = _with_rows(labels, keep, piece)
    r = retry[parent]
    if r.any():
        # pieces must be substantial: a wall or hedge cut at a small eps crumbles into small fragments
        sub_cfg = dataclasses.replace(cfg, eps=eps_list[0], min_cluster_points=cfg.split_min_points,
                                      split_kept_share=1.0)  # pairs are cut once, at the first smaller eps
        sub_r = _compact(sub[r])
        res = _split(xyz[idx[r]], h[idx[r]], sub_r, sub_cfg, eps_list[1:], None if sup is None else sup[idx[r]],
                     xyz_c[idx[r]])
        out[idx[r]] = np.where(res >= 0, res + int(keep.sum()) + n_pieces, -1)
    return out
