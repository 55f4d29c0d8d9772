"""Cluster filters: drop regions too large or too high to be an object of interest (paper §2.2).

Each rule is a physical bound on nuScenes' ten classes (the largest, buses and trailers, are ~12-13 m long,
~3-4 m wide and ~4 m high): clusters beyond them are buildings, walls, hedges or tree crowns; very tall,
very thin clusters are poles and trunks; clusters floating well above the ground are canopy -- unless other
returns lie below them in the same BEV cells (``support_below``): at range the LiDAR rings are ~1 m apart, so
a car's roof ring is its own cluster 1.5-2 m above the road, and the object under it shows it is no canopy.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from calico.pooling.ground import bev_grid, cell_index


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


@nb.njit(cache=True)
def _pca_box(xyz, lab, k, want):
    """Per cluster in ``want`` ((k,) bool), the BEV extents (length >= width) along the principal axis of its
    footprint and that axis' angle: three numba passes (mean, covariance, extents of the rotated points)."""
    n = np.zeros(k)
    m = np.zeros((k, 2))
    for i in range(len(lab)):
        a = lab[i]
        if a >= 0 and want[a]:
            n[a] += 1
            m[a, 0] += xyz[i, 0]
            m[a, 1] += xyz[i, 1]
    for a in range(k):
        if n[a] > 0:
            m[a, 0] /= n[a]
            m[a, 1] /= n[a]
    c = np.zeros((k, 3))
    for i in range(len(lab)):
        a = lab[i]
        if a >= 0 and want[a]:
            dx, dy = xyz[i, 0] - m[a, 0], xyz[i, 1] - m[a, 1]
            c[a, 0] += dx * dx
            c[a, 1] += dy * dy
            c[a, 2] += dx * dy
    theta = np.zeros(k)
    co = np.ones(k)
    si = np.zeros(k)
    for a in range(k):
        theta[a] = 0.5 * np.arctan2(2 * c[a, 2], c[a, 0] - c[a, 1])
        co[a], si[a] = np.cos(theta[a]), np.sin(theta[a])
    lo = np.zeros((k, 2))
    hi = np.zeros((k, 2))
    for a in range(k):
        if want[a]:
            lo[a, 0] = lo[a, 1] = np.inf
            hi[a, 0] = hi[a, 1] = -np.inf
    for i in range(len(lab)):
        a = lab[i]
        if a < 0 or not want[a]:
            continue
        t = xyz[i, 0] * co[a] + xyz[i, 1] * si[a]
        u = -xyz[i, 0] * si[a] + xyz[i, 1] * co[a]
        lo[a, 0], hi[a, 0] = min(lo[a, 0], t), max(hi[a, 0], t)
        lo[a, 1], hi[a, 1] = min(lo[a, 1], u), max(hi[a, 1], u)
    d = hi - lo  # 0 for clusters not wanted
    return np.maximum(d[:, 0], d[:, 1]), np.minimum(d[:, 0], d[:, 1]), theta


@nb.njit(cache=True)
def _support(xyz, lab, lo0, lo1, cell, ny, nx, gap, max_gap):
    """Per point: does the lowest point of another cluster (or noise) in its BEV cell lie ``gap`` to
    ``max_gap`` below it? One pass keeps per cell the lowest z, its label, and the lowest z of any other
    label. The band is the LiDAR ring spacing: canopy far above a car roof gets no support."""
    n = len(xyz)
    z1 = np.full(ny * nx, np.inf)
    z2 = np.full(ny * nx, np.inf)  # lowest z among labels other than l1's
    l1 = np.full(ny * nx, -2, np.int64)
    flat = np.empty(n, np.int64)
    for i in range(n):
        f = cell_index(xyz[i, 0], xyz[i, 1], lo0, lo1, cell, nx)
        flat[i] = f
        z, a = xyz[i, 2], lab[i]
        if z < z1[f]:
            if a != l1[f]:
                z2[f] = z1[f]
            z1[f], l1[f] = z, a
        elif a != l1[f] and z < z2[f]:
            z2[f] = z
    out = np.zeros(n, np.bool_)
    for i in range(n):
        f = flat[i]
        other = z2[f] if lab[i] == l1[f] else z1[f]
        out[i] = xyz[i, 2] - max_gap <= other < xyz[i, 2] - gap
    return out


def support_below(xyz: np.ndarray, labels: np.ndarray, cell: float, gap: float,
                  max_gap: float = np.inf) -> np.ndarray:
    """(N,) bool: the lowest point of another cluster (or a noise point) in the point's ``cell`` BEV cell
    lies ``gap`` to ``max_gap`` below it. ``xyz``: non-ground points, ``labels`` their DBSCAN labels."""
    if len(xyz) == 0:
        return np.zeros(0, bool)
    xyz = np.ascontiguousarray(xyz, np.float64)
    return _support(xyz, np.asarray(labels, np.int64), *bev_grid(xyz, float(cell)), float(gap), float(max_gap))


def cluster_stats(xyz: np.ndarray, ground_h: np.ndarray, labels: np.ndarray, k: int,
                  support: np.ndarray | None = None,
                  pca_limits: tuple[float, float] | None = None) -> dict[str, np.ndarray]:
    """Per-cluster statistics for ``labels`` in 0..k-1 (points labelled -1 are ignored); with ``support``
    (``support_below``) also the share of each cluster's points with something below them. With
    ``pca_limits`` = (max length, max area), clusters whose box exceeds them get the box along their
    footprint's principal axis instead when that one is smaller."""
    # Extents along the axes and along the diagonals (u, v): the smaller of the two boxes is close to the
    # minimum-area box for the rectangle-like footprints of cars, whatever their heading.
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
    if pca_limits is not None:
        # A long object at a heading between the two box orientations (a 12 m trailer at 22 degrees) has a
        # box twice its true area in both; the box along its footprint's principal axis fits it. Only
        # clusters the filters would reject for size need it (three more passes, over their points only).
        want = (out["length"] > pca_limits[0]) | (out["length"] * out["width"] > pca_limits[1])
        pl, pw, _ = _pca_box(np.asarray(xyz, np.float64), np.asarray(labels, np.int64), k, want)
        better = want & (pl * pw < out["length"] * out["width"])
        out["length"] = np.where(better, pl, out["length"])
        out["width"] = np.where(better, pw, out["width"])
    out["area"] = out["length"] * out["width"]
    out["top"] = out["zg_max"]  # highest point above the ground under it
    out["bottom"] = out["zg_min"]  # lowest point above the ground under it
    if support is not None:
        sup = np.bincount(labels[support & (labels >= 0)], minlength=k)[:k]
        out["supported"] = sup / np.maximum(count, 1)
    return out


def keep_clusters(stats: dict[str, np.ndarray], cfg) -> np.ndarray:
    """Boolean (k,) mask of clusters that pass the filters of a ``PoolingConfig``."""
    keep = stats["count"] >= cfg.min_cluster_points
    keep &= stats["length"] <= cfg.max_extent
    keep &= stats["area"] <= cfg.max_area
    keep &= stats["top"] <= cfg.max_height
    low = stats["bottom"] <= cfg.max_bottom
    if "supported" in stats:  # not floating: most of its points have an object below them
        low |= stats["supported"] >= 0.5
    keep &= low
    pole = (stats["top"] >= cfg.pole_min_height) & (stats["length"] <= cfg.pole_max_width)
    keep &= ~pole
    return keep
