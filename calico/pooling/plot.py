"""BEV picture of the pooled regions with the GT boxes over them (the paper's Fig. 6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calico.data.geometry import box_corners


def region_colours(regions: np.ndarray) -> np.ndarray:
    """One RGB row per region id (fixed seed: a region keeps its colour from one picture to the next)."""
    n_regions = int(regions.max()) + 1 if len(regions) else 0
    return np.random.default_rng(0).uniform(0.1, 0.95, size=(max(1, n_regions), 3))


def plot_regions(xyz: np.ndarray, regions: np.ndarray, boxes: np.ndarray, out: str | Path,
                 title: str = "", extent: float = 50.0) -> Path:
    """Scatter the points in BEV (a colour per region, semantic-less grey) and outline the boxes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 9), dpi=110)
    less = regions < 0
    ax.scatter(xyz[less, 0], xyz[less, 1], s=0.2, c="#b0b0b0", linewidths=0)
    n_regions = int(regions.max()) + 1 if len(regions) else 0
    ax.scatter(xyz[~less, 0], xyz[~less, 1], s=0.8, c=region_colours(regions)[regions[~less]], linewidths=0)
    for box in boxes:
        cx = box_corners(box)
        ax.plot(cx[:, 0], cx[:, 1], "r-", lw=0.8)
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m, LiDAR frame)")
    ax.set_ylabel("y (m)")
    ax.set_title(title or f"{n_regions} regions (colours), semantic-less grey, GT boxes red")
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, bbox_inches="tight")
    except OSError as exc:
        from calico.errors import CalicoError

        raise CalicoError(f"--out {out}: cannot write the picture ({exc.strerror or exc})") from exc
    finally:
        plt.close(fig)
    return out


def plot_sample(ds, sample: str, out: str | Path) -> Path:
    """Pool and plot one sample of a ``NuScenesDataset`` given by token or index."""
    from calico.errors import CalicoError
    from calico.pooling.core import semantic_pooling

    try:
        i = ds.index_of(sample)
    except KeyError as exc:
        raise CalicoError(f"--plot {exc.args[0]}") from exc
    pts = ds.load_points(i)
    regions = semantic_pooling(pts, ds.cfg.pooling)
    rec = ds.records[i]
    n = int(regions.max()) + 1 if len(regions) else 0
    title = f"{rec.get('scene_name', '')} {rec['token'][:8]}: {n} regions" + ("" if len(pts) else " (0 points)")
    return plot_regions(pts[:, :3], regions, np.asarray(rec["gt_boxes"]), out, title)
