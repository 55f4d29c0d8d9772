"""Why boxes are missed by semantic pooling: a breakdown of every GT box (>= 5 points) by cause.

Run:  PYTHONPATH=$PWD python benchmarks/pooling_failures.py --dataroot DIR --version V [--cache-dir C]
          [--set pooling.key=value ...]
Causes of a missed box, first that applies: *ground* (>= 50 % of its points called ground), *noise* (>= 50 %
DBSCAN noise), *filtered* (>= 50 % in clusters the filters dropped), *merged* (one region holds >= 50 % of
the box but the region lies mostly outside it), else *split/partial*. Needs ``calico prepare`` first.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import Counter

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataroot", required=True)
    ap.add_argument("--version", default="v1.0-trainval")
    ap.add_argument("--cache-dir", default="")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    from calico.config import get_config
    from calico.data.dataset import NuScenesDataset
    from calico.pooling.core import cluster, semantic_pooling
    from calico.pooling.metrics import points_in_boxes

    cfg = get_config("paper", list(args.set))
    cfg.data.dataroot, cfg.data.version, cfg.data.cache_dir = args.dataroot, args.version, args.cache_dir
    cfg.data.load_images = False
    ds = NuScenesDataset(cfg, split=None, load_images=False, with_regions=False)
    causes: Counter = Counter()
    by_class: Counter = Counter()
    for i in range(len(ds)):
        pts, rec = ds.load_points(i), ds.records[i]
        reg, gnd = semantic_pooling(pts, cfg.pooling, return_ground=True)
        xyz = pts[:, :3].astype(np.float64)
        ng = np.flatnonzero(~gnd)
        lab = np.full(len(xyz), -1)
        lab[ng] = cluster(xyz[ng], cfg.pooling)
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
    total = sum(causes.values())
    print(f"`PYTHONPATH=$PWD python benchmarks/pooling_failures.py {' '.join(sys.argv[1:])}`\n")
    print(", ".join(f"{k} {v / total:.3f}" for k, v in causes.most_common()) + f" (of {total} boxes)")
    print("largest (class, cause): " + ", ".join(f"{c} {k}: {v}" for (c, k), v in by_class.most_common(8)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
