"""Ground removal: a slope-limited lower envelope of the cloud on a BEV grid (numba, single thread).

Per BEV cell we take the lowest return; an isolated cell far below its neighbours (multipath, noise) is
lifted to their median; then the surface is *eroded* so that it never rises faster than ``max_slope`` per
metre from any other cell: ``h(c) = min over cells c' of zmin(c') + max_slope * dist(c, c')``. Cells seen
only on a car body, a wall base or a bush therefore take the height of the road around them, while real
slopes and kerbs (which rise by less than ``max_slope`` per metre) keep theirs. ``passes > 0`` limits the
pull to ``passes`` cells (that many 3x3 min-plus rounds); ``passes = 0`` computes the envelope with no reach
limit by two raster sweeps (chamfer distance, forward and backward); measured, the unlimited pull is worse
(one low cell drags down a wide area). ``radial=True`` also grows a surface from the sensor outward (see
``_radial``: low outliers cannot drag it down, and it carries the road height across occluded cells to
distant objects whose own cells see no road, as LiDAR rings lie metres apart at range); the surface is the
lower of the two, which on the synthetic world (true ground known) is the most accurate (BENCHMARKS.md).
A point is ground when it lies
within ``thresh`` of the surface of its cell. Why numba: ``np.minimum.at`` and shifted-array passes were
several times slower than these loops (timings: BENCHMARKS.md, semantic pooling).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from calico.pooling.dbscan import bounds

_MAX_CELLS = 1024  # per axis: bounds the grid for pathological extents (the cell grows instead)
_SQRT2 = float(np.sqrt(2.0))


def bev_grid(xyz: np.ndarray, cell: float) -> tuple[float, float, float, int, int]:
    """``(lo_x, lo_y, cell, ny, nx)`` of a BEV grid over float64 ``xyz``; the cell grows for pathological
    extents so that neither axis exceeds ``_MAX_CELLS`` cells."""
    lo, hi, _ = bounds(xyz)
    lo, span = lo[:2], (hi - lo)[:2]
    cell = max(cell, float(span.max()) / (_MAX_CELLS - 1))
    return float(lo[0]), float(lo[1]), cell, int(span[0] / cell) + 1, int(span[1] / cell) + 1


@nb.njit(cache=True, inline="always")
def cell_index(x, y, lo0, lo1, cell, nx):
    """Flat index of the ``bev_grid`` cell holding (x, y)."""
    return np.int64((x - lo0) / cell) * nx + np.int64((y - lo1) / cell)


@nb.njit(cache=True)
def _cell_min(xyz, lo0, lo1, cell, ny, nx):
    flat = np.empty(len(xyz), np.int64)
    zmin = np.full(ny * nx, np.inf)
    for i in range(len(xyz)):
        f = cell_index(xyz[i, 0], xyz[i, 1], lo0, lo1, cell, nx)
        flat[i] = f
        if xyz[i, 2] < zmin[f]:
            zmin[f] = xyz[i, 2]
    return zmin.reshape(ny, nx), flat


@nb.njit(cache=True)
def _lift_outliers(grid, drop):
    """Lift a cell more than ``drop`` below the median of >= 3 observed neighbours to that median."""
    ny, nx = grid.shape
    out = grid.copy()
    buf = np.empty(8)
    for i in range(ny):
        for j in range(nx):
            if not np.isfinite(grid[i, j]):
                continue
            k = 0
            for di in range(-1, 2):
                for dj in range(-1, 2):
                    a, b = i + di, j + dj
                    if (di or dj) and 0 <= a < ny and 0 <= b < nx and np.isfinite(grid[a, b]):
                        buf[k] = grid[a, b]
                        k += 1
            if k >= 3:
                for a in range(1, k):  # insertion sort of <= 8 values
                    v = buf[a]
                    b = a - 1
                    while b >= 0 and buf[b] > v:
                        buf[b + 1] = buf[b]
                        b -= 1
                    buf[b + 1] = v
                med = buf[(k - 1) // 2]
                if grid[i, j] < med - drop:
                    out[i, j] = med
    return out


@nb.njit(cache=True)
def _erode(grid, step, passes):
    """Slope-limited lower envelope: ``passes`` 3x3 min-plus rounds, or (passes=0) two chamfer sweeps."""
    ny, nx = grid.shape
    diag = step * _SQRT2
    g = grid.copy()
    if passes > 0:
        for _ in range(passes):
            src = g.copy()
            for i in range(ny):
                for j in range(nx):
                    v = g[i, j]
                    for di in range(-1, 2):
                        for dj in range(-1, 2):
                            a, b = i + di, j + dj
                            if (di or dj) and 0 <= a < ny and 0 <= b < nx:
                                w = src[a, b] + (diag if di and dj else step)
                                if w < v:
                                    v = w
                    g[i, j] = v
        return g
    for _ in range(2):  # a second round settles paths that turn more than once
        for i in range(ny):  # forward: neighbours above and to the left
            for j in range(nx):
                v = g[i, j]
                if j > 0:
                    v = min(v, g[i, j - 1] + step)
                if i > 0:
                    v = min(v, g[i - 1, j] + step)
                    if j > 0:
                        v = min(v, g[i - 1, j - 1] + diag)
                    if j + 1 < nx:
                        v = min(v, g[i - 1, j + 1] + diag)
                g[i, j] = v
        for i in range(ny - 1, -1, -1):  # backward: below and to the right
            for j in range(nx - 1, -1, -1):
                v = g[i, j]
                if j + 1 < nx:
                    v = min(v, g[i, j + 1] + step)
                if i + 1 < ny:
                    v = min(v, g[i + 1, j] + step)
                    if j + 1 < nx:
                        v = min(v, g[i + 1, j + 1] + diag)
                    if j > 0:
                        v = min(v, g[i + 1, j - 1] + diag)
                g[i, j] = v
    return g


@nb.njit(cache=True)
def _radial(grid, step, i0, j0):
    """Grow the surface from the sensor cell outward, ring by ring (Chebyshev rings): a cell takes its own
    lowest return clamped to within ``step`` per cell of its lowest inner neighbour, or that neighbour's
    height when empty (occluded). Low outliers cannot drag it down and objects far from any road cell
    still sit on the carried road height."""
    ny, nx = grid.shape
    diag = step * _SQRT2
    h = np.full((ny, nx), np.inf)
    kmax = max(i0, ny - 1 - i0, j0, nx - 1 - j0)
    for k in range(kmax + 1):
        for i in range(max(0, i0 - k), min(ny, i0 + k + 1)):
            edge_row = abs(i - i0) == k
            jstep = 1 if edge_row else 2 * k
            j = j0 - k
            while j <= j0 + k:
                if 0 <= j < nx:
                    best = np.inf
                    bs = 0.0
                    for di in range(-1, 2):
                        for dj in range(-1, 2):
                            a, b = i + di, j + dj
                            if 0 <= a < ny and 0 <= b < nx and max(abs(a - i0), abs(b - j0)) < k:
                                if h[a, b] < best:
                                    best = h[a, b]
                                    bs = diag if di and dj else step
                    z = grid[i, j]
                    if not np.isfinite(best):
                        h[i, j] = z
                    elif not np.isfinite(z):
                        h[i, j] = best
                    else:
                        h[i, j] = min(max(z, best - bs), best + bs)
                if k == 0:
                    break
                j += jstep
    return h


@nb.njit(cache=True)
def _classify(xyz, flat, height, thresh, thresh_near, near_range):
    """Ground when within the threshold of the surface; the threshold grows linearly from ``thresh_near`` at
    the sensor to ``thresh`` at ``near_range`` (``near_range <= 0``: ``thresh`` everywhere)."""
    n = len(xyz)
    ground = np.empty(n, np.bool_)
    h = np.empty(n)
    grow = near_range > 0
    for i in range(n):
        h[i] = height[flat[i]]
        t = thresh
        if grow:
            r = np.sqrt(xyz[i, 0] * xyz[i, 0] + xyz[i, 1] * xyz[i, 1])
            if r < near_range:
                t = thresh_near + (thresh - thresh_near) * (r / near_range)
        ground[i] = xyz[i, 2] <= h[i] + t
    return ground, h


def ground_surface(xyz: np.ndarray, cell: float = 1.0, max_slope: float = 0.1, passes: int = 4,
                   radial: bool = True, outlier_drop: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(height, flat_index)``: the ground height of each grid cell (flattened) and each point's cell."""
    xyz = np.ascontiguousarray(xyz, dtype=np.float64)
    lo0, lo1, cell, ny, nx = bev_grid(xyz, cell)
    grid, flat = _cell_min(xyz, lo0, lo1, cell, ny, nx)
    grid = _lift_outliers(grid, outlier_drop)
    h = _erode(grid, max_slope * cell, int(passes))
    if radial:  # the sensor sits at the LiDAR frame's origin
        i0 = min(max(int(-lo0 / cell), 0), ny - 1)
        j0 = min(max(int(-lo1 / cell), 0), nx - 1)
        h = np.minimum(h, _radial(grid, max_slope * cell, i0, j0))
    return h.ravel(), flat


def ground_mask(xyz: np.ndarray, cell: float = 1.0, thresh: float = 0.25, max_slope: float = 0.1,
                passes: int = 4, radial: bool = True, thresh_near: float | None = None,
                near_range: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(is_ground (N,) bool, ground_height (N,) float)`` for finite points ``xyz`` (N, 3).

    ``thresh_near`` / ``near_range``: the threshold at the sensor, growing linearly to ``thresh`` at
    ``near_range`` metres (BEV distance from the origin, the sensor): near the sensor every cell holds many
    road returns and the surface is exact, so a tight threshold keeps the bottom of cones and barriers; far
    away the surface is carried over sparse or occluded cells and needs the looser one.
    """
    if len(xyz) == 0:
        return np.zeros(0, bool), np.zeros(0)
    xyz = np.ascontiguousarray(xyz, dtype=np.float64)
    height, flat = ground_surface(xyz, cell, max_slope, passes, radial)
    near = thresh if thresh_near is None else thresh_near
    return _classify(xyz, flat, height, float(thresh), float(near), float(near_range))
