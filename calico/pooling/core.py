"""``semantic_pooling``: ground removal, DBSCAN, filters -> one region id per point (paper §2.2)."""

from __future__ import annotations

import numpy as np

from calico.config import PoolingConfig
from calico.pooling.dbscan import dbscan
from calico.pooling.filters import cluster_stats, keep_clusters
from calico.pooling.ground import ground_mask


def cluster(xyz: np.ndarray, cfg: PoolingConfig) -> np.ndarray:
    """DBSCAN ``xyz`` with the configured backend; int64 labels, -1 for noise."""
    if cfg.dbscan_backend == "grid":
        return dbscan(xyz, cfg.eps, cfg.min_points)
    if cfg.dbscan_backend == "dbscan":
        import dbscan as dbscan_pkg  # the PyPI `dbscan` package (exact, C++)

        labels, _ = dbscan_pkg.DBSCAN(np.ascontiguousarray(xyz, dtype=np.float64), eps=cfg.eps,
                                      min_samples=cfg.min_points)
        return labels.astype(np.int64)
    if cfg.dbscan_backend == "sklearn":
        from sklearn.cluster import DBSCAN

        return DBSCAN(eps=cfg.eps, min_samples=cfg.min_points).fit_predict(xyz).astype(np.int64)
    raise ValueError(f"unknown pooling.dbscan_backend {cfg.dbscan_backend!r} (grid, dbscan or sklearn)")


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
    xyz = pts[:, :3].astype(np.float64)
    valid = np.flatnonzero(np.isfinite(xyz).all(axis=1))
    if len(valid) >= 1:
        v = xyz[valid]
        g, h = ground_mask(v, cfg.ground_cell, cfg.ground_thresh, cfg.ground_max_slope, cfg.ground_passes,
                           cfg.ground_levels)
        ground[valid] = g
        ng = np.flatnonzero(~g)
        if len(ng):
            labels = cluster(v[ng], cfg)
            k = int(labels.max()) + 1
            if k > 0:
                keep = keep_clusters(cluster_stats(v[ng], h[ng], labels, k), cfg)
                new_id = np.where(keep, np.cumsum(keep) - 1, -1)
                regions[valid[ng]] = np.where(labels >= 0, new_id[np.maximum(labels, 0)], -1)
    return (regions, ground) if return_ground else regions
