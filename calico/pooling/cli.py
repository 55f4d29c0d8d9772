"""``calico pool``: cache region ids for every sample, evaluate them against GT boxes, or plot one sample."""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import numpy as np
from tqdm import tqdm

from calico.config import get_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataroot", required=True, help="nuScenes-format dataset folder")
    parser.add_argument("--version", default="v1.0-trainval")
    parser.add_argument("--sweeps", type=int, default=None, help="sweeps aggregated (default: the preset's)")
    parser.add_argument("--config", default="paper", help="preset name or config.json")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides, e.g. pooling.eps=0.5")
    parser.add_argument("--cache-dir", default="", help="where regions are cached (default: calico.data.paths)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--shard", default="0/1", help="i/n: process samples with index %% n == i")
    parser.add_argument("--evaluate", action="store_true", help="recall/purity against GT boxes (today's rule and the strict rule) and, where the dataset "
                        "has per-point labels (calico synth --labels, calico convert pandaset), point-wise precision "
                        "and recall of semantic-rich vs object points; instead of caching")
    parser.add_argument("--plot", metavar="SAMPLE", help="sample token or index to draw (BEV, with GT boxes)")
    parser.add_argument("--out", default="pooling.png", help="PNG for --plot")
    parser.add_argument("--limit", type=int, default=0, help="at most this many samples (0: all)")


def _config(args: argparse.Namespace):
    from calico.cli import CalicoError

    try:
        cfg = get_config(args.config, list(args.set))
    except (ValueError, KeyError) as exc:
        raise CalicoError(str(exc)) from exc
    cfg.data.dataroot, cfg.data.version = args.dataroot, args.version
    if args.sweeps is not None:
        cfg.data.sweeps = args.sweeps
    if args.cache_dir:
        cfg.data.cache_dir = args.cache_dir
    cfg.data.load_images = False
    return cfg


def _shard(text: str) -> tuple[int, int]:
    from calico.cli import CalicoError

    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError as exc:
        raise CalicoError(f"--shard must look like i/n, got {text!r}") from exc
    if not (n >= 1 and 0 <= i < n):
        raise CalicoError(f"--shard {text}: need 0 <= i < n")
    return i, n


_DS = None


def _init_worker(cfg) -> None:
    global _DS
    from calico.data.dataset import NuScenesDataset

    _DS = NuScenesDataset(cfg, split=None, load_images=False, with_regions=False)


def _pool_one(i: int) -> int:
    from calico.pooling.cache import save_regions
    from calico.pooling.core import semantic_pooling

    pts = _DS.load_points(i)
    save_regions(_DS.cache, _DS.records[i]["token"], semantic_pooling(pts, _DS.cfg.pooling))
    return len(pts)


def _eval_one(i: int) -> dict:
    from calico.pooling.core import semantic_pooling
    from calico.pooling.metrics import evaluate_frame, evaluate_points, evaluate_strict

    pts = _DS.load_points(i)
    rec = _DS.records[i]
    t = time.perf_counter()
    regions = semantic_pooling(pts, _DS.cfg.pooling)
    seconds = time.perf_counter() - t
    boxes, names = np.asarray(rec["gt_boxes"]), list(rec["gt_names"])
    out = evaluate_frame(pts[:, :3], regions, boxes, names)
    out["seconds"] = seconds
    key = pts[:, 4] == 0  # the keyframe's own points (the loader puts them first, dt = 0)
    out["strict"] = evaluate_strict(pts[key, :3], regions[key], boxes, names)
    truth = _point_truth(_DS, i, int(key.sum()))
    if truth is not None:
        from calico.data.point_labels import CLASS_FORMAT, object_points
        from calico.pooling.metrics import points_in_boxes

        labels, fmt = truth
        in_box = None if fmt == CLASS_FORMAT else points_in_boxes(pts[key, :3], boxes).any(axis=1)
        out["points_truth"] = evaluate_points(regions[key], object_points(labels, fmt, in_box),
                                              labels if fmt == CLASS_FORMAT else None)
    return out


def _point_truth(ds, i: int, n_key: int):
    """(labels of the loader's keyframe points, format) when the dataset has per-point labels, else None."""
    from calico.data.errors import DataError
    from calico.data.point_labels import has_point_labels, label_format
    from calico.data.synth.labels import ground_truth_labels, labels_path

    rec = ds.records[i]
    if not has_point_labels(ds.root, rec["lidar_path"]):
        return None
    labels = ground_truth_labels(ds.root, rec["lidar_path"])
    raw = np.fromfile(ds.root / rec["lidar_path"], np.float32).reshape(-1, 5)
    keep = np.isfinite(raw[:, :4]).all(axis=1)  # the loader's rules: non-finite rows dropped, then the ego crop
    if ds.data.ego_crop > 0:
        keep &= np.einsum("ij,ij->i", raw[:, :2], raw[:, :2]) >= ds.data.ego_crop ** 2
    if int(keep.sum()) != n_key:
        raise DataError(f"{int(keep.sum())} labelled keyframe points after the ego crop, the loader has {n_key}",
                        str(labels_path(ds.root, rec["lidar_path"])))
    return labels[keep], label_format(ds.root)


def _map(fn, indices, cfg, workers: int, desc: str):
    if workers <= 1:
        _init_worker(cfg)
        yield from (fn(i) for i in tqdm(indices, desc=desc, unit="sample"))
        return
    with mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(cfg,)) as pool:
        yield from tqdm(pool.imap_unordered(fn, indices, chunksize=4), total=len(indices), desc=desc,
                        unit="sample")


def run(args: argparse.Namespace) -> int:
    from calico.data.dataset import NuScenesDataset
    from calico.pooling import cache

    cfg = _config(args)
    ds = NuScenesDataset(cfg, split=None, load_images=False, with_regions=False)
    if args.plot is not None:
        from calico.pooling.plot import plot_sample

        path = plot_sample(ds, args.plot, args.out)
        print(f"wrote {path}")
        return 0
    i_shard, n_shard = _shard(args.shard)
    indices = [i for i in range(len(ds)) if i % n_shard == i_shard]
    if args.limit:
        indices = indices[: args.limit]
    if args.evaluate:
        from calico.pooling.metrics import format_summary, summarize

        frames = list(_map(_eval_one, indices, cfg, args.workers, "evaluate"))
        summary = summarize(frames)
        ms = 1e3 * sum(f["seconds"] for f in frames) / max(1, len(frames))
        print(format_summary(summary, f"calico pool --evaluate ({args.dataroot}, sweeps={cfg.data.sweeps})"))
        print(f"pooling time {ms:.1f} ms/frame")
        return 0
    cache.open_cache(ds.cache, cfg.pooling, cfg.data.sweeps)
    todo = [i for i in indices if not cache.has_regions(ds.cache, ds.records[i]["token"])]
    print(f"calico pool: {len(indices) - len(todo)} of {len(indices)} samples already cached in "
          f"{cache.regions_dir(ds.cache)}")
    for _ in _map(_pool_one, todo, cfg, args.workers, "pool"):
        pass
    return 0
