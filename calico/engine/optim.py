"""The AdamW optimiser and the learning-rate/momentum schedules of a ``TrainConfig``."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from calico.config import SCHEDULES, TrainConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], s: TrainConfig,
                    lr_mult: dict[int, float] | None = None) -> torch.optim.AdamW:
    """AdamW over the trainable ``params``; norms and biases are not decayed (as BEVFusion/mmdet3d).

    ``lr_mult`` maps ``id(param)`` to a multiplier of ``s.lr`` (default 1): each distinct multiplier gets
    its own groups, whose ``lr_mult`` the schedules scale by (pre-trained parts at a lower lr).
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters: every parameter is frozen")
    lr_mult = lr_mult or {}
    groups = []
    for mult in sorted({float(lr_mult.get(id(p), 1.0)) for p in params}, reverse=True):
        mine = [p for p in params if float(lr_mult.get(id(p), 1.0)) == mult]
        for decayed in (True, False):
            group = [p for p in mine if (p.ndim > 1) == decayed]
            if group:
                groups.append({"params": group, "weight_decay": s.weight_decay if decayed else 0.0,
                               "lr": s.lr * mult, "lr_mult": mult})
    return torch.optim.AdamW(groups, lr=s.lr, betas=(0.9, 0.999))


def build_scheduler(opt: torch.optim.Optimizer, s: TrainConfig, total_steps: int):
    """The per-step schedule.

    * ``cyclic``: BEVFusion's ``lr_config/momentum_config: policy: cyclic`` (mmcv defaults
      ``target_ratio=(10, 1e-4)``, ``step_ratio_up=0.4``; momentum ``(0.85/0.95, 1)``): the lr rises from
      ``lr`` to ``10 lr`` over the first 40% of steps and anneals (cosine) to ``1e-4 lr``; beta1 moves the
      opposite way, from 0.9 to 0.9*0.85/0.95 and back. ``OneCycleLR`` expresses exactly that cycle.
    * ``onecycle``: the usual one-cycle policy peaking at ``lr`` (start ``lr/25``, 30% warm-up, end
      ``lr/2.5e5``), beta1 0.95 -> 0.85 -> 0.95.
    * ``constant``: ``lr`` throughout (tests, debugging).
    """
    total_steps = max(1, int(total_steps))
    mults = [g.get("lr_mult", 1.0) for g in opt.param_groups]  # every group follows the schedule, scaled
    if s.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    if s.schedule == "cyclic":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[10 * s.lr * m for m in mults], total_steps=total_steps, pct_start=0.4, anneal_strategy="cos",
            div_factor=10.0, final_div_factor=1e4, cycle_momentum=True,  # start lr, end 1e-4 lr
            base_momentum=0.9 * 0.85 / 0.95, max_momentum=0.9)
    if s.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[s.lr * m for m in mults], total_steps=total_steps, pct_start=0.3, anneal_strategy="cos",
            div_factor=25.0, final_div_factor=1e4, cycle_momentum=True, base_momentum=0.85, max_momentum=0.95)
    raise ValueError(f"unknown schedule {s.schedule!r}; use one of {SCHEDULES}")
