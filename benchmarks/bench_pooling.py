"""Semantic pooling speed on one core, DBSCAN agreement with sklearn, ground mask vs pypatchworkpp.

Run:  PYTHONPATH=$PWD python benchmarks/bench_pooling.py [--dataroot ../shared/data/nuscenes-scene-0916]
Prints a markdown snippet (with this command) for BENCHMARKS.md. The real scene ships no sweep files, so the
10-sweep cloud is stood in for by the 10 latest keyframes (this one and 9 earlier), moved into this
keyframe's LiDAR frame through the ego poses (~275k points: the density of 10 sweeps).
"""

from __future__ import annotations

import os

os.environ.setdefault("PARLAY_NUM_THREADS", "1")  # the `dbscan` package's thread pool: one core
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def _lidar2global(nusc, sd):
    from pyquaternion import Quaternion

    def t(rec):
        m = np.eye(4)
        m[:3, :3] = Quaternion(rec["rotation"]).rotation_matrix
        m[:3, 3] = rec["translation"]
        return m

    return t(nusc.get("ego_pose", sd["ego_pose_token"])) @ t(nusc.get("calibrated_sensor", sd["calibrated_sensor_token"]))


def load_clouds(root: str, i: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keyframe, 10-keyframe stand-in for 10 sweeps, GT boxes (B,7)) with the 1 m self-return crop."""
    from nuscenes.nuscenes import NuScenes

    nusc = NuScenes("v1.0-mini", root, verbose=False)
    samples = sorted(nusc.sample, key=lambda s: s["timestamp"])
    ref = nusc.get("sample_data", samples[i]["data"]["LIDAR_TOP"])
    inv = np.linalg.inv(_lidar2global(nusc, ref))
    clouds = []
    for j in range(i, i - 10, -1):
        sd = nusc.get("sample_data", samples[j]["data"]["LIDAR_TOP"])
        p = np.fromfile(nusc.get_sample_data_path(sd["token"]), dtype=np.float32).reshape(-1, 5)
        p = p[np.hypot(p[:, 0], p[:, 1]) > 1.0]
        m = inv @ _lidar2global(nusc, sd)
        p[:, :3] = p[:, :3] @ m[:3, :3].T + m[:3, 3]
        clouds.append(p)
    _, boxes, _ = nusc.get_sample_data(ref["token"])
    b = np.array([[*x.center, *x.wlh, x.orientation.yaw_pitch_roll[0]] for x in boxes]).reshape(-1, 7)
    return clouds[0], np.concatenate(clouds), b


def best_ms(fn, reps: int) -> float:
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1e3 * min(ts)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataroot", default=str(Path(__file__).resolve().parents[2] / "shared/data/nuscenes-scene-0916"))
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    import dbscan as dbscan_pkg
    from sklearn.cluster import DBSCAN
    from sklearn.metrics import adjusted_rand_score

    from calico.config import PoolingConfig
    from calico.pooling import semantic_pooling
    from calico.pooling.dbscan import dbscan
    from calico.pooling.ground import ground_mask
    from calico.pooling.metrics import points_in_boxes

    cfg = PoolingConfig()
    key, multi, boxes = load_clouds(args.dataroot)
    rows = []
    for name, pts in (("keyframe", key), ("10-sweep stand-in", multi)):
        xyz = pts[:, :3].astype(np.float64)
        g, _ = ground_mask(xyz, cfg.ground_cell, cfg.ground_thresh, cfg.ground_max_slope, cfg.ground_passes)
        ng = np.ascontiguousarray(xyz[~g])
        t_ground = best_ms(lambda xyz=xyz: ground_mask(xyz, cfg.ground_cell, cfg.ground_thresh,
                                                        cfg.ground_max_slope, cfg.ground_passes), args.reps)
        t_total = best_ms(lambda pts=pts: semantic_pooling(pts, cfg), args.reps)
        t_ours = best_ms(lambda ng=ng: dbscan(ng, cfg.eps, cfg.min_points), args.reps)
        t_pkg = best_ms(lambda ng=ng: dbscan_pkg.DBSCAN(ng, eps=cfg.eps, min_samples=cfg.min_points), args.reps)
        t0 = time.perf_counter()
        ref = DBSCAN(eps=cfg.eps, min_samples=cfg.min_points).fit_predict(ng)
        t_skl = 1e3 * (time.perf_counter() - t0)
        ari_ours = adjusted_rand_score(ref, dbscan(ng, cfg.eps, cfg.min_points))
        ari_pkg = adjusted_rand_score(ref, dbscan_pkg.DBSCAN(ng, eps=cfg.eps, min_samples=cfg.min_points)[0])
        rows.append(f"| {name} | {len(pts)} | {len(ng)} | {t_ground:.1f} | {t_ours:.1f} | {t_pkg:.1f} | "
                    f"{t_skl:.0f} | {ari_ours:.5f} | {ari_pkg:.5f} | **{t_total:.1f}** |")

    # Ground: no true labels on the real scene; proxy = object points (inside a GT box, >= 0.3 m above its
    # bottom) wrongly called ground, and the overall ground share. True labels need the synthetic world.
    import pypatchworkpp

    xyz = key[:, :3].astype(np.float64)
    inside = points_in_boxes(xyz, boxes)
    bottoms = boxes[:, 2] - boxes[:, 5] / 2
    obj = (inside & (xyz[:, 2:3] >= bottoms[None] + 0.3)).any(axis=1)
    ours_g, _ = ground_mask(xyz, cfg.ground_cell, cfg.ground_thresh, cfg.ground_max_slope, cfg.ground_passes)
    params = pypatchworkpp.Parameters()
    pw = pypatchworkpp.patchworkpp(params)
    t0 = time.perf_counter()
    pw.estimateGround(np.c_[xyz, key[:, 3]].astype(np.float64))
    t_pw = 1e3 * (time.perf_counter() - t0)
    pw_g = np.zeros(len(xyz), bool)
    pw_g[pw.getGroundIndices()] = True
    cmd = "PYTHONPATH=$PWD python benchmarks/bench_pooling.py " + " ".join(sys.argv[1:])
    print(f"### Semantic pooling speed (one core)\n\n`{cmd}`\n")
    print("| cloud | points | non-ground | ground ms | grid DBSCAN ms | `dbscan` pkg ms | sklearn ms | "
          "ARI grid vs sklearn | ARI pkg vs sklearn | total `semantic_pooling` ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(f"\nGround proxy on the real keyframe ({obj.sum()} object points >= 0.3 m above their box bottom): "
          f"object points called ground: ours {ours_g[obj].mean():.3f}, pypatchworkpp (default params) "
          f"{pw_g[obj].mean():.3f}; ground share ours {ours_g.mean():.3f}, pypatchworkpp {pw_g.mean():.3f}; "
          f"pypatchworkpp {t_pw:.1f} ms.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
