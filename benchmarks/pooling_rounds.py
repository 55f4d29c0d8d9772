"""Pooling time per keyframe of several checkouts, interleaved in rounds (A B C A B C ...) on one core.

Why rounds: on the shared 2-core machine the same code's best-of-7 time varies by +-15 % between runs
(BENCHMARKS.md, semantic pooling), so two checkouts timed one after the other can differ by noise alone.
Interleaving them round by round exposes each to the same drift; compare them round by round.

Run:  python benchmarks/pooling_rounds.py CHECKOUT [CHECKOUT ...] [--rounds 4] [--reps 5]
          [--dataroot ../shared/data/nuscenes-scene-0916]
Each round runs every checkout in its own process (its own `calico`, numba cache and warm-up), pinned to the
last core, pooling all keyframes of the scene ``--reps`` times with the defaults of that checkout; it prints
the best and median of the reps in ms per keyframe.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import os, sys, time
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
import numpy as np
from pathlib import Path
from calico.config import PoolingConfig
from calico.pooling.core import semantic_pooling
clouds = []
for f in sorted(Path(sys.argv[1]).glob("samples/LIDAR_TOP/*.pcd.bin")):
    p = np.fromfile(f, dtype=np.float32).reshape(-1, 5)
    clouds.append(p[np.hypot(p[:, 0], p[:, 1]) > 1.0])  # the loader's 1 m self-return crop
cfg = PoolingConfig()
for c in clouds[:5]:
    semantic_pooling(c, cfg)  # numba load / compile
ts = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    for c in clouds:
        semantic_pooling(c, cfg)
    ts.append((time.perf_counter() - t) / len(clouds) * 1e3)
print(f"{min(ts):.2f} {float(np.median(ts)):.2f} {len(clouds)}")
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkouts", nargs="+", help="repository checkouts (worktrees) to compare")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dataroot", default="../shared/data/nuscenes-scene-0916")
    args = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    rows: dict[str, list[str]] = {c: [] for c in args.checkouts}
    for r in range(args.rounds):
        for c in args.checkouts:
            env["PYTHONPATH"] = str(Path(c).resolve())
            out = subprocess.run([sys.executable, "-c", _CHILD, args.dataroot, str(args.reps)], env=env,
                                 capture_output=True, text=True, check=True).stdout.split()
            rows[c].append(f"{out[0]} ({out[1]})")
            print(f"round {r + 1} {c}: best {out[0]} ms, median {out[1]} ms per keyframe ({out[2]} keyframes)",
                  flush=True)
    print(f"\n`python benchmarks/pooling_rounds.py {' '.join(args.checkouts)} --rounds {args.rounds} "
          f"--reps {args.reps}`\n")
    print("| checkout | " + " | ".join(f"round {i + 1}" for i in range(args.rounds)) + " |")
    print("|---|" + "---:|" * args.rounds)
    for c, vals in rows.items():
        print(f"| {c} | " + " | ".join(vals) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
