"""``calico probe``: a linear probe on frozen BEV features, a quick signal of what pre-training learnt.

Every BEV cell of the F^LiDAR grid (``model.bev_size`` cells over ``data.point_cloud_range``, raster of
``calico.models.bev``) that holds at least one point of the loaded cloud (keyframe + sweeps, inside the
range) becomes one sample: the feature vector ``extract(batch)[features][b, :, i, j]`` and a class group
(``GROUPS``). A cell is labelled by the points it holds: when any of them lies inside a GT box
(``calico.data.geometry.points_in_boxes``), the cell takes the majority group of its in-box points;
otherwise it is background (sweep points a moving object left behind its keyframe box count as
background too). Cells without points are ignored (the features there say nothing about the scene). A standardised multinomial logistic regression (``class_weight="balanced"``) is fitted on the
cells of the first ``train_frames`` keyframes of the train split and scored by balanced accuracy on the
val split.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from calico.config import CLASSES, Config
from calico.errors import CalicoError
from calico.utils.cliargs import add_data_arguments

GROUPS: tuple[str, ...] = ("background", "car", "pedestrian", "other")
# Background cells kept for fitting: at most this many times the object cells (a seeded subsample).
# Background is most of the occupied cells, and with class_weight="balanced" the extra ones mainly cost
# fitting time; val is never subsampled.
MAX_BACKGROUND_RATIO = 10
BATCH_SIZE = 4


def class_groups(labels: np.ndarray) -> np.ndarray:
    """Class ids (``calico.config.CLASSES``) -> probe groups 1 car, 2 pedestrian, 3 any other object."""
    labels = np.asarray(labels, dtype=np.int64)
    out = np.full(labels.shape, 3, dtype=np.int64)
    out[labels == CLASSES.index("car")] = 1
    out[labels == CLASSES.index("pedestrian")] = 2
    return out


def cell_labels(points: np.ndarray, boxes: np.ndarray, labels: np.ndarray, cfg: Config,
                grid: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Occupied cells of one frame: ``(rows, cols, group)`` (each (K,)), rows along +y, cols along +x.

    ``points`` (P, >=3) LiDAR-frame points; ``boxes`` (B, >=7) and ``labels`` (B,) the frame's GT. ``grid``
    is the (rows, cols) size of the feature map (default ``cfg.model.bev_size`` square).
    """
    from calico.models.bev import bev_coords

    ny, nx = grid or (cfg.model.bev_size, cfg.model.bev_size)
    xyz = np.asarray(points, dtype=np.float32)[:, :3]
    x0, y0, z0, x1, y1, z1 = cfg.data.point_cloud_range
    keep = ((xyz[:, 0] >= x0) & (xyz[:, 0] < x1) & (xyz[:, 1] >= y0) & (xyz[:, 1] < y1)
            & (xyz[:, 2] >= z0) & (xyz[:, 2] < z1))
    xyz = xyz[keep]
    empty = np.zeros(0, dtype=np.int64)
    if len(xyz) == 0:
        return empty, empty, empty
    # bev_coords maps the range's outer edges to -1 / +1 (grid_sample, align_corners=False), so a cell
    # index is floor((u + 1) / 2 * size): the same cell a point at its centre reads.
    uv = bev_coords(torch.from_numpy(xyz[:, :2]), cfg.data).numpy()
    cols = np.clip(np.floor((uv[:, 0] + 1) / 2 * nx).astype(np.int64), 0, nx - 1)
    rows = np.clip(np.floor((uv[:, 1] + 1) / 2 * ny).astype(np.int64), 0, ny - 1)
    cell = rows * nx + cols
    inside = _points_in_boxes(xyz, np.asarray(boxes, dtype=np.float32))
    point_group = np.zeros(len(xyz), dtype=np.int64)
    in_any = inside.any(axis=1)
    if in_any.any():  # a point inside overlapping boxes takes its first box
        point_group[in_any] = class_groups(np.asarray(labels))[inside[in_any].argmax(axis=1)]
    # votes[c, g]: in-box points of group g in cell c; background only where no point is in a box
    occupied, inverse = np.unique(cell, return_inverse=True)
    votes = np.zeros((len(occupied), len(GROUPS)), dtype=np.int64)
    np.add.at(votes, (inverse[in_any], point_group[in_any]), 1)
    group = np.where(votes[:, 1:].sum(1) > 0, votes[:, 1:].argmax(1) + 1, 0)
    return occupied // nx, occupied % nx, group


def _points_in_boxes(xyz: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``calico.data.geometry.points_in_boxes`` run per box on the points near it: the dense (N, B, 3)
    version dominated the probe's run time on full clouds with many boxes."""
    from calico.data.geometry import points_in_boxes

    inside = np.zeros((len(xyz), len(boxes)), dtype=bool)
    for b, box in enumerate(boxes):
        r = 0.5 * float(np.hypot(box[3], box[4]))  # the footprint's circumradius bounds every yaw
        near = np.flatnonzero((np.abs(xyz[:, 0] - box[0]) <= r) & (np.abs(xyz[:, 1] - box[1]) <= r))
        if len(near):
            inside[near, b] = points_in_boxes(xyz[near], box[None])[:, 0]
    return inside


def _dataset(cfg: Config, split: str, frames: int, features: str):
    from calico.data.dataset import NuScenesDataset
    from calico.errors import DataError

    try:
        ds = NuScenesDataset(cfg, split=split, with_regions=False, load_images=features == "camera")
    except DataError as exc:
        raise DataError(f"probe: no usable {split!r} split ({exc})") from exc
    if frames > 0:  # records are sorted by (scene, time): the first keyframes of the first scenes
        ds.records = ds.records[:frames]
    return ds


def _extract(model: torch.nn.Module, batch: dict, features: str) -> torch.Tensor:
    """``model.extract(batch)[<features>_bev]``; a LiDAR probe does not load images, so the camera branch
    of an L+C model is switched off for the call (it would otherwise refuse the image-less batch)."""
    use_camera = getattr(model, "use_camera", None)
    if features == "lidar" and use_camera:
        model.use_camera = False
    try:
        out = model.extract(batch)[f"{features}_bev"]
    finally:
        if features == "lidar" and use_camera:
            model.use_camera = use_camera
    if out is None:
        modality = getattr(getattr(model, "cfg", None), "modality", "?")
        raise CalicoError(f"probe: the model has no {features} branch (model.modality={modality!r})")
    return out


def _cells(model: torch.nn.Module, ds, cfg: Config, features: str, device: torch.device,
           cache: dict[int, tuple]) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, C) and groups (N,) of every occupied cell of ``ds``; labels are cached per frame."""
    from calico.data.dataset import collate

    feats, groups = [], []
    for start in range(0, len(ds), BATCH_SIZE):
        idx = list(range(start, min(start + BATCH_SIZE, len(ds))))
        samples = [ds[i] for i in idx]
        batch = collate(samples)
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        with torch.no_grad():
            fmap = _extract(model, batch, features).float().cpu()
        for b, (i, s) in enumerate(zip(idx, samples)):
            if i not in cache:
                cache[i] = cell_labels(s["points"], s["gt_boxes"], s["gt_labels"], cfg, tuple(fmap.shape[-2:]))
            rows, cols, g = cache[i]
            feats.append(fmap[b][:, torch.from_numpy(rows), torch.from_numpy(cols)].t().numpy())
            groups.append(g)
    return np.concatenate(feats), np.concatenate(groups)


def fit_and_score(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                  seed: int = 0) -> dict[str, Any]:
    """Standardise with train statistics, fit a balanced logistic regression, score on val."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(seed)
    objects = np.flatnonzero(y_train > 0)
    background = np.flatnonzero(y_train == 0)
    cap = MAX_BACKGROUND_RATIO * max(len(objects), 1)
    if len(background) > cap:
        background = np.sort(rng.choice(background, cap, replace=False))
    keep = np.concatenate([background, objects])
    x_train, y_train = x_train[keep], y_train[keep]
    if len(np.unique(y_train)) < 2:
        raise CalicoError(f"probe: the train cells hold only {GROUPS[int(y_train[0])] if len(y_train) else 'nothing'}"
                          "; use more --train-frames")
    mean = x_train.mean(0)
    std = x_train.std(0)
    std[std < 1e-6] = 1.0  # dead channels (common at random init) stay 0 instead of dividing by 0
    # sklearn's lbfgs on tens of thousands of cells x 64 dims fits in about a second, so no torch fallback.
    clf = LogisticRegression(class_weight="balanced", max_iter=1000, random_state=seed)
    clf.fit((x_train - mean) / std, y_train)
    pred = clf.predict((x_val - mean) / std)
    recall = {}
    for g, name in enumerate(GROUPS):
        sel = y_val == g
        recall[name] = float((pred[sel] == g).mean()) if sel.any() else float("nan")
    return {"balanced_accuracy": float(balanced_accuracy_score(y_val, pred)), "recall": recall,
            "train_cells": int(len(y_train)), "val_cells": int(len(y_val)),
            "train_counts": {n: int((y_train == g).sum()) for g, n in enumerate(GROUPS)},
            "val_counts": {n: int((y_val == g).sum()) for g, n in enumerate(GROUPS)}}


def run_probe(cfg: Config, ckpts: list[str | None], train_frames: int = 12, val_frames: int = 0,
              features: str = "lidar", seed: int = 0, device: str = "auto") -> dict[str, dict]:
    """Probe each checkpoint (None or "random" = random init seeded by ``seed``); results keyed by name."""
    from calico.engine.checkpoint import load_init
    from calico.models import build_model
    from calico.utils.runinfo import seed_everything

    if features not in ("lidar", "camera"):
        raise CalicoError(f"probe: features must be 'lidar' or 'camera', got {features!r}")
    names = list(dict.fromkeys("random" if c in (None, "random") else str(c) for c in ckpts))
    for name in names:  # fail before any feature pass
        if name != "random" and not Path(name).is_file():
            raise CalicoError(f"{name}: checkpoint not found")
    dev = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    train_ds = _dataset(cfg, cfg.finetune.train_split, train_frames, features)
    val_ds = _dataset(cfg, cfg.finetune.val_split, val_frames, features)
    train_cache: dict[int, tuple] = {}
    val_cache: dict[int, tuple] = {}
    results: dict[str, dict] = {}
    for name in names:
        # Seeding right before the build gives every checkpoint (and `random`) the weights any run with
        # this seed builds, so parts a checkpoint does not cover are initialised identically.
        seed_everything(seed)
        model = build_model(cfg.model, cfg.data)
        if name != "random":
            load_init(model, name, verbose=False)
        model.to(dev).eval()
        x_tr, y_tr = _cells(model, train_ds, cfg, features, dev, train_cache)
        x_va, y_va = _cells(model, val_ds, cfg, features, dev, val_cache)
        res = fit_and_score(x_tr, y_tr, x_va, y_va, seed=seed)
        res.update(features=features, seed=seed, train_frames=len(train_ds), val_frames=len(val_ds))
        results[name] = res
    return results


def format_result(name: str, res: dict) -> str:
    recall = " ".join(f"{k} {v:.3f}" for k, v in res["recall"].items())
    return (f"{name}: balanced accuracy {res['balanced_accuracy']:.4f} | recall {recall} | "
            f"cells train {res['train_cells']} val {res['val_cells']}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", nargs="+", required=True, metavar="CKPT",
                        help="checkpoint(s) to probe; 'random' = random init seeded by --seed")
    add_data_arguments(parser)
    parser.add_argument("--train-frames", type=int, default=12, help="first N keyframes of the train split")
    parser.add_argument("--val-frames", type=int, default=0, help="first N keyframes of the val split (0 = all)")
    parser.add_argument("--features", choices=("lidar", "camera"), default="lidar", help="F^LiDAR or F^Camera")
    parser.add_argument("--seed", type=int, default=0, help="random-init weights and background subsampling")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--json", help="write the results to this JSON file")


def run(args: argparse.Namespace) -> int:
    from calico.engine.runsetup import resolve_config

    # resolve_config reads a run folder only on --resume; the probe has none.
    cfg = resolve_config(argparse.Namespace(**vars(args), out=".", resume=False))
    results = run_probe(cfg, args.ckpt, train_frames=args.train_frames, val_frames=args.val_frames,
                        features=args.features, seed=args.seed, device=args.device)
    for name, res in results.items():
        print(format_result(name, res))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        # recall of a group absent from val is NaN in the API; JSON has no NaN, so it is written as null
        clean = {name: {**res, "recall": {k: None if v != v else v for k, v in res["recall"].items()}}
                 for name, res in results.items()}
        Path(args.json).write_text(json.dumps(clean, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
