"""``semantic_pooling``: ground removal, DBSCAN, filters -> one region id per point (paper §2.2).

After the paper's DBSCAN (eps 0.75 m, 5 points) and the size filters, clusters rejected as too large
(a row of parked cars, a pedestrian against a hedge) and kept clusters that fall apart into two big pieces
(two pedestrians side by side) are re-clustered at the smaller ``split_eps`` (see ``_split``); kept clusters
that still fall apart seen from above are cut last (``bev_split``); measured before/after on the real scene
and the synthetic world in BENCHMARKS.md.
"""

from __future__ import annotations

import dataclasses

import numba as nb
import numpy as np

from calico.config import PoolingConfig
from calico.pooling.bev_split import bev_split
from calico.pooling.dbscan import dbscan
from calico.pooling.filters import cluster_stats, keep_clusters
from calico.pooling.ground import ground_mask


def cluster(xyz: np.ndarray, cfg: PoolingConfig) -> np.ndarray:
    """DBSCAN ``xyz`` with the configured backend; int64 labels, -1 for noise."""
    if cfg.dbscan_backend == "numba":
        return dbscan(xyz, cfg.eps, cfg.min_points)
    if cfg.dbscan_backend == "dbscan":
        import dbscan as dbscan_pkg  # the PyPI `dbscan` package (exact, C++)

        labels, _ = dbscan_pkg.DBSCAN(np.ascontiguousarray(xyz, dtype=np.float64), eps=cfg.eps,
                                      min_samples=cfg.min_points)
        return labels.astype(np.int64)
    if cfg.dbscan_backend == "sklearn":
        from sklearn.cluster import DBSCAN

        return DBSCAN(eps=cfg.eps, min_samples=cfg.min_points).fit_predict(xyz).astype(np.int64)
    raise ValueError(f"unknown pooling.dbscan_backend {cfg.dbscan_backend!r} (numba, dbscan or sklearn)")


@nb.njit(cache=True)
def _valid_xyz(pts, max_coord):
    """Indices of rows whose x, y, z are finite and within ``max_coord``, and those xyz as float64."""
    n = pts.shape[0]
    idx = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        ok = True
        for j in range(3):
            v = pts[i, j]
            if not (np.isfinite(v) and abs(v) <= max_coord):
                ok = False
        if ok:
            idx[m] = i
            m += 1
    xyz = np.empty((m, 3))
    for t in range(m):
        for j in range(3):
            xyz[t, j] = pts[idx[t], j]
    return idx[:m], xyz


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
                       cfg.ground_radial)
    ground[valid] = g
    cand = np.flatnonzero(~g)
    if len(cand):
        labels = _split(v[cand], h[cand], cluster(v[cand], cfg), cfg, tuple(cfg.split_eps))
        # people side by side, a person by a car: cut kept clusters that fall apart seen from above
        labels = bev_split(v[cand], labels, cfg.bev_split_eps, cfg.bev_split_min_points, cfg.bev_split_share,
                           cfg.bev_split_min_piece, cfg.bev_split_max_extent)
        regions[valid[cand]] = labels
    return (regions, ground) if return_ground else regions


def _number(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Labels of kept clusters renumbered 0..R-1, everything else -1."""
    return np.where(labels >= 0, np.where(keep, np.cumsum(keep) - 1, -1)[np.maximum(labels, 0)], -1)


def _split(xyz: np.ndarray, h: np.ndarray, labels: np.ndarray, cfg: PoolingConfig,
           eps_list: tuple[float, ...]) -> np.ndarray:
    """Apply the filters; clusters rejected as too large are re-clustered at the next, smaller eps.

    Clusters at a smaller eps are subsets of those at a larger one, so this only ever cuts clusters (a row
    of parked cars, a pedestrian against a wall) into pieces, which face the filters again. A kept cluster
    that falls apart at the smaller eps into >= 2 pieces holding ``split_kept_share`` of its points each
    (two pedestrians side by side) is cut as well. Returns labels 0..R-1 (-1 for semantic-less points).
    """
    k = int(labels.max()) + 1
    if k == 0:
        return labels
    stats = cluster_stats(xyz, h, labels, k)
    keep = keep_clusters(stats, cfg)
    if not eps_list:
        return _number(labels, keep)
    # Clusters far longer than any row of merged objects (building facades, walls and hedges along a street)
    # are not re-clustered: their pieces would only pass the filters as impure regions, at a large cost in
    # time on multi-sweep clouds.
    retry = ~keep & (stats["count"] >= cfg.min_cluster_points) & (stats["length"] <= cfg.split_max_extent) & (
        (stats["length"] > cfg.max_extent) | (stats["area"] > cfg.max_area))
    try_kept = cfg.split_kept_share < 1.0
    idx = np.flatnonzero((labels >= 0) & (retry | (keep & try_kept))[np.maximum(labels, 0)])
    if len(idx) == 0:
        return _number(labels, keep)
    sub = cluster(xyz[idx], dataclasses.replace(cfg, eps=eps_list[0]))  # one DBSCAN serves both cases
    parent = labels[idx]
    if try_kept:
        m = sub >= 0
        pieces, piece_n = np.unique(parent[m] * (int(sub.max()) + 1) + sub[m], return_counts=True)
        piece_parent = pieces // (int(sub.max()) + 1)
        big = piece_n >= np.maximum(cfg.split_kept_share * stats["count"][piece_parent], cfg.split_min_points)
        cut = keep & (np.bincount(piece_parent[big], minlength=k) >= 2)
        retry |= cut
        keep &= ~cut
    out = _number(labels, keep)
    r = retry[parent]
    if r.any():
        # pieces must be substantial: a wall or hedge cut at a small eps crumbles into small fragments
        sub_cfg = dataclasses.replace(cfg, eps=eps_list[0], min_cluster_points=cfg.split_min_points,
                                      split_kept_share=1.0)  # pairs are cut once, at the first smaller eps
        _, sub_r = np.unique(sub[r], return_inverse=True)  # compact ids; noise (-1) becomes id 0 when present
        sub_r = sub_r.astype(np.int64) - int((sub[r] < 0).any())
        res = _split(xyz[idx[r]], h[idx[r]], sub_r, sub_cfg, eps_list[1:])
        out[idx[r]] = np.where(res >= 0, res + int(keep.sum()), -1)
    return out
