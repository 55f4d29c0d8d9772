"""Cluster filters: drop regions too large or too high to be an object of interest (paper §2.2).

Each rule is a physical bound on nuScenes' ten classes (the largest, buses and trailers, are ~12-13 m long,
~3-4 m wide and ~4 m high): clusters beyond them are buildings, walls, hedges or tree crowns; very tall,
very thin clusters are poles and trunks; clusters floating well above the ground are canopy.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def _minmax(xyz, ground_h, lab, k):
    """Per-cluster point count, min and max of x, y, z, u, v and z - ground_h, where u, v are x, y turned by 45 degrees
    (numba, one pass: ``np.minimum.at`` is ~10x slower and stacking the six columns first costs as much)."""
    lo = np.full((k, 6), np.inf)
    hi = np.full((k, 6), -np.inf)
    count = np.zeros(k, np.int64)
    r = np.sqrt(0.5)
    col = np.empty(6)
    for i in range(len(lab)):
        a = lab[i]
        if a < 0:
            continue
        count[a] += 1
        x, y, z = xyz[i, 0], xyz[i, 1], xyz[i, 2]
        col[0], col[1], col[2] = x, y, z
        col[3], col[4], col[5] = (x + y) * r, (x - y) * r, z - ground_h[i]
        for j in range(6):
            v = col[j]
            if v < lo[a, j]:
                lo[a, j] = v
            if v > hi[a, j]:
                hi[a, j] = v
    return lo, hi, count


def cluster_stats(xyz: np.ndarray, ground_h: np.ndarray, labels: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-cluster statistics for ``labels`` in 0..k-1 (points labelled -1 are ignored)."""
    # Extents along the axes and along the diagonals (u, v): the smaller of the two boxes is close to the
    # minimum-area box for the rectangle-like footprints of vehicles, whatever their heading.
    lo, hi, count = _minmax(np.asarray(xyz, np.float64), np.asarray(ground_h, np.float64),
                            np.asarray(labels, np.int64), k)
    out: dict[str, np.ndarray] = {"count": count}
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
