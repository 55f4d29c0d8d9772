"""Cut kept clusters that fall apart in bird's-eye view: people standing side by side, a person by a car.

Two pedestrians 0.3 m apart stay one DBSCAN cluster at eps 0.35 m, and a smaller 3-D eps is no cure: the
rings of a 32-beam LiDAR lie ~0.35 m apart vertically at 15 m, so a person crumbles into one slice per ring.
Seen from above the rings of one body overlap on the same footprint while the empty gap between two bodies
stays, so the kept clusters are re-clustered on (x, y) alone at a small ``bev_split_eps``; a cluster that
falls apart into >= 2 pieces holding ``bev_split_share`` of its points each is cut, and its remaining points
(DBSCAN noise, small fragments) join the nearest big piece. Only clusters up to ``bev_split_max_extent``
long (a group of people, a person next to a car) are tried. Measured in BENCHMARKS.md.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from scipy.spatial import cKDTree

from calico.pooling.dbscan import dbscan
from calico.pooling.filters import cluster_stats


@nb.njit(cache=True)
def _layout(xyz, labels, cand, xmin, ymin, offset):
    """Indices of the points of candidate clusters and their (x, y, 0) moved so that clusters lie side by
    side along x, ``offset`` apart (one DBSCAN run then never joins two clusters; compact bounds keep its
    grid small)."""
    n = len(labels)
    idx = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        a = labels[i]
        if a >= 0 and cand[a]:
            idx[m] = i
            m += 1
    out = np.zeros((m, 3))
    for t in range(m):
        i = idx[t]
        a = labels[i]
        out[t, 0] = xyz[i, 0] - xmin[a] + offset[a]
        out[t, 1] = xyz[i, 1] - ymin[a]
    return idx[:m], out


def _attach(p: np.ndarray, parent: np.ndarray, piece: np.ndarray, big: np.ndarray) -> np.ndarray:
    """Piece id for every point of a cut cluster: its own if big, else that of the nearest big-piece point of
    the same ``parent`` cluster (BEV distance).

    One KD-tree query for all points, clusters kept apart by a third axis 1e6 m per cluster id: O(m log m),
    where a scan over the cluster's points would be quadratic in its size (a dense blob of 10 sweeps).
    """
    own = (piece >= 0) & big[np.maximum(piece, 0)]
    res = np.where(own, piece, -1)
    if not own.all():
        q = np.column_stack([p[:, 0], p[:, 1], parent * 1e6])
        _, j = cKDTree(q[own]).query(q[~own])
        res[~own] = piece[own][j]
    return res


def bev_split(xyz: np.ndarray, labels: np.ndarray, eps: float, min_points: int, share: float,
              min_piece: int, max_extent: float) -> np.ndarray:
    """Labels 0..R-1 (-1 kept) with each kept cluster that falls apart in BEV cut into its big pieces.

    Clusters whose BEV length exceeds ``max_extent`` or with fewer than ``2 * min_piece`` points are left
    alone; ``eps <= 0`` returns ``labels`` unchanged.
    """
    k = int(labels.max()) + 1 if len(labels) else 0
    if k == 0 or eps <= 0:
        return labels
    lab = np.asarray(labels, np.int64)
    # the BEV length rule of the filters; heights are not needed here
    st = cluster_stats(xyz, np.zeros(len(xyz)), lab, k)
    count, xmin, ymin, xmax, length = st["count"], st["x_min"], st["y_min"], st["x_max"], st["length"]
    cand = (length <= max_extent) & (count >= 2 * min_piece)
    if not cand.any():
        return labels
    width = np.where(cand, xmax - xmin, 0.0) + 2 * eps + 1.0
    offset = np.cumsum(width) - width
    idx, p = _layout(xyz, lab, cand, xmin, ymin, offset)
    sub = dbscan(p, eps, min_points)
    parent = lab[idx]
    ns = int(sub.max()) + 1
    if ns < 2:
        return labels
    # pieces are numbered by sub-cluster (each lies inside one parent)
    piece_parent = np.zeros(ns, np.int64)
    piece_parent[sub[sub >= 0]] = parent[sub >= 0]
    piece_n = np.bincount(sub[sub >= 0], minlength=ns)
    big = piece_n >= np.maximum(share * count[piece_parent], min_piece)
    cut = np.bincount(piece_parent[big], minlength=k) >= 2
    if not cut.any():
        return labels
    sel = cut[parent]
    piece = _attach(p[sel], parent[sel], sub[sel], big)
    # new ids: uncut clusters keep their order, cut ones are replaced by their big pieces
    keep_id = np.where(~cut, np.cumsum(~cut) - 1, -1)
    out = np.where(lab >= 0, keep_id[np.maximum(lab, 0)], -1)
    big_id = np.full(ns, -1, np.int64)
    big_id[big & cut[piece_parent]] = int((~cut).sum()) + np.arange(int((big & cut[piece_parent]).sum()))
    out[idx[sel]] = big_id[piece]
    return out
