"""Cut rows of barriers (long, thin, low clusters) into object-sized pieces instead of rejecting them.

Temporary road barriers stand end to end, often interlocked: DBSCAN at any eps returns the whole row as one
cluster 10-40 m long, which the length filter rejects, so every barrier of the row is lost. A row is thin
(one barrier deep) and low (about 1 m), unlike facades and vehicles, so a cluster rejected only for its size
whose width across its principal axis is at most ``row_max_width`` and whose top lies between
``row_min_height`` and ``row_max_height`` above the ground is cut along that axis into equal pieces no longer
than ``row_piece_length`` (about one barrier), at its gaps first (``_pieces``). Low kerbs
(below ``row_min_height``) and walls or hedges taller than a barrier are left to the filters.

A shorter row (5-14 m) passes the size filters as one region holding several barriers, so kept clusters that
are thin and low and at least ``row_min_length`` long are cut the same way: longer than any car, and trucks,
buses and trailers are taller than a barrier.
"""

from __future__ import annotations

import numpy as np


def row_candidates(stats: dict[str, np.ndarray], keep: np.ndarray, cfg) -> np.ndarray:
    """(k,) bool: clusters low enough to be a row that were rejected only because they are too long or too
    large, or kept but at least ``row_min_length`` long (several barriers in one region)."""
    size = (stats["length"] > cfg.max_extent) | (stats["area"] > cfg.max_area)
    long_kept = keep & (stats["length"] >= cfg.row_min_length)
    low = stats["bottom"] <= cfg.max_bottom
    return (((~keep & size) | long_kept) & low & (stats["count"] >= cfg.min_cluster_points)
            & (stats["length"] <= cfg.split_max_extent)
            & (stats["top"] >= cfg.row_min_height) & (stats["top"] <= cfg.row_max_height))


def cut_rows(xyz: np.ndarray, labels: np.ndarray, cand: np.ndarray, cfg) -> tuple[np.ndarray, np.ndarray]:
    """``(piece, cut)``: piece id (0..P-1) per point of the candidate clusters thin enough to be a row, -1
    elsewhere (and for pieces with fewer than ``min_cluster_points`` points), and the (k,) mask of the clusters
    cut. ``labels``: cluster ids 0..k-1 (-1 noise); ``cand``: (k,) bool, the clusters to try."""
    out = np.full(len(labels), -1, np.int64)
    if cfg.row_piece_length <= 0 or not cand.any():
        return out, np.zeros(len(cand), bool)
    idx = np.flatnonzero((labels >= 0) & cand[np.maximum(labels, 0)])
    lab = np.asarray(labels, np.int64)[idx]
    k = len(cand)
    xy = np.asarray(xyz, np.float64)[idx, :2]
    n = np.bincount(lab, minlength=k).astype(np.float64)
    nz = np.maximum(n, 1.0)
    mean = np.stack([np.bincount(lab, xy[:, j], k) / nz for j in range(2)], axis=1)
    d = xy - mean[lab]
    cxx = np.bincount(lab, d[:, 0] * d[:, 0], k)
    cyy = np.bincount(lab, d[:, 1] * d[:, 1], k)
    cxy = np.bincount(lab, d[:, 0] * d[:, 1], k)
    theta = 0.5 * np.arctan2(2 * cxy, cxx - cyy)  # principal axis of each cluster's BEV footprint
    c, s = np.cos(theta)[lab], np.sin(theta)[lab]
    t = d[:, 0] * c + d[:, 1] * s  # along the row
    u = -d[:, 0] * s + d[:, 1] * c  # across it
    lo_t, hi_t = np.full(k, np.inf), np.full(k, -np.inf)
    lo_u, hi_u = np.full(k, np.inf), np.full(k, -np.inf)
    np.minimum.at(lo_t, lab, t)
    np.maximum.at(hi_t, lab, t)
    np.minimum.at(lo_u, lab, u)
    np.maximum.at(hi_u, lab, u)
    thin = cand & (hi_u - lo_u <= cfg.row_max_width)
    if not thin.any():
        return out, thin
    sel = np.flatnonzero(thin[lab])
    order = sel[np.lexsort((t[sel], lab[sel]))]  # the thin rows' points, by row, then along the row
    bounds = np.flatnonzero(np.diff(lab[order])) + 1
    n_out = 0
    for run in np.split(order, bounds):
        ids, n_out = _pieces(t[run], cfg.row_piece_length, cfg.row_gap, n_out)
        out[idx[run]] = ids
    small = np.bincount(out[out >= 0], minlength=n_out) < cfg.min_cluster_points
    out = np.where((out >= 0) & small[np.maximum(out, 0)], -1, out)
    keep = out >= 0
    if keep.any():  # renumber the surviving pieces 0..P-1
        present = np.zeros(n_out, bool)
        present[out[keep]] = True
        out[keep] = (np.cumsum(present) - 1)[out[keep]]
    return out, thin


def _pieces(t: np.ndarray, piece: float, gap: float, first: int) -> tuple[np.ndarray, int]:
    """Piece ids (from ``first``) of one row's sorted positions ``t`` along it, and the next free id.

    The row is cut first at its gaps (consecutive positions more than ``gap`` and 4 median spacings apart:
    barriers set down one by one leave a gap DBSCAN bridges), then each gapless run into
    ``round(length / piece)`` equal pieces (a run of interlocked barriers shows no boundary).
    """
    dt = np.diff(t)
    thr = max(gap, 4.0 * float(np.median(dt))) if len(dt) else gap
    seg = np.concatenate([[0], np.cumsum(dt > thr)])
    ids = np.empty(len(t), np.int64)
    nxt = first
    for s_id in range(int(seg[-1]) + 1):
        m = np.flatnonzero(seg == s_id)
        a, b = t[m[0]], t[m[-1]]
        n = max(1, int(round((b - a) / piece)))
        j = np.minimum(((t[m] - a) / max(b - a, 1e-9) * n).astype(np.int64), n - 1)
        ids[m] = nxt + j
        nxt += n
    return ids, nxt
