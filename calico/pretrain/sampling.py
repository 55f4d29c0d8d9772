"""Sampling the N semantic-rich and M semantic-less points contrasted by PRC / RAD (paper §2.3, §3.1).

Per frame of the batch we draw, uniformly and **without replacement**, up to ``num_rich`` points with a
region id (``>= 0``) and up to ``num_less`` points without one (``-1``), among the points that are inside
the BEV range in *every* given view (after augmentation a point can leave the grid; its feature would
be the zero padding of the interpolation, a meaningless positive). When a frame has fewer candidates
than asked, all of them are used: we never duplicate a point, because a duplicated row would appear as
its own negative in the InfoNCE denominators. So the number of rows per frame can be below N + M (and
is 0 for a frame with no valid points); the losses accept any count.

Region ids are made unique across the batch by offsetting frame ``b``'s ids by the sum of
``max_id + 1`` of the frames before it, so regions of different frames never match.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


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
) -> PointSample:
    """Draw the contrasted points of a batch.

    ``batch_idx``, ``regions``: (P,) per point of the collated batch; ``views_xy``: one (P, 2) BEV
    position per view (a point must be inside ``bev_range`` in all of them). ``generator`` (CPU) makes
    the draw deterministic. ``allowed`` (P,) bool optionally restricts the candidates further (SimIPU: points
    that project into an image).
    """
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
    rich_rows, less_rows = [], []
    out_index, out_bidx, out_regions = [], [], []
    offset = 0
    for b in range(batch_size):
        in_frame = bidx_cpu == b
        frame_regions = regions_cpu[in_frame]
        rich = _draw((in_frame & valid_cpu & (regions_cpu >= 0)).nonzero().squeeze(1), num_rich, generator)
        less = _draw((in_frame & valid_cpu & (regions_cpu < 0)).nonzero().squeeze(1), num_less, generator)
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
