"""What PRC contrasts: statistics of the sampled rows, ``pretrain.sampling`` "uniform" vs "cell".

Run:  PYTHONPATH=$PWD python benchmarks/pretrain_sampling_stats.py
          [--dataroot ../shared/data/nuscenes-scene-0916] [--synth /tmp/samp_world --synth-version v1.0-synth
          --synth-cache /tmp/samp_cache] [--config paper] [--seeds 5] [--limit 0]

Each keyframe goes through the LiDAR family's draw as in ``_TwoViewLidar.two_view_features``: two augmented
views T1, T2 (pretrain.rot_range / scale_range / flip), N rich + M semantic-less rows valid in both views, the
cell grid being F^LiDAR's (``model.bev_size`` cells over ``data.point_cloud_range``). Per mode it prints:

* ``shared cell``: share of sampled rows whose F^LiDAR cell (in view 1, where it is read) holds another
  sampled row of the frame (bilinear reads of one cell are near-identical features); the next column
  does not count two rich rows of different regions in one cell (which "cell" allows);
* ``less ground (pool)``: share of semantic-less rows labelled ground by semantic pooling's ground mask;
  ``less z<-1.4``: share with z below -1.4 m in the LiDAR frame (the sensor sits ~1.8 m up);
* ``median range``, ``>30 m``: range of the sampled rows in the un-augmented frame;
* rows drawn per frame (rich / less) and the draw's time per frame.

Regions: the pooling cache when the dataset has one (``calico pool``), else ``semantic_pooling`` on the
loader's points; ground labels always come from ``semantic_pooling(..., return_ground=True)``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from calico.config import get_config  # noqa: E402
from calico.data.dataset import NuScenesDataset  # noqa: E402
from calico.data.prepare import prepare  # noqa: E402
from calico.models.bev import bev_cell_index  # noqa: E402
from calico.pooling import semantic_pooling  # noqa: E402
from calico.pretrain.augment import augment_batch_points  # noqa: E402
from calico.pretrain.sampling import sample_points  # noqa: E402

MODES = ("uniform", "cell")


def frame_stats(cfg, points: np.ndarray, regions: np.ndarray, ground: np.ndarray, seed: int, mode: str) -> dict:
    """One draw on one keyframe (batch of 1), as the LiDAR family does it."""
    pc = cfg.pretrain
    x0, y0, _, x1, y1, _ = cfg.data.point_cloud_range
    bev_range = (x0, y0, x1, y1)
    S = cfg.model.bev_size
    pts = torch.from_numpy(np.concatenate([np.zeros((len(points), 1), np.float32), points[:, :5]], 1))
    reg = torch.from_numpy(regions).long()
    g = torch.Generator().manual_seed(seed)
    v1, _ = augment_batch_points(pts, 1, pc, g)
    v2, _ = augment_batch_points(pts, 1, pc, g)
    t0 = time.perf_counter()
    s = sample_points(pts[:, 0].long(), reg, [v1[:, 1:3], v2[:, 1:3]], bev_range, 1, pc.num_rich, pc.num_less, g,
                      mode=mode, grid_shape=(S, S))
    dt = time.perf_counter() - t0
    i, j = bev_cell_index(v1[s.index, 1:3], bev_range, (S, S))
    cell = i * S + j
    _, inv, cnt = torch.unique(cell, return_inverse=True, return_counts=True)
    shared = float((cnt[inv] > 1).float().mean()) if len(s) else float("nan")
    # the same, not counting a rich row of another region as a clash ("cell" allows one row per cell and region)
    key = torch.where(s.regions >= 0, s.regions, -1)
    pair = torch.stack([cell, key], 1)
    _, pinv, pcnt = torch.unique(pair, dim=0, return_inverse=True, return_counts=True)
    rich_cells = torch.zeros_like(cnt)
    rich_cells.index_add_(0, inv, (s.regions >= 0).long())
    less_cells = cnt - rich_cells
    # a row clashes when its (cell, region) pair repeats, or a rich and a semantic-less row share its cell
    clash = (pcnt[pinv] > 1) | ((rich_cells[inv] > 0) & (less_cells[inv] > 0))
    same = float(clash.float().mean()) if len(s) else float("nan")
    idx = s.index.numpy()
    less = idx[regions[idx] < 0]
    rng = np.hypot(points[idx, 0], points[idx, 1])
    return {"shared": shared, "same": same, "ground": float(ground[less].mean()) if len(less) else float("nan"),
            "low": float((points[less, 2] < -1.4).mean()) if len(less) else float("nan"),
            "median_range": float(np.median(rng)), "far": float((rng > 30).mean()),
            "rich": s.num_rich, "less": s.num_less, "ms": 1000 * dt}


def dataset_stats(name: str, cfg, seeds: int, limit: int) -> list[str]:
    ds = NuScenesDataset(cfg, split=None, load_images=False)
    n = len(ds) if limit <= 0 else min(limit, len(ds))
    rows: dict[str, list[dict]] = {m: [] for m in MODES}
    cached = 0
    for k in range(n):
        sample = ds[k]
        points = sample["points"]
        reg_pool, ground = semantic_pooling(points, cfg.pooling, return_ground=True)
        if "regions" in sample:
            regions, cached = np.asarray(sample["regions"], np.int64), cached + 1
        else:
            regions = reg_pool
        for mode in MODES:
            for seed in range(seeds):
                rows[mode].append(frame_stats(cfg, points, regions, ground, seed, mode))
    out = [f"**{name}** ({n} keyframes x {seeds} draws, regions from "
           f"{'the pooling cache' if cached == n else 'semantic_pooling'}; mean over draws, ms = median)", "",
           "| sampling | shared cell | shared, not rich-rich of 2 regions | less ground (pool) | less z<-1.4 | median range | >30 m | rich | less | ms |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode in MODES:
        r = rows[mode]

        def mean(key: str, r: list[dict] = r) -> float:
            return float(np.nanmean([x[key] for x in r]))

        out.append(f"| {mode} | {100 * mean('shared'):.1f}% | {100 * mean('same'):.1f}% | {100 * mean('ground'):.1f}% | "
                   f"{100 * mean('low'):.1f}% | {mean('median_range'):.1f} m | {100 * mean('far'):.1f}% | "
                   f"{mean('rich'):.0f} | {mean('less'):.0f} | {np.median([x['ms'] for x in r]):.1f} |")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataroot", default="../shared/data/nuscenes-scene-0916")
    ap.add_argument("--version", default="v1.0-mini")
    ap.add_argument("--synth", default="", help="a synthetic world (calico synth), prepared and pooled")
    ap.add_argument("--synth-version", default="v1.0-synth")
    ap.add_argument("--synth-cache", default="", help="its cache dir (calico prepare/pool --cache-dir)")
    ap.add_argument("--config", default="paper")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--limit", type=int, default=0, help="keyframes per dataset (0: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg0 = get_config(args.config)
    lines = [f"`{' '.join(['python'] + sys.argv)}`", "",
             f"config {args.config}: N = {cfg0.pretrain.num_rich}, M = {cfg0.pretrain.num_less}, F^LiDAR "
             f"{cfg0.model.bev_size}^2 cells over {cfg0.data.point_cloud_range[:2]}..{cfg0.data.point_cloud_range[3:5]}"
             f", sweeps {cfg0.data.sweeps}", ""]
    if args.dataroot and os.path.isdir(args.dataroot):
        cfg = get_config(args.config)
        cfg.data.dataroot, cfg.data.version = args.dataroot, args.version
        cfg.data.cache_dir = tempfile.mkdtemp(prefix="samp_real_")
        prepare(cfg.data, progress=False)
        lines += dataset_stats(f"real nuScenes scene-0916 ({args.dataroot})", cfg, args.seeds, args.limit) + [""]
    if args.synth:
        cfg = get_config(args.config)
        cfg.data.dataroot, cfg.data.version = args.synth, args.synth_version
        if args.synth_cache:
            cfg.data.cache_dir = args.synth_cache
        lines += dataset_stats(f"synthetic world ({args.synth})", cfg, args.seeds, args.limit) + [""]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
