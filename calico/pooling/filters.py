"""Cluster filters: drop regions too large or too high to be an object of interest (paper §2.2).

Each rule is a physical bound on nuScenes' ten classes (the largest, buses and trailers, are ~12-13 m long,
~3-4 m wide and ~4 m high): clusters beyond them are buildings, walls, hedges or tree crowns; very tall,
very thin clusters are poles and trunks; clusters floating well above the ground are canopy.
"""

from __future__ import annotations

import numpy as np


def cluster_stats(xyz: np.ndarray, ground_h: np.ndarray, labels: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-cluster statistics for ``labels`` in 0..k-1 (points labelled -1 are ignored)."""
    m = labels >= 0
    lab = labels[m]
    x, y, z, g = xyz[m, 0], xyz[m, 1], xyz[m, 2], ground_h[m]
    # Extents along the axes and along the diagonals: the smaller of the two boxes is close to the
    # minimum-area box for the rectangle-like footprints of vehicles, whatever their heading.
    u, v = (x + y) * np.sqrt(0.5), (x - y) * np.sqrt(0.5)
    out: dict[str, np.ndarray] = {"count": np.bincount(lab, minlength=k)}
    for name, arr in (("x", x), ("y", y), ("z", z), ("u", u), ("v", v), ("zg", z - g)):
        lo = np.full(k, np.inf)
        hi = np.full(k, -np.inf)
        np.minimum.at(lo, lab, arr)
        np.maximum.at(hi, lab, arr)
        out[name + "_min"], out[name + "_max"] = lo, hi
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
