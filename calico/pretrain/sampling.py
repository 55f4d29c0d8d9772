"""Sampling the N semantic-rich and M semantic-less points contrasted by PRC / RAD (paper §2.3, §3.1).

Per frame of the batch we draw, **without replacement** (the two modes below), up to ``num_rich`` points with a
region id (``>= 0``) and up to ``num_less`` points without one (``-1``), among the points that are inside
the BEV range in *every* given view (after augmentation a point can leave the grid; its feature would
be the zero padding of the interpolation, a meaningless positive). When a frame has fewer candidates
than asked, all of them are used: we never duplicate a point, because a duplicated row would appear as
its own negative in the InfoNCE denominators. So the number of rows per frame can be below N + M (and
is 0 for a frame with no valid points); the losses accept any count.

Region ids are made unique across the batch by offsetting frame ``b``'s ids by the sum of
``max_id + 1`` of the frames before it, so regions of different frames never match.

Two ways to draw (``pretrain.sampling``):

* ``"uniform"``: rows uniformly among the candidates (the first implementation). On nuScenes most draws
  then land in a BEV cell that another draw also occupies (bilinear reads of one cell are near-identical
  features, i.e. false negatives in the InfoNCE denominators), most semantic-less draws are ground, and
  near points dominate (the density falls with range).
* ``"cell"``: at most one semantic-less row per F^LiDAR cell and one semantic-rich row per (cell, region)
  pair (two regions meeting in a cell are distinct positives), and no semantic-less row in a cell that
  already holds a drawn rich row; the cell is the point's cell in the *first* view, on the raster of
  ``calico.models.bev``. Among the one-per-cell representatives the quota is split evenly over range
  rings (``ring_width`` m, range measured in the first view), what a sparse ring cannot fill going to the
  others, and each ring draws uniformly. A frame gets fewer than N (M) rows only when it has fewer
  distinct cells (cell-region pairs) than that.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from calico.models.bev import bev_cell_index

SAMPLING_MODES = ("uniform", "cell")
RING_WIDTH = 10.0  # m, range rings of the "cell" draw


@dataclass
class PointSample:
    """The sampled rows, ordered frame by frame, semantic-rich rows first within a frame."""

    index: Tensor  # (K,) int64 rows of the batch's ``points`` / ``regions``
    batch_idx: Tensor  # (K,) int64 frame of each row
    regions: Tensor  # (K,) int64 batch-unique region id, -1 for semantic-less rows
    num_rich: int
    num_less: int

    def __len__(self) -> int:
        return int(self.index.shape[0])


def in_bev_range(xy: Tensor, bev_range: tuple[float, float, float, float]) -> Tensor:
    """Bool mask of ``xy`` (P, 2) inside ``[x_min, x_max) x [y_min, y_max)``."""
    x_min, y_min, x_max, y_max = bev_range
    return (xy[:, 0] >= x_min) & (xy[:, 0] < x_max) & (xy[:, 1] >= y_min) & (xy[:, 1] < y_max)


def _draw(candidates: Tensor, count: int, generator: torch.Generator) -> Tensor:
    if candidates.numel() <= count:
        return candidates
    perm = torch.randperm(candidates.numel(), generator=generator)[:count]
    return candidates[perm]


def ring_quota(counts: list[int], total: int) -> list[int]:
    """Split ``total`` draws over rings holding ``counts`` candidates: equal shares, a ring that cannot fill
    its share keeps all it has and the rest is shared among the others (water filling); integer remainders
    go to the nearest rings."""
    quota = [0] * len(counts)
    remaining = min(total, sum(counts))
    open_rings = sorted((c, r) for r, c in enumerate(counts) if c > 0)
    for pos, (c, r) in enumerate(open_rings):
        k = len(open_rings) - pos
        share = remaining // k
        if c <= share:
            quota[r] = c
            remaining -= c
            continue
        # every ring left holds more than the share: share each, one more for the nearest `extra` of them
        extra = remaining - share * k
        for t, rr in enumerate(sorted(rr for _, rr in open_rings[pos:])):
            quota[rr] = share + (1 if t < extra else 0)
        break
    return quota


def _draw_cells(key: Tensor, dist: Tensor, count: int, ring_width: float, generator: torch.Generator) -> Tensor:
    """Positions (into the candidate arrays) of at most ``count`` rows, one per distinct ``key``, balanced over
    range rings of ``dist``; returned in random order."""
    n = key.numel()
    if count <= 0 or n == 0:
        return key.new_zeros(0)
    # one representative per key, uniform among its rows: sort by (key, random priority) in one int64 sort
    # (the priorities are a permutation, so no ties), then the first row of each key
    k, order = torch.sort(key * n + torch.randperm(n, generator=generator))
    k = torch.div(k, n, rounding_mode="floor")
    first = torch.ones(n, dtype=torch.bool)
    first[1:] = k[1:] != k[:-1]
    reps = order[first]
    ring = torch.floor(dist[reps] / ring_width).long().clamp(min=0)
    counts = torch.bincount(ring)
    quota = torch.tensor(ring_quota(counts.tolist(), count), dtype=torch.long)
    # uniform inside a ring: a fresh random order of the representatives, then the first quota[r] of ring r
    perm2 = torch.randperm(reps.numel(), generator=generator)
    o2 = perm2[torch.argsort(ring[perm2], stable=True)]
    r2 = ring[o2]
    start = torch.cumsum(counts, 0) - counts
    rank = torch.arange(o2.numel()) - start[r2]
    keep = o2[rank < quota[r2]]
    # back to the random order of perm2, so rows are not grouped by ring
    pos = torch.empty_like(perm2)
    pos[perm2] = torch.arange(perm2.numel())
    return reps[keep[torch.argsort(pos[keep])]]


def _draw_frame_cells(rich_cand: Tensor, less_cand: Tensor, regions: Tensor, cell: Tensor, num_cells: int,
                      dist: Tensor, num_rich: int, num_less: int, ring_width: float,
                      generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The "cell" draw of one frame: rich rows one per (cell, region), then semantic-less rows one per cell
    among the cells no drawn rich row occupies."""
    rich_cell = cell[rich_cand]
    n_reg = int(regions[rich_cand].max()) + 1 if rich_cand.numel() else 1
    rich = rich_cand[_draw_cells(rich_cell * n_reg + regions[rich_cand], dist[rich_cand], num_rich, ring_width,
                                 generator)]
    # a semantic-less row in a drawn rich row's cell would read the same feature as that positive
    taken = torch.zeros(num_cells, dtype=torch.bool)
    taken[cell[rich]] = True
    less_cand = less_cand[~taken[cell[less_cand]]]
    less = less_cand[_draw_cells(cell[less_cand], dist[less_cand], num_less, ring_width, generator)]
    return rich, less


def sample_points(
    batch_idx: Tensor,
    regions: Tensor,
    views_xy: list[Tensor] | tuple[Tensor, ...],
    bev_range: tuple[float, float, float, float],
    batch_size: int,
    num_rich: int,
    num_less: int,
    generator: torch.Generator,
    allowed: Tensor | None = None,
    *,
    mode: str = "uniform",
    grid_shape: tuple[int, int] | None = None,
    ring_width: float = RING_WIDTH,
) -> PointSample:
    """Draw the contrasted points of a batch.

    ``batch_idx``, ``regions``: (P,) per point of the collated batch; ``views_xy``: one (P, 2) BEV
    position per view (a point must be inside ``bev_range`` in all of them). ``generator`` (CPU) makes
    the draw deterministic. ``allowed`` (P,) bool optionally restricts the candidates further (SimIPU: points
    that project into an image). ``mode`` "cell" needs ``grid_shape`` (rows, cols) of the feature map the
    rows are read from, which spans ``bev_range``; ``ring_width`` (m) sets its range rings.
    """
    if mode not in SAMPLING_MODES:
        raise ValueError(f"sample_points: mode must be one of {SAMPLING_MODES}, got {mode!r}")
    if mode == "cell" and grid_shape is None:
        raise ValueError("sample_points: mode 'cell' needs grid_shape (rows, cols) of the feature map")
    if regions.shape != batch_idx.shape or regions.dim() != 1:
        raise ValueError(
            f"sample_points: regions {tuple(regions.shape)} must be (P,) like batch_idx {tuple(batch_idx.shape)}"
        )
    device = regions.device
    valid = torch.ones_like(regions, dtype=torch.bool) if allowed is None else allowed.to(torch.bool).clone()
    if valid.shape != regions.shape:
        raise ValueError(f"sample_points: allowed {tuple(valid.shape)} must be (P,) like regions")
    for xy in views_xy:
        if xy.shape != (regions.shape[0], 2):
            raise ValueError(f"sample_points: view xy must be ({regions.shape[0]}, 2), got {tuple(xy.shape)}")
        valid &= in_bev_range(xy, bev_range)
    bidx_cpu = batch_idx.long().cpu()
    regions_cpu = regions.long().cpu()
    valid_cpu = valid.cpu()
    cell_cpu = dist_cpu = None
    num_cells = 0
    if mode == "cell":
        xy0 = views_xy[0].detach().float().cpu()
        rows_, cols_ = int(grid_shape[0]), int(grid_shape[1])
        i, j = bev_cell_index(xy0, bev_range, (rows_, cols_))
        # a point on the far edge can round onto index == size; it still belongs to the last cell
        cell_cpu = i.clamp(0, rows_ - 1) * cols_ + j.clamp(0, cols_ - 1)
        num_cells = rows_ * cols_
        dist_cpu = torch.hypot(xy0[:, 0], xy0[:, 1])
    rich_rows, less_rows = [], []
    out_index, out_bidx, out_regions = [], [], []
    offset = 0
    for b in range(batch_size):
        in_frame = bidx_cpu == b
        frame_regions = regions_cpu[in_frame]
        rich_cand = (in_frame & valid_cpu & (regions_cpu >= 0)).nonzero().squeeze(1)
        less_cand = (in_frame & valid_cpu & (regions_cpu < 0)).nonzero().squeeze(1)
        if mode == "uniform":
            rich = _draw(rich_cand, num_rich, generator)
            less = _draw(less_cand, num_less, generator)
        else:
            rich, less = _draw_frame_cells(rich_cand, less_cand, regions_cpu, cell_cpu, num_cells, dist_cpu,
                                           num_rich, num_less, ring_width, generator)
        rows = torch.cat([rich, less])
        reg = regions_cpu[rows].clone()
        reg[: rich.numel()] += offset
        out_index.append(rows)
        out_bidx.append(torch.full((rows.numel(),), b, dtype=torch.long))
        out_regions.append(reg)
        rich_rows.append(rich.numel())
        less_rows.append(less.numel())
        if frame_regions.numel():
            offset += int(frame_regions.max().clamp(min=-1)) + 1
    return PointSample(
        index=torch.cat(out_index).to(device),
        batch_idx=torch.cat(out_bidx).to(device),
        regions=torch.cat(out_regions).to(device),
        num_rich=sum(rich_rows),
        num_less=sum(less_rows),
    )
