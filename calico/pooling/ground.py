"""Ground removal: a slope-limited lower envelope of the cloud on a BEV grid.

Per BEV cell we take the lowest return; isolated cells far below their neighbours (multipath, noise) are
lifted to their neighbours' median; then the surface is *eroded* so that it never rises faster than
``max_slope`` from any neighbouring cell (a few passes of a 3x3 min-plus filter). Cells covered only by a
car body, a wall base or a bush therefore take the height of the road around them, while real slopes and
kerbs (which rise by less than ``max_slope`` per cell) keep theirs. A point is ground when it lies within
``ground_thresh`` of the surface of its cell. All of it is O(N) numpy work on a small grid.
"""

from __future__ import annotations

import numpy as np

_MAX_CELLS = 1024  # per axis: bounds the grid for pathological extents (the cell grows instead)


def ground_surface(
    xyz: np.ndarray,
    cell: float = 1.0,
    max_slope: float = 0.15,
    passes: int = 4,
    outlier_drop: float = 0.5,
    levels: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(height, flat_index)``: the ground height of each grid cell and each point's cell."""
    xy = xyz[:, :2]
    lo = xy.min(axis=0)
    span = xy.max(axis=0) - lo
    cell = max(cell, float(span.max()) / (_MAX_CELLS - 1))
    ij = ((xy - lo) / cell).astype(np.int64)
    ny, nx = int(ij[:, 0].max()) + 1, int(ij[:, 1].max()) + 1
    flat = ij[:, 0] * nx + ij[:, 1]
    zmin = np.full(ny * nx, np.inf)
    np.minimum.at(zmin, flat, xyz[:, 2].astype(np.float64))
    grid = zmin.reshape(ny, nx)

    pad = np.pad(grid, 1, constant_values=np.inf)
    neigh = np.stack([pad[1 + di : 1 + di + ny, 1 + dj : 1 + dj + nx]
                      for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj])
    # A cell more than `outlier_drop` below the median of its observed neighbours is noise, not ground.
    nfin = np.isfinite(neigh).sum(axis=0)
    srt = np.sort(neigh, axis=0)  # inf (empty cells) sorts last, so the finite median sits at (n-1)//2
    med = np.take_along_axis(srt, np.maximum(nfin - 1, 0)[None] // 2, axis=0)[0]
    low = np.isfinite(grid) & (nfin >= 3) & (grid < med - outlier_drop)
    grid = np.where(low, med, grid)

    # Coarse-to-fine: min-pooled levels carry the pull of low ground across wide occluded areas
    # (parking lots, queues of cars) in a few passes; each level then refines with the slope bound.
    pyramid = [grid]
    while min(pyramid[-1].shape) > 2 and len(pyramid) < levels:
        g = pyramid[-1]
        g = np.pad(g, ((0, g.shape[0] % 2), (0, g.shape[1] % 2)), constant_values=np.inf)
        pyramid.append(np.minimum(np.minimum(g[0::2, 0::2], g[1::2, 0::2]), np.minimum(g[0::2, 1::2], g[1::2, 1::2])))
    coarse = None
    for lvl in range(len(pyramid) - 1, -1, -1):
        g = pyramid[lvl]
        size = cell * 2**lvl
        if coarse is not None:
            up = np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)[: g.shape[0], : g.shape[1]]
            # the coarse minimum lies somewhere in a block of side 2*size: bound its distance
            g = np.minimum(g, up + max_slope * size * 2 * np.sqrt(2.0))
        coarse = _erode(g, max_slope * size, passes)
    return coarse.ravel(), flat


def _erode(grid: np.ndarray, step: float, passes: int) -> np.ndarray:
    """``passes`` rounds of grid <- min(grid, neighbour + step * distance) over the 8-neighbourhood."""
    ny, nx = grid.shape
    diag = step * np.sqrt(2.0)
    for _ in range(passes):
        pad = np.pad(grid, 1, constant_values=np.inf)
        new = grid.copy()
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                if di or dj:
                    sh = pad[1 + di : 1 + di + ny, 1 + dj : 1 + dj + nx]
                    np.minimum(new, sh + (diag if di and dj else step), out=new)
        grid = new
    return grid


def ground_mask(
    xyz: np.ndarray,
    cell: float = 1.0,
    thresh: float = 0.25,
    max_slope: float = 0.15,
    passes: int = 4,
    levels: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(is_ground (N,) bool, ground_height (N,) float)`` for finite points ``xyz`` (N, 3)."""
    if len(xyz) == 0:
        return np.zeros(0, bool), np.zeros(0)
    height, flat = ground_surface(xyz, cell, max_slope, passes, levels=levels)
    h = height[flat]
    return xyz[:, 2] <= h + thresh, h
