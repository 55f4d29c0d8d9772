"""Figures for the demo report: BEV feature maps (paper Fig. 9/10), detections against ground truth in BEV and
in a camera, and training curves. Every figure is computed from the run folders it is given."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from calico.config import CLASSES, Config
from calico.data.geometry import box_corners


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _model(cfg: Config, ckpt: str | None):
    from calico.engine.checkpoint import load_init
    from calico.models import build_model

    torch.manual_seed(cfg.seed)  # the same random initialisation for every panel without a checkpoint
    model = build_model(cfg.model, cfg.data)
    if ckpt:
        load_init(model, ckpt, verbose=False)
    return model.eval()


def pca_rgb(fmap: torch.Tensor) -> np.ndarray:
    """(C, S, S) features -> (S, S, 3) image: the first three principal components, each scaled to [0, 1]."""
    c, h, w = fmap.shape
    x = fmap.reshape(c, -1).T.double()
    x = x - x.mean(0)
    _, _, v = torch.pca_lowrank(x, q=min(3, c), center=False)
    y = (x @ v[:, :3]).numpy()
    lo, hi = np.percentile(y, 1, axis=0), np.percentile(y, 99, axis=0)
    y = np.clip((y - lo) / np.maximum(hi - lo, 1e-9), 0, 1)
    if y.shape[1] < 3:
        y = np.concatenate([y, np.zeros((len(y), 3 - y.shape[1]))], 1)
    return y.reshape(h, w, 3)


def feature_maps_figure(cfg: Config, batch: dict, panels: dict[str, str | None], out: Path) -> Path:
    """F^LiDAR and F^Camera of one sample for each (label -> checkpoint or None for random init)."""
    plt = pyplot()
    with torch.no_grad():
        feats = {label: _model(cfg, ckpt).extract(batch) for label, ckpt in panels.items()}
    keys = [k for k in ("lidar_bev", "camera_bev") if any(f.get(k) is not None for f in feats.values())]
    fig, axes = plt.subplots(len(keys), len(panels), figsize=(4 * len(panels), 4 * len(keys)), squeeze=False)
    ext = cfg.data.point_cloud_range
    for k, label in enumerate(panels):
        for row, key in enumerate(keys):
            ax = axes[row, k]
            if feats[label].get(key) is None:
                ax.axis("off")
                continue
            ax.imshow(pca_rgb(feats[label][key][0]), origin="lower", extent=(ext[0], ext[3], ext[1], ext[4]))
            ax.set_title(f"{'F^LiDAR' if key == 'lidar_bev' else 'F^Camera'}: {label}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("BEV feature maps (first 3 principal components as RGB) of one val sample")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def detections_figure(cfg: Config, ckpt: str, sample: dict, batch: dict, out: Path, score: float = 0.3,
                      camera: int = 0) -> Path:
    """Predicted boxes (score >= ``score``, red) and GT (green) in BEV and projected into one camera."""
    plt = pyplot()
    pred, labels = predict(_model(cfg, ckpt), batch, score)
    gt = np.asarray(sample["gt_boxes"])
    fig, (ax, axc) = plt.subplots(1, 2, figsize=(16, 7), gridspec_kw={"width_ratios": [1, 1.4]})
    draw_bev(ax, sample["points"], cfg.data.point_cloud_range, gt, pred)
    ax.set_title(f"BEV: {len(pred)} detections (red, score ≥ {score}) vs {len(gt)} GT boxes (green)")
    if "images" in sample:
        draw_camera(axc, sample, camera, cfg.data.cameras[camera], gt, pred, labels)
    axc.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def predict(model, batch: dict, score: float) -> tuple[np.ndarray, np.ndarray]:
    """The model's boxes (K, 9) with score >= ``score`` and their class ids, for the first sample of ``batch``."""
    with torch.no_grad():
        det = model.decode(model(batch))[0]
    keep = det["scores"] >= score
    return det["boxes"][keep].numpy(), det["labels"][keep].numpy()


def draw_bev(ax, points: np.ndarray, pc_range, gt: np.ndarray, pred: np.ndarray | None = None,
             regions: np.ndarray | None = None) -> None:
    """LiDAR points in BEV (grey, or a colour per pooled region when ``regions``), GT green, predictions red."""
    if regions is None:
        ax.scatter(points[:, 0], points[:, 1], s=0.15, c="#999999", linewidths=0)
    else:
        from calico.pooling.plot import region_colours

        less = regions < 0  # semantic-less points stay grey, as in `calico pool --plot`
        ax.scatter(points[less, 0], points[less, 1], s=0.15, c="#b0b0b0", linewidths=0)
        ax.scatter(points[~less, 0], points[~less, 1], s=0.6, c=region_colours(regions)[regions[~less]],
                   linewidths=0)
    for boxes, colour in ((gt, "g"), (pred if pred is not None else np.zeros((0, 9)), "r")):
        for b in boxes:
            c = box_corners(b)
            ax.plot(c[:, 0], c[:, 1], colour + "-", lw=0.8)
    ax.set_xlim(pc_range[0], pc_range[3])
    ax.set_ylim(pc_range[1], pc_range[4])
    ax.set_aspect("equal")


def draw_camera(ax, sample: dict, camera: int, name: str, gt: np.ndarray, pred: np.ndarray | None = None,
                labels: np.ndarray | None = None) -> None:
    """Camera ``camera`` of a sample dict with the GT (green) and predicted (red, class names) boxes projected."""
    img = sample["images"][camera]
    ax.imshow(img)
    m = np.asarray(sample["lidar2img"][camera])
    for boxes, colour, names in ((gt, "g", None), (pred if pred is not None else np.zeros((0, 9)), "r", labels)):
        for j, b in enumerate(boxes):
            _draw_box(ax, b, m, colour, img.shape, CLASSES[names[j]] if names is not None else None)
    ax.set_xlim(0, img.shape[1])
    ax.set_ylim(img.shape[0], 0)
    ax.set_title(name, fontsize=8)


def _draw_box(ax, box: np.ndarray, lidar2img: np.ndarray, colour: str, shape, label: str | None) -> None:
    x, y, z, w, length, h, yaw = box[:7]
    c, s = np.cos(yaw), np.sin(yaw)
    dx = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * length / 2
    dy = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * w / 2
    dz = np.array([-1, -1, -1, -1, 1, 1, 1, 1]) * h / 2
    xyz = np.stack([x + c * dx - s * dy, y + s * dx + c * dy, z + dz], 1)
    cam = xyz @ lidar2img[:3, :3].T + lidar2img[:3, 3]
    if np.any(cam[:, 2] < 0.5):
        return
    uv = cam[:, :2] / cam[:, 2:3]
    if uv[:, 0].max() < 0 or uv[:, 0].min() > shape[1] or uv[:, 1].max() < 0 or uv[:, 1].min() > shape[0]:
        return
    for a, b in ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7)):
        ax.plot(uv[[a, b], 0], uv[[a, b], 1], colour + "-", lw=0.7)
    if label:
        ax.text(uv[:, 0].min(), uv[:, 1].min(), label, color=colour, fontsize=6, clip_on=True)




def read_loss_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps, loss) from a run's ``metrics.jsonl`` (the engine appends a record every ``log_every`` steps)."""
    steps, losses = [], []
    path = Path(run_dir) / "metrics.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if "loss" in rec:
                steps.append(int(rec["step"]))
                losses.append(float(rec["loss"]))
    return np.asarray(steps), np.asarray(losses)


def _finish(fig, ax, xlabel: str, ylabel: str, title: str, out: Path) -> Path:
    """Labels, grid, legend, save and close: the common end of the line plots below."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    pyplot().close(fig)
    return out


def training_curves_figure(runs: dict[str, Path], out: Path, title: str) -> Path:
    fig, ax = pyplot().subplots(figsize=(7, 4))
    for label, run in runs.items():
        steps, loss = read_loss_curve(run)
        if len(steps):
            ax.plot(steps, loss, marker=".", label=label)
    return _finish(fig, ax, "step", "training loss", title, out)


def plot_label_efficiency(grid, results: dict, out: Path, metric: str = "NDS") -> Path:
    """Paper Fig. 5: ``metric`` against the label fraction, one line per method of a ``calico.apps.study.Grid``
    (error bars: std over seeds)."""
    from calico.apps.grids import METHODS
    from calico.eval.stats import summarize

    fig, ax = pyplot().subplots(figsize=(6, 4))
    for name in grid.methods:
        fr = sorted(results.get(name, {}))
        if not fr:
            continue
        stats = [summarize([r.get(metric, np.nan) * 100 for r in results[name][f]]) for f in fr]
        ax.errorbar([f * 100 for f in fr], [s.mean for s in stats], yerr=[s.std for s in stats], marker="o",
                    capsize=3, label=METHODS[name].label)  # the sample std of the tables (ddof=1)
    if max(grid.fractions) / min(grid.fractions) > 10:  # 2 % ... 100 %: equal room per doubling of labels
        ax.set_xscale("log")
    return _finish(fig, ax, "labelled training data (%)", f"{metric} (%)", grid.title, out)


def paired_seeds_figure(grid, results: dict, out: Path, metric: str = "mAP") -> Path:
    """``metric`` of every arm of a one-fraction ``calico.apps.study.Grid`` per seed, one line per seed across the
    arms (paired: same seed, same data order and head init), and each pre-trained arm's paired difference to
    the random init of its modality with its 95 % t-interval (``calico.eval.stats.paired_difference``)."""
    from calico.apps.grids import METHODS, baseline_of
    from calico.eval.stats import paired_difference

    fraction = grid.fractions[0]
    names = [m for m in grid.methods if results.get(m, {}).get(fraction)]
    fig, (ax, axd) = pyplot().subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1.3, 1]})
    seeds = sorted({r["seed"] for m in names for r in results[m][fraction]})
    for s in seeds:
        xs, ys = [], []
        for k, m in enumerate(names):
            v = [r.get(metric) for r in results[m][fraction] if r["seed"] == s]
            if v and v[0] is not None:
                xs.append(k)
                ys.append(v[0] * 100)
        ax.plot(xs, ys, marker="o", alpha=0.8, label=f"seed {s}")
    ax.set_xticks(range(len(names)), [METHODS[m].label for m in names], fontsize=8)
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(f"{metric} per seed at {fraction * 100:g} % labels")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    rows = []
    for m in names:
        base = baseline_of(m, grid.methods)
        if base is None or not results.get(base, {}).get(fraction):
            continue
        d = paired_difference({r["seed"]: r.get(metric) for r in results[m][fraction]},
                              {r["seed"]: r.get(metric) for r in results[base][fraction]})
        rows.append((f"{METHODS[m].label}\n− {METHODS[base].label}", d))
    for k, (_, d) in enumerate(rows):
        axd.scatter([x * 100 for x in d.diffs], [k] * len(d.diffs), s=12, c="#777777", zorder=3)
        if d.n > 1:
            axd.errorbar([d.mean * 100], [k], xerr=[[(d.mean - d.lo) * 100], [(d.hi - d.mean) * 100]], fmt="o",
                         c="C3", capsize=4, zorder=4)
        elif d.n == 1:
            axd.plot([d.mean * 100], [k], "o", c="C3")
    axd.axvline(0, c="k", lw=0.8)
    axd.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    axd.set_ylim(len(rows) - 0.5, -0.5)  # first arm on top
    axd.set_xlabel(f"paired Δ {metric} (points of %)")
    axd.set_title("mean and 95 % t-interval (grey: per seed)")
    axd.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    pyplot().close(fig)
    return out
