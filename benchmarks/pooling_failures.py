"""Why boxes are missed by semantic pooling: a breakdown of every GT box (>= 5 points) by cause.

Run:  PYTHONPATH=$PWD python benchmarks/pooling_failures.py --dataroot DIR --version V [--cache-dir C]
          [--set pooling.key=value ...] [--rules]
Causes of a missed box, first that applies: *ground* (>= 50 % of its points called ground), *noise* (>= 50 %
DBSCAN noise), *filtered* (>= 50 % in clusters the filters dropped), *merged* (one region holds >= 50 % of
the box but the region lies mostly outside it), else *split/partial*. Needs ``calico prepare`` first.
``--rules``: for *filtered* boxes, which filter rule dropped most of their points (``rule_trace``), per class.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import Counter

import numpy as np

# filter rules as bits of a per-point reason code (rule_trace); several can fail at once
RULES = ("few", "long", "area", "top", "bottom", "pole", "long>cap", "crumbled")


def _fails(stats: dict, cfg) -> np.ndarray:
    """Per-cluster bitmask of the filter rules (RULES order) a cluster fails, mirroring ``keep_clusters``."""
    pole = (stats["top"] >= cfg.pole_min_height) & (stats["length"] <= cfg.pole_max_width)
    tests = (stats["count"] < cfg.min_cluster_points, stats["length"] > cfg.max_extent,
             stats["area"] > cfg.max_area, stats["top"] > cfg.max_height,
             (stats["bottom"] > cfg.max_bottom) & (stats.get("supported", 0.0) < 0.5), pole)
    return sum(t.astype(np.int64) << j for j, t in enumerate(tests))


def rule_trace(xyz: np.ndarray, h: np.ndarray, labels: np.ndarray, cfg, eps_list: tuple,
               sup: np.ndarray | None = None) -> np.ndarray:
    """Per point, the bitmask of rules that dropped it at the deepest level of ``core._split`` it reached
    (0: kept or DBSCAN noise). Mirrors ``_split``: too-large clusters up to ``split_max_extent`` are
    re-clustered; their points left as noise at the smaller eps get *crumbled* plus the parent's rules."""
    import dataclasses

    from calico.pooling.core import _big_pieces, _compact, cluster
    from calico.pooling.filters import cluster_stats, keep_clusters

    reason = np.zeros(len(labels), np.int64)
    k = int(labels.max(initial=-1)) + 1
    if k == 0:
        return reason
    stats = cluster_stats(xyz, h, labels, k, sup)
    keep, fails = keep_clusters(stats, cfg), _fails(stats, cfg)
    big = (stats["length"] > cfg.max_extent) | (stats["area"] > cfg.max_area)
    retry = ~keep & (stats["count"] >= cfg.min_cluster_points) & big
    fails |= (retry & (stats["length"] > cfg.split_max_extent)).astype(np.int64) << 6
    if eps_list:
        retry &= stats["length"] <= cfg.split_max_extent
    else:
        retry[:] = False
    lab0 = np.maximum(labels, 0)
    dropped = (labels >= 0) & ~keep[lab0]
    reason[dropped] = fails[lab0[dropped]]
    try_kept = bool(eps_list) and cfg.split_kept_share < 1.0
    idx = np.flatnonzero((labels >= 0) & (retry | (keep & try_kept))[lab0])
    if len(idx) == 0:
        return reason
    sub = cluster(xyz[idx], dataclasses.replace(cfg, eps=eps_list[0]))
    parent = labels[idx]
    if try_kept:
        nbig = _big_pieces(parent, sub, k, stats["count"], float(cfg.split_kept_share), int(cfg.split_min_points))
        retry |= keep & (nbig >= 2)
    r = retry[parent]
    if r.any():
        ir = idx[r]
        reason[ir] = np.where(sub[r] < 0, fails[parent[r]] | (1 << 7), 0)
        sub_cfg = dataclasses.replace(cfg, eps=eps_list[0], min_cluster_points=cfg.split_min_points,
                                      split_kept_share=1.0)
        deeper = rule_trace(xyz[ir], h[ir], _compact(sub[r]), sub_cfg, eps_list[1:], None if sup is None else sup[ir])
        reason[ir] = np.where(sub[r] >= 0, deeper, reason[ir])
    return reason


def rule_name(code: int) -> str:
    """'top+bottom' style name of a reason bitmask."""
    return "+".join(n for j, n in enumerate(RULES) if code >> j & 1) or "kept"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataroot", required=True)
    ap.add_argument("--version", default="v1.0-trainval")
    ap.add_argument("--cache-dir", default="")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--rules", action="store_true", help="per-rule breakdown of filtered boxes")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    from calico.config import get_config
    from calico.data.dataset import NuScenesDataset
    from calico.data.geometry import points_in_boxes
    from calico.pooling.core import cluster, semantic_pooling
    from calico.pooling.filters import support_below
    from calico.pooling.ground import ground_mask

    cfg = get_config("paper", list(args.set))
    cfg.data.dataroot, cfg.data.version, cfg.data.cache_dir = args.dataroot, args.version, args.cache_dir
    cfg.data.load_images = False
    ds = NuScenesDataset(cfg, split=None, load_images=False, with_regions=False)
    causes: Counter = Counter()
    by_class: Counter = Counter()
    by_rule: Counter = Counter()
    for i in range(len(ds)):
        pts, rec = ds.load_points(i), ds.records[i]
        reg, gnd = semantic_pooling(pts, cfg.pooling, return_ground=True)
        xyz = pts[:, :3].astype(np.float64)
        ng = np.flatnonzero(~gnd)
        lab = np.full(len(xyz), -1)
        lab[ng] = cluster(xyz[ng], cfg.pooling)
        if args.rules:
            p = cfg.pooling
            _, h = ground_mask(xyz, p.ground_cell, p.ground_thresh, p.ground_max_slope, p.ground_passes,
                               p.ground_radial)
            why = np.zeros(len(xyz), np.int64)
            sup = support_below(xyz[ng], lab[ng], p.ground_cell, p.bottom_support_gap, p.bottom_support_max) \
                if p.bottom_support_gap > 0 else None
            why[ng] = rule_trace(xyz[ng], h[ng], lab[ng], p, tuple(p.split_eps), sup)
        inside = points_in_boxes(xyz, np.asarray(rec["gt_boxes"]))
        rsize = np.bincount(reg[reg >= 0]) if (reg >= 0).any() else np.zeros(1)
        for b, name in enumerate(rec["gt_names"]):
            idx = np.flatnonzero(inside[:, b])
            if len(idx) < 5:
                continue
            r = reg[idx]
            rr = r[r >= 0]
            best = np.bincount(rr).argmax() if len(rr) else -1
            if best >= 0 and np.bincount(rr)[best] * 2 >= len(idx) and np.bincount(rr)[best] * 2 >= rsize[best]:
                causes["found"] += 1
                continue
            if gnd[idx].mean() >= 0.5:
                cause = "ground"
            elif (lab[idx] < 0).mean() >= 0.5:
                cause = "noise"
            elif (r < 0).mean() >= 0.5:
                cause = "filtered"
            elif best >= 0 and np.bincount(rr)[best] * 2 >= len(idx):
                cause = "merged"
            else:
                cause = "split/partial"
            causes[cause] += 1
            by_class[(name, cause)] += 1
            if cause == "filtered" and args.rules:
                w = why[idx][(r < 0) & (lab[idx] >= 0)]
                by_rule[(name, rule_name(int(np.bincount(w).argmax())) if len(w) else "?")] += 1
    total = sum(causes.values())
    print(f"`PYTHONPATH=$PWD python benchmarks/pooling_failures.py {' '.join(sys.argv[1:])}`\n")
    print(", ".join(f"{k} {v / total:.3f}" for k, v in causes.most_common()) + f" (of {total} boxes)")
    print("largest (class, cause): " + ", ".join(f"{c} {k}: {v}" for (c, k), v in by_class.most_common(8)))
    if args.rules:
        print("\nfiltered boxes by the rule that dropped most of their points (deepest re-clustering level;"
              " long>cap: longer than split_max_extent, not re-clustered; crumbled: noise when re-clustered):\n")
        print("| class | rule | boxes |\n|---|---|---:|")
        for (c, k), v in sorted(by_rule.items(), key=lambda kv: (kv[0][0], -kv[1])):
            print(f"| {c} | {k} | {v} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
