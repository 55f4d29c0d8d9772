"""Loading speed of the data layer: `calico prepare` per sample, and one sample (points, points+6 images).

    python benchmarks/bench_loader.py --dataroot ../shared/data/nuscenes-scene-0916 --version v1.0-mini

Prints a markdown snippet (with this command) for BENCHMARKS.md. One process, one thread.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time

import numpy as np
import torch

from calico.config import get_config
from calico.data.dataset import NuScenesDataset
from calico.data.prepare import prepare


def _time(fn, n: int) -> float:
    fn(0)
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t) / n


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataroot", required=True)
    p.add_argument("--version", default="v1.0-mini")
    p.add_argument("--config", default="paper")
    p.add_argument("-n", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = get_config(args.config)
    cfg.data.dataroot, cfg.data.version = args.dataroot, args.version
    with tempfile.TemporaryDirectory() as tmp:
        cfg.data.cache_dir = tmp
        t = time.perf_counter()
        index = prepare(cfg.data, progress=False)
        prep = (time.perf_counter() - t) / len(index["records"])
        ds = NuScenesDataset(cfg, index=index)
        n = min(args.n, len(ds))
        pts = _time(ds.load_points, n)
        full = _time(ds.__getitem__, n)
        npts = np.mean([len(ds.load_points(i)) for i in range(n)])
    cmd = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    print(f"Command: `{cmd}` (one thread; {len(index['records'])} samples indexed)\n")
    print("| step | ms / sample |\n|---|---|")
    print(f"| `calico prepare` (devkit tables → index, file checks) | {prep * 1e3:.1f} |")
    print(f"| points (keyframe + sweeps present, ego crop; {npts:.0f} points) | {pts * 1e3:.1f} |")
    H, W = cfg.data.image_size
    print(f"| full sample: points + 6 JPEGs decoded and resized to {W}x{H} | {full * 1e3:.1f} |")


if __name__ == "__main__":
    main()
