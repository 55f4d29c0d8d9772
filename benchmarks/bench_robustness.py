"""Per-frame cost of each LiDAR corruption and of spoofing on a real nuScenes keyframe (one core).

    PYTHONPATH=. python benchmarks/bench_robustness.py [--dataroot ../shared/data/nuscenes-scene-0916]

Prints a markdown table. The suite applies these on the fly in the loader, so they must stay far below
the cost of loading and running the model (tens of ms per frame on CPU).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from calico.robustness.corruptions import CORRUPTIONS, corrupt
from calico.robustness.spoofing import spoof

torch.set_num_threads(1)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataroot", default=str(Path(__file__).resolve().parents[2] / "shared/data/nuscenes-scene-0916"))
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    files = sorted((Path(args.dataroot) / "samples" / "LIDAR_TOP").glob("*.pcd.bin"))
    if not files:
        print(f"no LiDAR files under {args.dataroot}", file=sys.stderr)
        return 1
    pts = np.fromfile(files[0], dtype=np.float32).reshape(-1, 5).copy()
    pts[:, 4] = 0.0
    l2e = np.eye(4)
    l2e[:3, :3] = [[0, 1, 0], [-1, 0, 0], [0, 0, 1]]  # nuScenes LIDAR_TOP: +y forward
    rows = []
    for name in CORRUPTIONS:
        for sev in (1, 5):
            t = time.perf_counter()
            for k in range(args.repeat):
                corrupt(pts, name, sev, np.random.default_rng(k))
            rows.append((f"{name} s{sev}", 1000 * (time.perf_counter() - t) / args.repeat))
    t = time.perf_counter()
    for k in range(args.repeat):
        spoof(pts, 200, np.random.default_rng(k), l2e)
    rows.append(("spoof 200 pts", 1000 * (time.perf_counter() - t) / args.repeat))
    print(f"`PYTHONPATH=. python benchmarks/bench_robustness.py` — {len(pts)} points, 1 thread\n")
    print("| perturbation | ms / frame |\n|---|---:|")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
