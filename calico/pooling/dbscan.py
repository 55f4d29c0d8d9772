"""Exact grid DBSCAN in numba (single thread) that reproduces scikit-learn's labels point for point.

Why our own: sklearn's DBSCAN materialises every eps-neighbourhood and the ``dbscan`` package (C++) is
also several times slower on one core (both measured in BENCHMARKS.md, semantic pooling).

Definition (sklearn's): a point is *core* when at least ``min_samples`` points (itself included) lie within
``eps`` (distance <= eps); core points within ``eps`` of each other share a cluster; everything else is
noise (-1) unless it lies within ``eps`` of a core point (a *border* point). sklearn expands clusters in
index order, so (i) clusters are numbered by their lowest-index core point and (ii) a border point next to
several clusters joins the one numbered first. Both rules are reproduced here, so the labels are identical.

Algorithm: points are sorted into cubes of side ``eps/sqrt(3)`` (diagonal ``eps``): all points of a cube
are mutual neighbours, so a cube with ``>= min_samples`` points makes all of them core without a query, and
all core points of one cube belong to one cluster. Neighbouring cubes lie in a 5x5x5 block. Cubes are
sorted by (BEV column, z); a dense table maps a column id to its run of cubes (binary search when the grid
is too large for a table), so the 25 columns of a block are 25 lookups per column, and within a column a
scan starts at the first cube at most 2 below. Clusters are a union-find over cubes: two cubes are joined
as soon as one core pair between them lies within ``eps`` (early exit, skipped when already joined or when
the bounding boxes of their core points are farther apart than ``eps``), which keeps dense clouds
(10 sweeps, 2 M points on a spot) near O(N).
"""

from __future__ import annotations

import numba as nb
import numpy as np

_PAD = 2  # cube-index padding: the +-2 neighbour offsets never wrap into another column
_REACH = 2  # cubes of side eps/sqrt(3): neighbours lie at most 2 cubes away along each axis
_TABLE_MAX = 1 << 24  # up to this many BEV columns: counting sort and a dense column table (else sorts)
# neighbour column offsets within +-_REACH, nearest first: the core test's early exit at min_samples comes sooner
_COLS = sorted(((dx, dy) for dx in range(-_REACH, _REACH + 1) for dy in range(-_REACH, _REACH + 1)),
               key=lambda d: d[0] ** 2 + d[1] ** 2)
_COLX = np.array([d[0] for d in _COLS], np.int64)
_COLY = np.array([d[1] for d in _COLS], np.int64)


@nb.njit(cache=True, inline="always")
def _find(parent, a):
    while parent[a] != a:
        parent[a] = parent[parent[a]]  # path halving
        a = parent[a]
    return a


@nb.njit(cache=True)
def bounds(xyz):
    """Per-column (min, max) of a 2-D array and whether all values are finite (numpy's axis-0 reductions
    of (N, 3) rows are ~10x slower)."""
    lo = np.full(xyz.shape[1], np.inf)
    hi = np.full(xyz.shape[1], -np.inf)
    finite = True
    for i in range(xyz.shape[0]):
        for j in range(xyz.shape[1]):
            v = xyz[i, j]
            if not np.isfinite(v):
                finite = False
            if v < lo[j]:
                lo[j] = v
            if v > hi[j]:
                hi[j] = v
    return lo, hi, finite


@nb.njit(cache=True, inline="always")
def _gap(d, f):
    """Gap (in cube units) between a point at fraction ``f`` of its cube and the cube ``d`` steps away."""
    if d > 0:
        return d - f
    if d < 0:
        return f - d - 1.0
    return 0.0


@nb.njit(cache=True, inline="always")
def _dist2(p, i, q):
    """Squared distance of points ``i`` and ``q``, summed x, y, z in this order (``_box_gap2`` relies on it)."""
    dx = p[q, 0] - p[i, 0]
    dy = p[q, 1] - p[i, 1]
    dz = p[q, 2] - p[i, 2]
    return dx * dx + dy * dy + dz * dz


@nb.njit(cache=True, inline="always")
def _column_gap2(cx, cy, fr, i):
    """Squared BEV gap (cube units) between point ``i`` and the column ``(cx, cy)`` columns away."""
    gx = _gap(cx, fr[i, 0])
    gy = _gap(cy, fr[i, 1])
    return gx * gx + gy * gy


@nb.njit(cache=True)
def _sort_cubes(xyz, lo, side, ny, nz, n_cols):
    """Points sorted by cube key (column, z): order, sorted points, their in-cube fractions, cube starts and
    z indices, and the non-empty columns (ids and first cube of each)."""
    n = xyz.shape[0]
    col = np.empty(n, np.int64)
    zc = np.empty(n, np.int64)
    for i in range(n):
        col[i] = (np.int64(np.floor((xyz[i, 0] - lo[0]) / side)) + _PAD) * ny + np.int64(
            np.floor((xyz[i, 1] - lo[1]) / side)) + _PAD
        zc[i] = np.int64(np.floor((xyz[i, 2] - lo[2]) / side)) + _PAD
    if n_cols <= _TABLE_MAX:
        # LSD counting sort: by z cube, then stably by column (O(N + columns), no comparison sort)
        cnt = np.zeros(nz + 1, np.int64)
        for i in range(n):
            cnt[zc[i] + 1] += 1
        for j in range(nz):
            cnt[j + 1] += cnt[j]
        tmp = np.empty(n, np.int64)
        for i in range(n):
            tmp[cnt[zc[i]]] = i
            cnt[zc[i]] += 1
        ccnt = np.zeros(n_cols + 1, np.int64)
        for i in range(n):
            ccnt[col[i] + 1] += 1
        for j in range(n_cols):
            ccnt[j + 1] += ccnt[j]
        order = np.empty(n, np.int64)
        for t in range(n):
            i = tmp[t]
            order[ccnt[col[i]]] = i
            ccnt[col[i]] += 1
    else:
        order = np.argsort(col * nz + zc, kind="mergesort")
    p = np.empty((n, 3))
    fr = np.empty((n, 3))
    key = np.empty(n, np.int64)
    for t in range(n):
        i = order[t]
        for a in range(3):
            p[t, a] = xyz[i, a]
            f = (xyz[i, a] - lo[a]) / side  # the same arithmetic as the cube index: fraction in [0, 1)
            fr[t, a] = f - np.floor(f)
        key[t] = col[i] * nz + zc[i]
    nc = 1
    ncol = 1
    for t in range(1, n):
        if key[t] != key[t - 1]:
            nc += 1
            if key[t] // nz != key[t - 1] // nz:
                ncol += 1
    cstart = np.empty(nc + 1, np.int64)
    cz = np.empty(nc, np.int64)
    ucol = np.empty(ncol, np.int64)
    colstart = np.empty(ncol + 1, np.int64)
    c = 0
    j = 0
    for t in range(n):
        if t == 0 or key[t] != key[t - 1]:
            cstart[c] = t
            cz[c] = key[t] % nz
            if t == 0 or key[t] // nz != key[t - 1] // nz:
                ucol[j] = key[t] // nz
                colstart[j] = c
                j += 1
            c += 1
    cstart[nc] = n
    colstart[ncol] = nc
    return order, p, fr, cstart, cz, ucol, colstart


@nb.njit(cache=True)
def _column_table(ucol, n_cols):
    """Dense column id -> column number (-1: empty) when the grid is small enough, else an empty table
    (``_neighbours`` then binary-searches ``ucol``)."""
    if n_cols > _TABLE_MAX:
        return np.full(0, -1, np.int32)
    table = np.full(n_cols, -1, np.int32)
    for j in range(len(ucol)):
        table[ucol[j]] = j
    return table


@nb.njit(cache=True, inline="always")
def _neighbours(j, ucol, colstart, table, coff, forward, nk, nlo, nhi):
    """The non-empty columns of the block around column ``j`` (only those after it when ``forward``): returns
    their number m; for t < m, ``nk[t]`` is the offset index k (column ``coff[k]`` away) and cubes
    ``nlo[t]..nhi[t]-1`` are its cubes. Sparse keyframes leave most of the 25 columns empty."""
    m = 0
    for k in range(len(coff)):
        if forward and coff[k] < 0:
            continue
        q = ucol[j] + coff[k]
        if len(table):
            e = table[q]
        else:
            e = np.searchsorted(ucol, q)
            if e >= len(ucol) or ucol[e] != q:
                e = -1
        if e >= 0:
            nk[m] = k
            nlo[m] = colstart[e]
            nhi[m] = colstart[e + 1]
            m += 1
    return m


@nb.njit(cache=True, inline="always")
def _skip_below(cz, zmin, nlo, nhi, k):
    """First cube of neighbour range ``k`` (an index into ``_neighbours``' lists) at z index >= ``zmin``; the range start is advanced for good, as
    the cubes of a column are visited in increasing z (tall facade columns would otherwise be rescanned)."""
    d = nlo[k]
    while d < nhi[k] and cz[d] < zmin:
        d += 1
    nlo[k] = d
    return d


@nb.njit(cache=True, inline="always")
def _box_gap2(bmin, bmax, c, lo, hi):
    """Squared gap between box ``c`` and the box ``lo``..``hi`` (a point when lo is hi). Summed in the order
    of the pair distances, so it never exceeds any computed distance between points of the two boxes
    (rounding is monotone): pruning by it is exact."""
    g = 0.0
    for a in range(3):
        d = max(bmin[c, a] - hi[a], lo[a] - bmax[c, a], 0.0)
        g += d * d
    return g


@nb.njit(cache=True)
def _dbscan_sorted(p, fr, order, cstart, cz, ucol, colstart, table, coff, colx, coly, eps2, lim, min_samples):
    """Labels (original order) for points ``p`` sorted by cube; ``lim``: eps^2 in cube units (pruning).

    Cubes of a column are sorted by z, so a neighbour column's scan starts at the first cube at most 2 below
    (``_skip_below``) and stops at the first more than 2 above.
    """
    n = p.shape[0]
    nc = len(cz)
    ncol = len(ucol)
    no = len(coff)
    core = np.zeros(n, np.bool_)
    nk = np.zeros(no, np.int64)
    nlo = np.zeros(no, np.int64)
    nhi = np.zeros(no, np.int64)
    m = 0
    # 1. core test; dense cubes need none, others count neighbours with an early exit at min_samples
    for j in range(ncol):
        looked = False
        for c in range(colstart[j], colstart[j + 1]):
            a0, a1 = cstart[c], cstart[c + 1]
            if a1 - a0 >= min_samples:
                core[a0:a1] = True
                continue
            if not looked:
                m = _neighbours(j, ucol, colstart, table, coff, False, nk, nlo, nhi)
                looked = True
            for i in range(a0, a1):
                cnt = a1 - a0  # the points of its own cube are all neighbours (diagonal eps)
                for t in range(m):
                    g2 = _column_gap2(colx[nk[t]], coly[nk[t]], fr, i)
                    if g2 > lim:
                        continue
                    for d in range(_skip_below(cz, cz[c] - _REACH, nlo, nhi, t), nhi[t]):
                        dz = cz[d] - cz[c]
                        if dz > _REACH:
                            break
                        if d == c:
                            continue
                        gz = _gap(dz, fr[i, 2])
                        if g2 + gz * gz > lim:
                            continue
                        for q in range(cstart[d], cstart[d + 1]):
                            if _dist2(p, i, q) <= eps2:
                                cnt += 1
                        if cnt >= min_samples:
                            break
                    if cnt >= min_samples:
                        break
                core[i] = cnt >= min_samples
    # 2. union-find over cubes holding core points: join when one core pair lies within eps; each pair of
    # cubes is looked at once, from the one that comes first (columns with coff < 0 come earlier)
    parent = np.arange(nc)
    has_core = np.zeros(nc, np.bool_)
    # bounding box of each cube's core points: most cube pairs that cannot link (two objects a few
    # decimetres apart) are rejected by their boxes, without a loop over their points
    bmin = np.full((nc, 3), np.inf)
    bmax = np.full((nc, 3), -np.inf)
    for c in range(nc):
        for i in range(cstart[c], cstart[c + 1]):
            if core[i]:
                has_core[c] = True
                for a in range(3):
                    bmin[c, a] = min(bmin[c, a], p[i, a])
                    bmax[c, a] = max(bmax[c, a], p[i, a])
    for j in range(ncol):
        looked = False
        for c in range(colstart[j], colstart[j + 1]):
            if not has_core[c]:
                continue
            if not looked:
                m = _neighbours(j, ucol, colstart, table, coff, True, nk, nlo, nhi)
                looked = True
            ra = _find(parent, c)
            for t in range(m):
                k = nk[t]
                d0 = c + 1 if coff[k] == 0 else _skip_below(cz, cz[c] - _REACH, nlo, nhi, t)
                for d in range(d0, nhi[t]):
                    ddz = cz[d] - cz[c]
                    if ddz > _REACH:
                        break
                    if not has_core[d]:
                        continue
                    rb = _find(parent, d)
                    if ra == rb or _box_gap2(bmin, bmax, c, bmin[d], bmax[d]) > eps2:
                        continue
                    linked = False
                    for i in range(cstart[c], cstart[c + 1]):
                        if not core[i] or _box_gap2(bmin, bmax, d, p[i], p[i]) > eps2:
                            continue  # this point is too far from the core points of cube d for any pair
                        for q in range(cstart[d], cstart[d + 1]):
                            if core[q]:
                                if _dist2(p, i, q) <= eps2:
                                    linked = True
                                    break
                        if linked:
                            break
                    if linked:
                        parent[max(ra, rb)] = min(ra, rb)
                        ra = min(ra, rb)
    # sklearn numbers clusters by their lowest-index core point ("seed") and gives a border point
    # the cluster expanded first, i.e. the neighbouring one with the lowest seed
    big = np.iinfo(np.int64).max
    root = np.full(n, -1, np.int64)
    croot = np.full(nc, -1, np.int64)  # the core points of a cube are mutual neighbours: one root per cube
    seed = np.full(nc, big, np.int64)
    for c in range(nc):
        if has_core[c]:
            r = _find(parent, c)
            croot[c] = r
            for i in range(cstart[c], cstart[c + 1]):
                if core[i]:
                    root[i] = r
                    seed[r] = min(seed[r], order[i])
    # 3. border points: the neighbouring core component with the lowest seed
    border = np.full(n, -1, np.int64)
    for j in range(ncol):
        looked = False
        for c in range(colstart[j], colstart[j + 1]):
            a0, a1 = cstart[c], cstart[c + 1]
            if a1 - a0 >= min_samples:
                continue
            for i in range(a0, a1):
                if core[i]:
                    continue
                if not looked:
                    m = _neighbours(j, ucol, colstart, table, coff, False, nk, nlo, nhi)
                    looked = True
                best = np.int64(-1)
                for t in range(m):
                    g2 = _column_gap2(colx[nk[t]], coly[nk[t]], fr, i)
                    if g2 > lim:
                        continue
                    for d in range(_skip_below(cz, cz[c] - _REACH, nlo, nhi, t), nhi[t]):
                        dz = cz[d] - cz[c]
                        if dz > _REACH:
                            break
                        if not has_core[d]:
                            continue
                        r = croot[d]
                        if best >= 0 and seed[r] >= seed[best]:
                            continue  # this cube cannot offer a cluster expanded earlier
                        if _box_gap2(bmin, bmax, d, p[i], p[i]) > eps2:
                            continue
                        for q in range(cstart[d], cstart[d + 1]):
                            if core[q]:
                                if _dist2(p, i, q) <= eps2:
                                    best = r
                                    break
                border[i] = best
    # number components by seed rank
    roots = np.flatnonzero(seed < big)
    rank = np.argsort(seed[roots])
    num = np.full(nc, -1, np.int64)
    for r in range(len(roots)):
        num[roots[rank[r]]] = r
    labels = np.full(n, -1, np.int64)
    for i in range(n):
        r = root[i] if root[i] >= 0 else border[i]
        if r >= 0:
            labels[order[i]] = num[r]
    return labels


def dbscan(xyz: np.ndarray, eps: float = 0.75, min_samples: int = 5) -> np.ndarray:
    """Cluster ``xyz`` (N, 3) finite points; int64 (N,) labels equal to sklearn's ``DBSCAN(eps, min_samples)``.

    Raises ValueError for non-finite input, ``eps <= 0`` or an extent too large to index with int64 keys.
    """
    xyz = np.ascontiguousarray(xyz, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"dbscan: xyz must be (N, 3), got {xyz.shape}")
    if not eps > 0:
        raise ValueError(f"dbscan: eps must be > 0, got {eps}")
    if len(xyz) == 0:
        return np.zeros(0, np.int64)
    lo, hi, finite = bounds(xyz)
    if not finite:
        raise ValueError("dbscan: non-finite coordinates")
    side = eps / np.sqrt(3.0)
    dims = np.floor((hi - lo) / side) + 1 + 2 * _PAD
    if float(np.prod(dims)) >= 2.0**62:
        raise ValueError(f"dbscan: extent {hi - lo} m is too large for eps {eps} (cube keys would overflow int64)")
    nx, ny, nz = (int(v) for v in dims)
    order, p, fr, cstart, cz, ucol, colstart = _sort_cubes(xyz, lo, side, ny, nz, nx * ny)
    table = _column_table(ucol, nx * ny)
    # nearest columns first: the core test's early exit at min_samples then comes sooner
    coff = _COLX * ny + _COLY
    eps2 = float(eps) ** 2
    lim = 3.0 * (1 + 1e-9) + 1e-9  # eps^2 / side^2, widened: the pruning must never drop a true neighbour
    return _dbscan_sorted(p, fr, order, cstart, cz, ucol, colstart, table, coff, _COLX, _COLY, eps2, lim,
                          max(1, int(min_samples)))
