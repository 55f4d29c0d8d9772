"""Speed of `semantic_pooling` with and without the split cap (`pooling.split_max_extent`) on the real clouds of
`bench_pooling.py` (the keyframe and the 10-keyframe stand-in), best of 7 runs each.

    PYTHONPATH=$PWD python benchmarks/pooling_split_cap.py [--dataroot ../shared/data/nuscenes-scene-0916]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_pooling as bp  # noqa: E402

from calico.config import PoolingConfig  # noqa: E402
from calico.pooling.core import semantic_pooling  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataroot", default=str(Path(__file__).resolve().parents[2] / "shared/data/nuscenes-scene-0916"))
    ap.add_argument("--caps", type=float, nargs="+", default=[1000.0, 40.0])
    args = ap.parse_args()
    key, ten = bp.load_clouds(args.dataroot)
    print("| cloud | points | split_max_extent (m) | ms |\n|---|---:|---:|---:|")
    for name, pts in (("real keyframe", key), ("real 10-keyframe stand-in", ten)):
        for cap in args.caps:
            cfg = dataclasses.replace(PoolingConfig(), split_max_extent=cap)
            ms = bp.best_ms(lambda cfg=cfg, pts=pts: semantic_pooling(pts, cfg), 7)
            print(f"| {name} | {len(pts)} | {cap:g} | {ms:.1f} |")


if __name__ == "__main__":
    main()
