"""Per-frame cost of the Robo3D and MultiCorrupt LiDAR corruptions on a 10-sweep cloud (one core).

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_protocols.py [--dataroot ../shared/data/nuscenes-scene-0916]

The cloud is the real nuScenes keyframe of the shared scene stacked 10 times with dt = 0, 0.05, .., 0.45 s
(the scene ships without its sweep files; the point count is what a 10-sweep loader hands over). Three columns:
Robo3D as the protocol corrupts (keyframe only, the default), Robo3D on every sweep (``keyframe_only=False``),
MultiCorrupt (every sweep, as its converter does). Lookup tables (fog, snow) are built before timing; their
one-off cost per process is printed separately. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from calico.robustness import multicorrupt, robo3d
from calico.robustness.corruptions import corrupt


def timed(fn, repeat: int) -> float:
    fn(0)  # warm (caches, allocator)
    t = time.perf_counter()
    for k in range(repeat):
        fn(k + 1)
    return 1000 * (time.perf_counter() - t) / repeat


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataroot", default=str(Path(__file__).resolve().parents[2] / "shared/data/nuscenes-scene-0916"))
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--sweeps", type=int, default=10)
    parser.add_argument("--cameras", action="store_true",
                        help="also time the MultiCorrupt camera corruptions on 6 copies of a CAM_FRONT image, 144 x 256")
    parser.add_argument("--effects", action="store_true",
                        help="also print what each Robo3D level does to the keyframe (points removed / moved, %%)")
    args = parser.parse_args()
    files = sorted((Path(args.dataroot) / "samples" / "LIDAR_TOP").glob("*.pcd.bin"))
    if not files:
        print(f"no LiDAR files under {args.dataroot}", file=sys.stderr)
        return 1
    key = np.fromfile(files[0], dtype=np.float32).reshape(-1, 5).copy()
    key = key[np.linalg.norm(key[:, :3], axis=1) > 1.0]  # the loader's ego crop, roughly
    key[:, 4] = 0.0  # the ring column becomes dt, as in the loader
    parts = []
    for s in range(args.sweeps):
        p = key.copy()
        p[:, 4] = 0.05 * s
        parts.append(p)
    cloud = np.concatenate(parts)
    boxes = np.array([[10, 0, -1, 2, 4.5, 1.6, 0.3, 0, 0], [0, 15, -1, 2.5, 10, 3, 1.0, 0, 0]], np.float32)
    labels = np.array([0, 1])
    t = time.perf_counter()
    for a in robo3d.FOG_ALPHAS:
        robo3d.fog_lookup(a)
    for s in robo3d.SEVERITIES:
        robo3d._snow_table(robo3d.SNOW[s]["snowfall_rate"], robo3d.SNOW[s]["terminal_velocity"])
    tables_ms = 1000 * (time.perf_counter() - t)
    print(f"`OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_protocols.py` — {len(cloud)} points "
          f"({args.sweeps} sweeps of {len(key)}), 1 thread, mean of {args.repeat} runs; one-off lookup tables "
          f"(6 fog alphas, 3 snow levels): {tables_ms:.0f} ms\n")
    print("| corruption (heavy) | Robo3D, keyframe only (ms) | Robo3D, every sweep (ms) |\n|---|---:|---:|")
    for name in robo3d.ROBO3D_CORRUPTIONS:
        cells = []
        for kf in (True, False):
            cells.append(timed(lambda k, n=name, kf=kf: corrupt(cloud, f"robo3d/{n}", 3, np.random.default_rng(k),
                                                                  boxes=boxes, labels=labels, keyframe_only=kf),
                               args.repeat))
        print(f"| {name} | {cells[0]:.1f} | {cells[1]:.1f} |")
    if args.effects:
        from calico.robustness.protocols import fingerprint

        print("\n| corruption | removed % (light / moderate / heavy) | moved % (light / moderate / heavy) |\n|---|---|---|")
        for name in robo3d.ROBO3D_CORRUPTIONS:
            rem, mov = [], []
            for sev in robo3d.SEVERITIES:
                out = corrupt(key, f"robo3d/{name}", sev, np.random.default_rng(0), boxes=boxes, labels=labels)
                fp = fingerprint({"points": key}, {"points": out})
                rem.append(100 * (len(key) - len(out)) / len(key))
                mov.append(100 * fp["points_moved"] / len(key))
            print(f"| {name} | " + " / ".join(f"{x:.1f}" for x in rem) + " | " + " / ".join(f"{x:.1f}" for x in mov) + " |")
    if args.cameras:
        from PIL import Image

        jpgs = sorted((Path(args.dataroot) / "samples" / "CAM_FRONT").glob("*.jpg"))
        with Image.open(jpgs[0]) as im:
            img = np.asarray(im.convert("RGB").resize((256, 144)))
        images = np.stack([img] * 6)
        print("\n| MultiCorrupt camera corruption | level 1 (ms) | level 3 (ms) |\n|---|---:|---:|")
        for name, fn in multicorrupt.CAMERA_CORRUPTIONS.items():
            cells = [timed(lambda k, f=fn, s=s: f(images, s, np.random.default_rng(k)), max(1, args.repeat // 5))
                     for s in (1, 3)]
            print(f"| {name} | {cells[0]:.0f} | {cells[1]:.0f} |")
    print("\n| MultiCorrupt LiDAR corruption (level 3) | every sweep (ms) |\n|---|---:|")
    for name in multicorrupt.LIDAR_CORRUPTIONS:
        ms = timed(lambda k, n=name: corrupt(cloud, f"multicorrupt/{n}", 3, np.random.default_rng(k)), args.repeat)
        print(f"| {name} | {ms:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
