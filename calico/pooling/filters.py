"""Cluster filters: drop regions too large or too high to be an object of interest (paper §2.2).

Each rule is a physical bound on nuScenes' ten classes (the largest, buses and trailers, are ~12-13 m long,
~3-4 m wide and ~4 m high): clusters beyond them are buildings, walls, hedges or tree crowns; very tall,
very thin clusters are poles and trunks; clusters floating well above the ground are canopy.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def _minmax(cols, lab, k):
    """Per-cluster min and max of each column of ``cols`` (M, C) (numba: ``np.minimum.at`` is ~10x slower)."""
    c = cols.shape[1]
    lo = np.full((k, c), np.inf)
    hi = np.full((k, c), -np.inf)
    for i in range(len(lab)):
        a = lab[i]
        if a < 0:
            continue
        for j in range(c):
            v = cols[i, j]
            if v < lo[a, j]:
                lo[a, j] = v
            if v > hi[a, j]:
                hi[a, j] = v
    return lo, hi


def cluster_stats(xyz: np.ndarray, ground_h: np.ndarray, labels: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-cluster statistics for ``labels`` in 0..k-1 (points labelled -1 are ignored)."""
    x, y, z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    # Extents along the axes and along the diagonals: the smaller of the two boxes is close to the
    # minimum-area box for the rectangle-like footprints of vehicles, whatever their heading.
    u, v = (x + y) * np.sqrt(0.5), (x - y) * np.sqrt(0.5)
    cols = np.stack([x, y, z, u, v, z - ground_h], axis=1)
    lo, hi = _minmax(cols, np.asarray(labels, np.int64), k)
    out: dict[str, np.ndarray] = {"count": np.bincount(labels[labels >= 0], minlength=k)}
    for j, name in enumerate(("x", "y", "z", "u", "v", "zg")):
        out[name + "_min"], out[name + "_max"] = lo[:, j], hi[:, j]
    dx, dy = out["x_max"] - out["x_min"], out["y_max"] - out["y_min"]
    du, dv = out["u_max"] - out["u_min"], out["v_max"] - out["v_min"]
    axis_better = dx * dy <= du * dv
    out["length"] = np.where(axis_better, np.maximum(dx, dy), np.maximum(du, dv))
    out["width"] = np.where(axis_better, np.minimum(dx, dy), np.minimum(du, dv))
    out["area"] = out["length"] * out["width"]
    out["top"] = out["zg_max"]  # highest point above the ground under it
    out["bottom"] = out["zg_min"]  # lowest point above the ground under it
    return out


def keep_clusters(stats: dict[str, np.ndarray], cfg) -> np.ndarray:
    """Boolean (k,) mask of clusters that pass the filters of a ``PoolingConfig``."""
    keep = stats["count"] >= cfg.min_cluster_points
    keep &= stats["length"] <= cfg.max_extent
    keep &= stats["area"] <= cfg.max_area
    keep &= stats["top"] <= cfg.max_height
    keep &= stats["bottom"] <= cfg.max_bottom
    pole = (stats["top"] >= cfg.pole_min_height) & (stats["length"] <= cfg.pole_max_width)
    keep &= ~pole
    return keep
