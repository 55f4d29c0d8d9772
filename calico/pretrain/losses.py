"""Pre-training losses: CALICO's eq. 1 (PLRC), eq. 2 (RAPC, PRC), eq. 3 (RAD) and the baselines.

Conventions shared by every function here:

* Feature inputs are *raw*; each function L2-normalises them along the last (feature) dimension.
* ``regions`` is int64, one entry per row, ``-1`` for a semantic-less row and a region id ``>= 0``
  for a semantic-rich row. Row ``i`` of the two view tensors is the same physical point.
  Region ids must be unique across the frames of a batch (``calico.pretrain.sampling`` offsets them).
* Every loss is a scalar tensor. When there is nothing to contrast (no semantic-rich row) the loss is
  ``0 * (sum of the inputs)``: exactly zero, but attached to the autograd graph, so ``backward()``
  and DDP's gradient all-reduce still run (every rank must call backward on the same graph shape).
* Softmax denominators use ``logsumexp``/``log_softmax``; no ``exp`` of raw logits.
* ``batch_idx`` (optional, (K,) frame of each row): when given, each anchor's denominator runs only over the
  rows of its own frame, i.e. the ``N + M`` of eq. 1/2 are the points sampled from one point cloud, and the
  loss is the mean over all anchors of the batch. When ``None`` every row of the batch is a negative.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "plrc_loss",
    "rapc_loss",
    "prc_loss",
    "rad_loss",
    "point_contrast_loss",
    "proposal_contrast_loss",
    "simipu_loss",
    "bevdistill_loss",
    "dense_distill_loss",
    "region_groups",
]


def _zero(*tensors: Tensor) -> Tensor:
    """A zero scalar that is still connected to the graph of ``tensors`` (see module docstring)."""
    return sum((t.sum() * 0.0 for t in tensors if t.requires_grad), torch.zeros((), device=tensors[0].device))


_Fn = TypeVar("_Fn", bound=Callable[..., Tensor])


def _no_autocast(fn: _Fn) -> _Fn:
    """Run a loss outside autocast: fp16 matmuls of unit vectors / tau lose the small logit differences."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.autocast("cuda", enabled=False), torch.autocast("cpu", enabled=False):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _f(x: Tensor) -> Tensor:
    """Half-precision inputs (AMP) are promoted to float32: exp/logsumexp at tau = 0.07 need the range."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _restrict_to_frame(logits: Tensor, anchor_frame: Tensor | None, frame: Tensor | None) -> Tensor:
    """Mask (with -inf) the logits between rows of different frames (see ``batch_idx`` in the module doc)."""
    if frame is None:
        return logits
    return logits.masked_fill(anchor_frame[:, None] != frame[None, :], float("-inf"))


def _check_rows(name: str, regions: Tensor, *tensors: Tensor) -> None:
    n = regions.shape[0]
    if regions.dim() != 1:
        raise ValueError(f"{name}: regions must be 1-d, got shape {tuple(regions.shape)}")
    for t in tensors:
        if t.dim() != 2 or t.shape[0] != n:
            raise ValueError(f"{name}: expected ({n}, D) features to match regions, got {tuple(t.shape)}")


def region_groups(regions: Tensor) -> Tensor:
    """Compact group index per row: rows of the same region share a group, each semantic-less row is its own.

    Returns int64 ``(K,)`` with values in ``[0, G)``. Used by RAPC's max-pooling (``scatter_reduce``).
    """
    rich = regions >= 0
    # Semantic-less rows get ids above every real region id so they can never collide with one.
    base = regions.max().clamp(min=-1) + 1 if regions.numel() else regions.new_zeros(())
    singleton = base + torch.arange(regions.shape[0], device=regions.device)
    keys = torch.where(rich, regions, singleton)
    return torch.unique(keys, return_inverse=True)[1]


@_no_autocast
def plrc_loss(
    z1: Tensor, z2: Tensor, regions: Tensor, tau: float = 0.07, batch_idx: Tensor | None = None
) -> Tensor:
    """Point-level region contrast, eq. 1.

    Anchors are the semantic-rich rows ``i`` of view 1; positives are every row ``j`` of view 2 with
    ``regions[j] == regions[i]`` (``j = i`` included), ``C_i`` their number; the softmax denominator
    runs over all ``N + M`` rows of view 2 (semantic-less rows are extra negatives). The loss is
    ``-mean_i (1/C_i) sum_{j in pos(i)} log softmax_j(z1_i . z2_j / tau)``.
    """
    _check_rows("plrc_loss", regions, z1, z2)
    rich = regions >= 0
    if not bool(rich.any()):
        return _zero(z1, z2)
    z1 = F.normalize(_f(z1), dim=-1)
    z2 = F.normalize(_f(z2), dim=-1)
    logits = z1[rich] @ z2.t() / tau  # (N, N+M)
    logits = _restrict_to_frame(logits, None if batch_idx is None else batch_idx[rich], batch_idx)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = regions[rich][:, None] == regions[None, :]  # -1 never equals a rich id
    # where(), not a product: masked-out frames hold -inf and -inf * 0 is nan
    per_anchor = torch.where(pos, log_prob, torch.zeros_like(log_prob)).sum(1) / pos.sum(1)
    return -per_anchor.mean()


def _rapc_representation(p: Tensor, groups: Tensor, num_groups: int) -> Tensor:
    p = F.normalize(_f(p), dim=-1)
    index = groups[:, None].expand(-1, p.shape[1])
    pooled = p.new_zeros(num_groups, p.shape[1]).scatter_reduce(0, index, p, "amax", include_self=False)
    return F.normalize(torch.cat([p, pooled[groups]], dim=1), dim=-1)


@_no_autocast
def rapc_loss(
    p1: Tensor, p2: Tensor, regions: Tensor, tau: float = 0.07, batch_idx: Tensor | None = None
) -> Tensor:
    """Region-aware point contrast, eq. 2.

    Exactly what is computed, per view: (1) every row of ``p`` is L2-normalised; (2) the region feature
    ``p_r`` is the channel-wise max of the *normalised* rows of region ``r`` (a semantic-less row is its
    own region, so its ``p_r`` is itself); (3) the representation is ``concat(p_i, p_r)``, L2-normalised
    again (so it has unit norm and both halves weigh equally at init). Anchors are the semantic-rich rows
    of view 1, the positive is the same row of view 2, the denominator runs over all ``N + M`` rows of
    view 2. Gradients of the max flow to the arg-max row(s) of each channel.
    """
    _check_rows("rapc_loss", regions, p1, p2)
    rich = regions >= 0
    if not bool(rich.any()):
        return _zero(p1, p2)
    groups = region_groups(regions)
    num_groups = int(groups.max()) + 1
    r1 = _rapc_representation(p1, groups, num_groups)
    r2 = _rapc_representation(p2, groups, num_groups)
    anchors = rich.nonzero().squeeze(1)
    logits = r1[anchors] @ r2.t() / tau
    logits = _restrict_to_frame(logits, None if batch_idx is None else batch_idx[anchors], batch_idx)
    return F.cross_entropy(logits, anchors)


@_no_autocast
def prc_loss(
    z1: Tensor,
    z2: Tensor,
    p1: Tensor,
    p2: Tensor,
    regions: Tensor,
    alpha: float = 0.5,
    tau: float = 0.07,
    batch_idx: Tensor | None = None,
) -> Tensor:
    """Point-region contrast, eq. 2: ``alpha * plrc + (1 - alpha) * rapc``."""
    return alpha * plrc_loss(z1, z2, regions, tau, batch_idx) + (1.0 - alpha) * rapc_loss(
        p1, p2, regions, tau, batch_idx)


@_no_autocast
def rad_loss(
    c: Tensor, l: Tensor, regions: Tensor, tau: float = 0.07, batch_idx: Tensor | None = None  # noqa: E741
) -> Tensor:
    """Region-aware distillation, eq. 3, over the semantic-rich rows only.

    ``-1/N_R sum_{S} 1/N_S sum_{i in S} log softmax_j(c_i . l_j / tau)[i]`` with ``j`` over all
    semantic-rich rows, ``N_R`` the number of distinct regions among them and ``N_S`` the number of
    sampled rows of region ``S``: every region weighs the same, whatever its point count.
    ``c`` is the projected camera feature (gets gradients); ``l`` the LiDAR feature, detached here.
    With ``batch_idx``, ``j`` runs over the rich rows of ``i``'s frame and ``N_R`` counts the regions of
    the whole batch (region ids are batch-unique), so every region of the batch weighs the same.
    """
    _check_rows("rad_loss", regions, c, l)
    rich = regions >= 0
    if not bool(rich.any()):
        return _zero(c)
    c = F.normalize(_f(c[rich]), dim=-1)
    l = F.normalize(_f(l[rich].detach()), dim=-1)  # noqa: E741
    reg = regions[rich]
    logits = c @ l.t() / tau
    frame = None if batch_idx is None else batch_idx[rich]
    logits = _restrict_to_frame(logits, frame, frame)
    diag = torch.diagonal(logits) - torch.logsumexp(logits, dim=1)
    _, inverse, counts = torch.unique(reg, return_inverse=True, return_counts=True)
    weight = 1.0 / (counts[inverse].to(diag.dtype) * counts.numel())
    return -(weight * diag).sum()


@_no_autocast
def point_contrast_loss(z1: Tensor, z2: Tensor, tau: float = 0.07, batch_idx: Tensor | None = None) -> Tensor:
    """PointContrast InfoNCE: row ``i`` of view 1 against all rows of view 2, positive = row ``i``."""
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"point_contrast_loss: views must be equal (K, D), got {tuple(z1.shape)}, {tuple(z2.shape)}")
    if z1.shape[0] == 0:
        return _zero(z1, z2)
    z1 = F.normalize(_f(z1), dim=-1)
    z2 = F.normalize(_f(z2), dim=-1)
    logits = _restrict_to_frame(z1 @ z2.t() / tau, batch_idx, batch_idx)
    return F.cross_entropy(logits, torch.arange(z1.shape[0], device=z1.device))


def ball_query_mask(xy: Tensor, batch_idx: Tensor, anchors: Tensor, radius: float) -> Tensor:
    """``(A, K)`` bool: row ``a`` marks the points of the same frame within ``radius`` (BEV, metres) of anchor ``a``."""
    d2 = ((xy[anchors][:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    return (d2 <= radius * radius) & (batch_idx[anchors][:, None] == batch_idx[None, :])


@_no_autocast
def proposal_contrast_loss(
    f1: Tensor,
    f2: Tensor,
    xy: Tensor,
    batch_idx: Tensor,
    anchors: Tensor,
    radius: float,
    pool: torch.nn.Module,
    tau: float = 0.07,
    per_frame: bool = False,
) -> Tensor:
    """ProposalContrast-style loss (Yin et al., 2022).

    ``f1``/``f2`` (K, D): point features of the same K physical points in the two views; ``xy`` (K, 2) their
    BEV position in one common frame (the un-augmented one, so a proposal holds the same points in both
    views); ``anchors`` (A,) row indices. Each anchor's proposal is the fixed-radius ball query of the rows
    of its frame; ``pool(anchor_feat (A,D), member_feat (K,D), mask (A,K)) -> (A, D')`` attention-pools the
    members into a proposal feature; InfoNCE across views on the proposal features (positive = same anchor),
    negatives the other anchors of the batch (``per_frame``: of the anchor's frame only).
    """
    if anchors.numel() == 0:
        return _zero(f1, f2)
    mask = ball_query_mask(xy, batch_idx, anchors, radius)
    q1 = pool(f1[anchors], f1, mask)
    q2 = pool(f2[anchors], f2, mask)
    return point_contrast_loss(q1, q2, tau, batch_idx[anchors] if per_frame else None)


@_no_autocast
def simipu_loss(
    lidar: Tensor, pixel: Tensor, tau: float = 0.07, lidar2: Tensor | None = None, batch_idx: Tensor | None = None
) -> Tensor:
    """SimIPU-style camera-LiDAR contrast (Li et al., 2022).

    Row ``i`` of ``lidar`` (K, D) is a LiDAR point's feature and row ``i`` of ``pixel`` (K, D) the camera
    feature at the pixel it projects to. Inter-modal term: symmetric InfoNCE (LiDAR→pixel and
    pixel→LiDAR), gradients into both modalities. If ``lidar2`` (the same points in a second augmented
    LiDAR view) is given, SimIPU's intra-modal term (PointContrast between the LiDAR views) is added.
    """
    if lidar.shape != pixel.shape or lidar.dim() != 2:
        raise ValueError(f"simipu_loss: expected equal (K, D) tensors, got {tuple(lidar.shape)}, {tuple(pixel.shape)}")
    loss = 0.5 * (point_contrast_loss(lidar, pixel, tau, batch_idx) + point_contrast_loss(pixel, lidar, tau, batch_idx))
    if lidar2 is not None:
        loss = loss + point_contrast_loss(lidar, lidar2, tau, batch_idx)
    return loss


def _masked_cosine_distill(student: Tensor, teacher: Tensor, mask: Tensor | None) -> Tensor:
    if student.shape != teacher.shape or student.dim() != 4:
        raise ValueError(
            f"distillation: student and teacher must be equal (B, C, H, W), got {tuple(student.shape)}, {tuple(teacher.shape)}"
        )
    s = F.normalize(_f(student), dim=1)
    t = F.normalize(_f(teacher.detach()), dim=1)
    per_cell = ((s - t) ** 2).sum(1)  # (B, H, W), = 2 - 2 cos, in [0, 4]
    if mask is None:
        return per_cell.mean()
    if mask.shape != per_cell.shape:
        raise ValueError(f"distillation: mask must be (B, H, W) = {tuple(per_cell.shape)}, got {tuple(mask.shape)}")
    m = mask.to(per_cell.dtype)
    if not bool(m.sum() > 0):
        return _zero(student)
    return (per_cell * m).sum() / m.sum()


@_no_autocast
def bevdistill_loss(student: Tensor, teacher: Tensor, mask: Tensor) -> Tensor:
    """BEVDistill-style dense distillation restricted to ``mask`` (B, H, W) (the pooled-region cells).

    Per BEV cell both features are L2-normalised over channels; the loss is the mean over masked cells of
    ``||s - t||^2 = 2 - 2 cos(s, t)``. The teacher is detached. Empty mask → graph-connected zero.
    """
    return _masked_cosine_distill(student, teacher, mask)


@_no_autocast
def dense_distill_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Vanilla dense distillation: ``bevdistill_loss`` over every cell of the BEV map."""
    return _masked_cosine_distill(student, teacher, None)
