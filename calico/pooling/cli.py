"""``calico pool``: cache region ids for every sample, evaluate them against GT boxes, or plot one sample."""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import numpy as np
from tqdm import tqdm

from calico.config import get_config, validate_config
from calico.utils.cliargs import DEFAULT_CONFIG, add_data_arguments, data_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser, dataroot_required=True)
    parser.add_argument("--sweeps", type=int, default=None, help="sweeps aggregated (default: the preset's)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--shard", default="0/1", help="i/n: process samples with index %% n == i")
    parser.add_argument("--evaluate", action="store_true", help="recall/purity against GT boxes (today's rule and the strict rule) and, where the dataset "
                        "has per-point labels (calico synth --labels, calico convert pandaset), point-wise precision "
                        "and recall of semantic-rich vs object points; instead of caching")
    parser.add_argument("--plot", metavar="SAMPLE", help="sample token or index to draw (BEV, with GT boxes)")
    parser.add_argument("--out", default="pooling.png", help="PNG for --plot")
    parser.add_argument("--limit", type=int, default=0, help="at most this many samples (0: all)")


def _config(args: argparse.Namespace):
    from calico.errors import CalicoError

    try:
        cfg = get_config(args.config or DEFAULT_CONFIG, data_overrides(args) + list(args.set))
    except (ValueError, KeyError) as exc:
        raise CalicoError(str(exc)) from exc
    if args.sweeps is not None:
        cfg.data.sweeps = args.sweeps
    cfg.data.load_images = False
    try:
        validate_config(cfg)
    except ValueError as exc:
        flag = "--sweeps" if args.sweeps is not None and "data.sweeps" in str(exc) else "config"
        raise CalicoError(f"{flag}: {exc}") from exc
    return cfg


def _shard(text: str) -> tuple[int, int]:
    from calico.errors import CalicoError

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
    from calico.data.regions import cache_settings, regions_dir, save_regions
    from calico.pooling.core import semantic_pooling

    pts = _DS.load_points(i)
    folder = regions_dir(_DS.cache, cache_settings(_DS.cfg))
    save_regions(folder, _DS.records[i]["token"], semantic_pooling(pts, _DS.cfg.pooling))
    return len(pts)


def _check_one(i: int) -> tuple[int, str | None]:
    """Validate a cached file (readable, one id per loader point); (i, None) when good or absent."""
    from calico.data.regions import cache_settings, check_file, has_regions, regions_dir

    folder = regions_dir(_DS.cache, cache_settings(_DS.cfg))
    token = _DS.records[i]["token"]
    if not has_regions(folder, token):
        return i, "missing"
    return i, check_file(folder, token, len(_DS.load_points(i)))


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
        from calico.data.geometry import points_in_boxes
        from calico.data.point_labels import CLASS_FORMAT, object_points

        labels, fmt = truth
        in_box = None if fmt == CLASS_FORMAT else points_in_boxes(pts[key, :3], boxes).any(axis=1)
        out["points_truth"] = evaluate_points(regions[key], object_points(labels, fmt, in_box),
                                              labels if fmt == CLASS_FORMAT else None)
    return out


def _point_truth(ds, i: int, n_key: int):
    """(labels of the loader's keyframe points, format) when the dataset has per-point labels, else None."""
    from calico.data.point_labels import has_point_labels, label_format
    from calico.data.synth.labels import ground_truth_labels, labels_path
    from calico.errors import DataError

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
    from calico.data import regions as cache
    from calico.data.dataset import NuScenesDataset
    from calico.data.paths import check_writable

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
    folder = check_writable(cache.open_cache(ds.cache, cache.cache_settings(cfg)))
    cached = [i for i in indices if cache.has_regions(folder, ds.records[i]["token"])]
    invalid = [(i, why) for i, why in _map(_check_one, cached, cfg, args.workers, "check") if why] if cached else []
    todo = sorted({i for i in indices if i not in set(cached)} | {i for i, _ in invalid})
    print(f"calico pool: {len(indices) - len(todo)} of {len(indices)} samples already cached in {folder}")
    if invalid:
        i, why = min(invalid)
        print(f"calico pool: {len(invalid)} cached file(s) invalid, recomputing them "
              f"(first: {folder / (ds.records[i]['token'] + '.npy')}: {why})")
    for _ in _map(_pool_one, todo, cfg, args.workers, "pool"):
        pass
    return 0
