"""Issue 17's strict-rule recall per class on several sources at once, for one set of pooling overrides.

Run:  PYTHONPATH=$PWD python benchmarks/pooling_sources.py \
          --source 0916=../shared/data/nuscenes-scene-0916:v1.0-mini:/tmp/pool17-cache-0916 \
          --source pandaset=/tmp/pool17-pandaset:v1.0-pandaset:/tmp/pool17-cache-panda \
          --source synth=/tmp/pool17-synth:v1.0-synth:/tmp/pool17-cache-synth \
          [--set pooling.key=value ...] [--causes]
Keyframes without sweeps (the issue's setting; ``calico pool --evaluate --sweeps 0`` gives the same strict
numbers, one source per run). One line per source: overall and per-class strict recall (found / boxes),
region purity (share of semantic-rich keyframe points inside a GT box) and the mean pooling time per keyframe (not a benchmark: use bench_pooling.py for speed). ``--causes``: the
largest (class, cause) groups of the missed boxes, causes as in pooling_failures.py (ground, noise,
filtered, merged, split). Needs ``calico prepare`` (run on first use).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import Counter, defaultdict

import numpy as np


def _frames(root: str, version: str, cache: str):
    from calico.config import get_config
    from calico.data.dataset import NuScenesDataset

    cfg = get_config("paper", [])
    cfg.data.dataroot, cfg.data.version, cfg.data.cache_dir, cfg.data.sweeps = root, version, cache, 0
    cfg.data.load_images = False
    ds = NuScenesDataset(cfg, split=None, load_images=False, with_regions=False)
    for i in range(len(ds)):
        pts, rec = ds.load_points(i), ds.records[i]
        yield pts[pts[:, 4] == 0], np.asarray(rec["gt_boxes"], np.float64), list(rec["gt_names"])


def _cause(reg, gnd, lab, idx, inside_big, rsize) -> str | None:
    """None when the box is found (strict rule), else why it was missed."""
    r = reg[idx]
    rr = r[r >= 0]
    held = 0
    if len(rr):
        best = np.bincount(rr).argmax()
        held = int((rr == best).sum())
        if held * 2 >= len(idx) and (reg[inside_big] == best).sum() * 2 >= rsize[best]:
            return None
    if gnd[idx].mean() >= 0.5:
        return "ground"
    if (lab[idx] < 0).mean() >= 0.5:
        return "noise"
    if (r < 0).mean() >= 0.5:
        return "filtered"
    return "merged" if held * 2 >= len(idx) else "split"


def run(name: str, frames, sets: list[str], causes: bool) -> str:
    from calico.config import get_config
    from calico.data.geometry import points_in_boxes
    from calico.pooling.core import cluster, semantic_pooling
    from calico.pooling.metrics import evaluate_strict

    cfg = get_config("paper", list(sets)).pooling
    acc: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    why: Counter = Counter()
    seconds, n_frames, rich, rich_in = 0.0, 0, 0, 0
    for pts, boxes, names in frames:
        t0 = time.perf_counter()
        reg, gnd = semantic_pooling(pts, cfg, return_ground=True)
        seconds += time.perf_counter() - t0
        n_frames += 1
        xyz = pts[:, :3].astype(np.float64)
        for k, v in evaluate_strict(xyz, reg, boxes, names).items():
            acc[k] = [a + b for a, b in zip(acc[k], v)]
        inside = points_in_boxes(xyz, boxes)
        rich += int((reg >= 0).sum())
        rich_in += int(((reg >= 0) & inside.any(axis=1)).sum()) if len(boxes) else 0
        if not causes:
            continue
        ng = np.flatnonzero(~gnd)
        lab = np.full(len(xyz), -1)
        lab[ng] = cluster(xyz[ng], cfg)
        big = boxes.copy()
        big[:, 3:6] *= 1.1
        inside_big = points_in_boxes(xyz, big)
        rsize = np.bincount(reg[reg >= 0]) if (reg >= 0).any() else np.zeros(1)
        for b, n in enumerate(names):
            idx = np.flatnonzero(inside[:, b])
            if len(idx) >= 5:
                c = _cause(reg, gnd, lab, idx, inside_big[:, b], rsize)
                if c:
                    why[(n, c)] += 1
    found, total = sum(v[0] for v in acc.values()), sum(v[1] for v in acc.values())
    line = f"{name}: overall {found / max(total, 1):.3f} of {total} | " + ", ".join(
        f"{k} {v[0] / v[1]:.3f} of {v[1]}" for k, v in sorted(acc.items()) if v[1])
    line += f" | purity {rich_in / max(rich, 1):.3f} | {1e3 * seconds / max(n_frames, 1):.0f} ms/keyframe"
    if causes:
        line += "\n  missed: " + ", ".join(f"{c} {k} {v}" for (c, k), v in why.most_common(12))
    return line


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", action="append", required=True, metavar="NAME=DATAROOT:VERSION:CACHE_DIR")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--causes", action="store_true")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    print(f"`PYTHONPATH=$PWD python benchmarks/pooling_sources.py {' '.join(sys.argv[1:])}`\n")
    for spec in args.source:
        name, rest = spec.split("=", 1)
        root, version, cache = rest.rsplit(":", 2)
        print(run(name, list(_frames(root, version, cache)), args.set, args.causes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
