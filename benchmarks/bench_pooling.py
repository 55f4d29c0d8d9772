"""Semantic pooling on one core: speed, DBSCAN agreement with sklearn, ground mask vs pypatchworkpp.

Run:  PYTHONPATH=$PWD python benchmarks/bench_pooling.py [--dataroot ../shared/data/nuscenes-scene-0916]
          [--synth /tmp/pool_synth] [--synth-sweeps /tmp/pool_synth9]
Prints a markdown snippet (with this command) for BENCHMARKS.md.

* Real scene: a keyframe, and the 10 latest keyframes moved into its LiDAR frame through the ego poses as a
  stand-in for a 10-sweep cloud (the scene ships no sweep files; ~275k points, the density of 10 sweeps).
* ``--synth-sweeps``: a synthetic world written with ``--sweeps 9`` (keyframe + 9 real sweeps, 10 scans),
  loaded through ``NuScenesDataset`` as training does.
* ``--synth``: a synthetic world written with ``--labels``: the true ground of every keyframe point scores
  our ground mask and pypatchworkpp's (precision, recall, IoU of the ground class).
sklearn's DBSCAN runs side by side in the same process on the same non-ground points.
"""

from __future__ import annotations

import os

os.environ.setdefault("PARLAY_NUM_THREADS", "1")  # the `dbscan` package's thread pool: one core
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})


def _lidar2global(nusc, sd):
    from pyquaternion import Quaternion

    def t(rec):
        m = np.eye(4)
        m[:3, :3] = Quaternion(rec["rotation"]).rotation_matrix
        m[:3, 3] = rec["translation"]
        return m

    return t(nusc.get("ego_pose", sd["ego_pose_token"])) @ t(nusc.get("calibrated_sensor", sd["calibrated_sensor_token"]))


def load_clouds(root: str, i: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(keyframe, 10-keyframe stand-in for 10 sweeps) of the real scene, with the 1 m self-return crop."""
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
    return clouds[0], np.concatenate(clouds)


def load_synth_sweeps(root: str) -> np.ndarray:
    """Keyframe + all its sweeps of the first sample of a synthetic world, as the training loader gives them."""
    from calico.config import get_config
    from calico.data.dataset import NuScenesDataset

    cfg = get_config("paper")
    cfg.data.dataroot, cfg.data.version, cfg.data.cache_dir = root, "v1.0-synth", root + "_cache"
    cfg.data.sweeps, cfg.data.load_images = 9, False
    ds = NuScenesDataset(cfg, split=None, load_images=False, with_regions=False)
    return ds.load_points(len(ds) - 1)


def best_ms(fn, reps: int) -> float:
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1e3 * min(ts)


def speed_rows(clouds: list[tuple[str, np.ndarray]], reps: int) -> list[str]:
    import dbscan as dbscan_pkg
    from sklearn.cluster import DBSCAN
    from sklearn.metrics import adjusted_rand_score

    from calico.config import PoolingConfig
    from calico.pooling import semantic_pooling
    from calico.pooling.dbscan import dbscan
    from calico.pooling.ground import ground_mask

    cfg = PoolingConfig()
    no_split = dataclasses.replace(cfg, split_eps=(), bev_split_eps=0.0, bottom_support_gap=0.0)  # paper steps only
    rows = []
    gargs = (cfg.ground_cell, cfg.ground_thresh, cfg.ground_max_slope, cfg.ground_passes, cfg.ground_radial)
    for name, pts in clouds:
        xyz = pts[:, :3].astype(np.float64)
        g, _ = ground_mask(xyz, *gargs)
        ng = np.ascontiguousarray(xyz[~g])
        t_ground = best_ms(lambda xyz=xyz: ground_mask(xyz, *gargs), reps)
        t_ours = best_ms(lambda ng=ng: dbscan(ng, cfg.eps, cfg.min_points), reps)
        t_pkg = best_ms(lambda ng=ng: dbscan_pkg.DBSCAN(ng, eps=cfg.eps, min_samples=cfg.min_points), reps)
        t_total = best_ms(lambda pts=pts: semantic_pooling(pts, cfg), reps)
        t_nosplit = best_ms(lambda pts=pts: semantic_pooling(pts, no_split), reps)
        t0 = time.perf_counter()
        ref = DBSCAN(eps=cfg.eps, min_samples=cfg.min_points).fit_predict(ng)
        t_skl = 1e3 * (time.perf_counter() - t0)
        ours = dbscan(ng, cfg.eps, cfg.min_points)
        same = "yes" if np.array_equal(ours, ref) else "no"
        ari_ours = adjusted_rand_score(ref, ours)
        ari_pkg = adjusted_rand_score(ref, dbscan_pkg.DBSCAN(ng, eps=cfg.eps, min_samples=cfg.min_points)[0])
        rows.append(f"| {name} | {len(pts)} | {len(ng)} | {t_ground:.1f} | {t_ours:.1f} | {t_pkg:.1f} | "
                    f"{t_skl:.0f} | {ari_ours:.5f} ({same}) | {ari_pkg:.5f} | {t_nosplit:.1f} | **{t_total:.1f}** |")
    return rows


def ground_rows(root: str) -> list[str]:
    """Ground-class precision / recall / IoU and ms per keyframe: ours vs pypatchworkpp, true labels."""
    import pypatchworkpp

    from calico.config import PoolingConfig
    from calico.data.synth import ground_truth_labels
    from calico.data.synth.labels import GROUND
    from calico.pooling.ground import ground_mask

    cfg = PoolingConfig()
    ver = Path(root) / "v1.0-synth"
    files = [r["filename"] for r in json.loads((ver / "sample_data.json").read_text())
             if r["is_key_frame"] and "LIDAR_TOP" in r["filename"]]
    cs = json.loads((ver / "calibrated_sensor.json").read_text())
    height = float(next(c["translation"][2] for c in cs if not c["camera_intrinsic"]))

    def ours(p):
        return ground_mask(p[:, :3].astype(np.float64), cfg.ground_cell, cfg.ground_thresh, cfg.ground_max_slope,
                           cfg.ground_passes, cfg.ground_radial)[0]

    def ours_old(p):  # the previous default: 4-cell envelope only, no sensor-outward surface
        return ground_mask(p[:, :3].astype(np.float64), cfg.ground_cell, cfg.ground_thresh, cfg.ground_max_slope,
                           cfg.ground_passes, False)[0]

    def patchwork(p, **kw):
        params = pypatchworkpp.Parameters()
        for k, v in kw.items():
            setattr(params, k, v)
        pw = pypatchworkpp.patchworkpp(params)
        pw.estimateGround(p[:, :4].astype(np.float64))
        g = np.zeros(len(p), bool)
        g[pw.getGroundIndices()] = True
        return g

    methods = {
        "ours (`ground_mask`, defaults)": ours,
        "ours without the sensor-outward surface (`ground_radial=False`)": ours_old,
        "pypatchworkpp, default parameters": patchwork,
        f"pypatchworkpp, sensor_height={height}, min_range=1, max_range=100":
            lambda p: patchwork(p, sensor_height=height, min_range=1.0, max_range=100.0),
    }
    counts = {k: np.zeros(3) for k in methods}
    secs = {k: 0.0 for k in methods}
    npts = 0
    for f in files:
        p = np.fromfile(Path(root) / f, np.float32).reshape(-1, 5)
        truth = ground_truth_labels(root, f) == GROUND
        keep = np.hypot(p[:, 0], p[:, 1]) > 1.0  # the loader's self-return crop
        p, truth = p[keep], truth[keep]
        npts += len(p)
        for k, fn in methods.items():
            t = time.perf_counter()
            g = fn(p)
            secs[k] += time.perf_counter() - t
            counts[k] += [(g & truth).sum(), (g & ~truth).sum(), (~g & truth).sum()]
    rows = [f"{len(files)} keyframes, {npts} points (self-return crop 1 m), true ground share "
            f"{(counts[next(iter(methods))][0] + counts[next(iter(methods))][2]) / npts:.3f}", "",
            "| method | ground precision | ground recall | ground IoU | ms / keyframe |", "|---|---:|---:|---:|---:|"]
    for k, (tp, fp, fn) in counts.items():
        rows.append(f"| {k} | {tp / (tp + fp):.4f} | {tp / (tp + fn):.4f} | {tp / (tp + fp + fn):.4f} | "
                    f"{1e3 * secs[k] / len(files):.1f} |")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataroot", default=str(Path(__file__).resolve().parents[2] / "shared/data/nuscenes-scene-0916"))
    ap.add_argument("--synth", default="", help="synthetic world written with --labels (ground accuracy)")
    ap.add_argument("--synth-sweeps", default="", help="synthetic world written with --sweeps 9 (10-scan cloud)")
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    import numba

    t0 = time.perf_counter()
    from calico.pooling import semantic_pooling

    semantic_pooling(np.random.default_rng(0).normal(size=(2000, 4)).astype(np.float32))
    first_ms = 1e3 * (time.perf_counter() - t0)

    key, multi = load_clouds(args.dataroot)
    clouds = [("real keyframe", key), ("real 10-keyframe stand-in", multi)]
    if args.synth_sweeps:
        clouds.append(("synthetic keyframe + 9 sweeps", load_synth_sweeps(args.synth_sweeps)))
    rows = speed_rows(clouds, args.reps)
    cmd = "PYTHONPATH=$PWD python benchmarks/bench_pooling.py " + " ".join(sys.argv[1:])
    print(f"### Semantic pooling speed (one core)\n\n`{cmd}`\n")
    print("| cloud | points | non-ground | ground ms | numba DBSCAN ms | `dbscan` pkg ms | sklearn ms | "
          "ARI numba vs sklearn (labels identical) | ARI pkg vs sklearn | total, no split steps ms | "
          "total `semantic_pooling` ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(f"\nBest of {args.reps} runs, pinned to one core, numba {numba.__version__}. First `semantic_pooling` call "
          f"in this process (numba cache load, or JIT compile on a fresh install): {first_ms:.0f} ms.")
    if args.synth:
        print("\n### Ground mask vs true ground (synthetic world)\n")
        print("\n".join(ground_rows(args.synth)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
