"""``calico show``: one sample in one picture -- LiDAR points in BEV with the GT boxes, the predictions of a
checkpoint (``--ckpt``), the pooled regions (``--regions``, from ``calico pool``'s cache) and the six cameras with
the boxes projected. The drawing is the demo report's (``calico.apps.report.draw_bev`` / ``draw_camera``).

``calico show --dataroot D --version V --sample TOKEN|INDEX [--ckpt RUN/last.pt] [--regions] --out F.png``
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from calico.config import Config, get_config, validate_config
from calico.errors import CalicoError
from calico.utils.cliargs import DEFAULT_CONFIG, add_data_arguments, data_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser, dataroot_required=True, config_default="the checkpoint's, else paper")
    parser.add_argument("--sample", required=True, help="sample token, or its index in the prepared index")
    parser.add_argument("--ckpt", help="a fine-tuning checkpoint: draw its detections (its config is used)")
    parser.add_argument("--regions", action="store_true", help="colour the points by their pooled region "
                                                               "(needs `calico pool` first)")
    parser.add_argument("--score", type=float, default=0.3, help="draw predictions with at least this score")
    parser.add_argument("--out", default="sample.png", help="PNG to write")


def _config(args: argparse.Namespace) -> tuple[Config, Any]:
    """The config (the checkpoint's when ``--ckpt``) with the data flags applied, and the model or None."""
    model = None
    if args.ckpt:
        from calico.eval.cli import load_finetuned

        cfg, model = load_finetuned(args.ckpt, args.dataroot, args.config, data_overrides(args) + list(args.set),
                                    args.version, "cpu")
    else:
        try:
            cfg = get_config(args.config or DEFAULT_CONFIG, data_overrides(args) + list(args.set))
        except (ValueError, KeyError) as exc:
            raise CalicoError(str(exc)) from exc
    cfg.data.load_images = True
    try:
        validate_config(cfg)
    except ValueError as exc:
        raise CalicoError(f"config: {exc}") from exc
    return cfg, model


def _regions(ds, i: int, n_points: int) -> np.ndarray:
    """The cached region ids of sample ``i``, or a one-line error that says to run ``calico pool``."""
    from calico.data.regions import cache_settings, load_regions, other_settings, regions_dir

    settings = cache_settings(ds.cfg)
    folder = regions_dir(ds.cache, settings)
    regions = load_regions(folder, ds.records[i]["token"], n_points)
    if regions is None:
        why = other_settings(ds.cache, settings) if not folder.is_dir() else f"not cached in {folder}"
        raise CalicoError(f"--regions: no pooled regions for sample {ds.records[i]['token']} ({why}); run "
                          f"`calico pool --dataroot {ds.data.dataroot} --version {ds.data.version}` with the "
                          f"same config first")
    return regions


def _count(regions: np.ndarray) -> int:
    return int(regions.max()) + 1 if len(regions) else 0


def show_sample(cfg: Config, sample: str, out: str | Path, model=None, regions: bool = False,
                score: float = 0.3) -> dict[str, Any]:
    """Draw one sample (BEV + the cameras) to ``out``; returns what was drawn (counts) for the caller to print."""
    from calico.apps.report import draw_bev, draw_camera, predict, pyplot
    from calico.data.dataset import NuScenesDataset, collate

    ds = NuScenesDataset(cfg, split=None, load_images=True, with_regions=False)
    try:
        i = ds.index_of(sample)
    except KeyError as exc:
        raise CalicoError(f"--sample {exc.args[0]}") from exc
    s = ds[i]
    reg = _regions(ds, i, len(s["points"])) if regions else None
    pred, labels = (predict(model, collate([s]), score) if model is not None else (None, None))
    gt = np.asarray(s["gt_boxes"])
    cams = list(cfg.data.cameras)
    plt = pyplot()
    fig = plt.figure(figsize=(20, 7))
    grid = fig.add_gridspec(2, 4, width_ratios=[2.2, 1, 1, 1])
    ax = fig.add_subplot(grid[:, 0])
    draw_bev(ax, s["points"], cfg.data.point_cloud_range, gt, pred, reg)
    what = [f"{len(gt)} GT (green)"]
    if pred is not None:
        what.append(f"{len(pred)} predicted (red, score ≥ {score})")
    if reg is not None:
        what.append(f"{_count(reg)} regions (colours)")
    ax.set_title(f"{s['scene_name']} {s['token'][:8]}: {len(s['points'])} points, " + ", ".join(what), fontsize=9)
    for k, name in enumerate(cams[:6]):
        draw_camera(fig.add_subplot(grid[k // 3, 1 + k % 3]), s, k, name, gt, pred, labels)
        fig.axes[-1].axis("off")
    fig.tight_layout()
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100, bbox_inches="tight")
    except OSError as exc:
        raise CalicoError(f"--out {out}: cannot write the picture ({exc.strerror or exc})") from exc
    finally:
        plt.close(fig)
    return {"out": str(out), "token": s["token"], "points": len(s["points"]), "gt": len(gt),
            "pred": None if pred is None else len(pred), "regions": None if reg is None else _count(reg),
            "cameras": min(6, len(cams))}


def run(args: argparse.Namespace) -> int:
    cfg, model = _config(args)
    drawn = show_sample(cfg, args.sample, args.out, model, args.regions, args.score)
    extra = "".join(f", {drawn[k]} {k}" for k in ("pred", "regions") if drawn[k] is not None)
    print(f"wrote {drawn['out']} (sample {drawn['token']}: {drawn['points']} points, {drawn['gt']} GT boxes{extra}, "
          f"{drawn['cameras']} cameras)")
    return 0
