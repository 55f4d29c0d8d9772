"""Seconds per keyframe of the synthetic world: 6 cameras + one LiDAR scan, on one core.

Run: PYTHONPATH=. python benchmarks/bench_synth.py [--image-size H W] [--keyframes N]
Prints a markdown line with the command and the numbers. Reports CPU time of this process as well as
wall time, because shared machines inflate wall time.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core: numpy's BLAS too
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, nargs=2, default=(225, 400))
    parser.add_argument("--keyframes", type=int, default=6)
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    from calico.data.synth import camera, lidar
    from calico.data.synth.generate import scene_world
    from calico.data.synth.rig import CAMERA_NAMES, build_rig

    rig = build_rig(tuple(args.image_size))
    world, rng = scene_world(0, 0, args.keyframes)
    cam_cpu, lid_cpu, walls, points = [], [], [], []
    for k in range(args.keyframes + 1):
        t = 0.5 * k
        rot, trans = world.ego_pose(t)
        w0, c0 = time.perf_counter(), time.process_time()
        for name in CAMERA_NAMES:
            camera.render(world, t, rot, trans, rig[name])
        c1 = time.process_time()
        pts, _ = lidar.scan(world, t, rot, trans, rig["LIDAR_TOP"], rng)
        c2, w1 = time.process_time(), time.perf_counter()
        if k == 0:  # warm-up (ray grids, caches)
            continue
        cam_cpu.append(c1 - c0)
        lid_cpu.append(c2 - c1)
        walls.append(w1 - w0)
        points.append(len(pts))
    cmd = "PYTHONPATH=. python " + " ".join(sys.argv)
    print(f"| `{cmd}` | {args.image_size[1]}x{args.image_size[0]} | 6 cameras {np.mean(cam_cpu):.3f} s CPU | "
          f"LiDAR {np.mean(lid_cpu):.3f} s CPU ({np.mean(points):.0f} pts) | keyframe {np.mean(cam_cpu) + np.mean(lid_cpu):.3f} s "
          f"CPU, {np.mean(walls):.3f} s wall | {len(walls)} keyframes, 1 thread |")


if __name__ == "__main__":
    main()
