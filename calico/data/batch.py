"""Helpers on the collated Batch of docs/ARCHITECTURE.md, shared by the models, the engine and evaluation."""

from __future__ import annotations

from typing import Any

import torch


def batch_size_of(batch: dict) -> int:
    """Frames in a batch: ``batch_size`` (set by pre-training's two-view batches), else ``tokens``, else
    ``gt_boxes``, else ``images``, else the points' largest batch index + 1."""
    if "batch_size" in batch:
        return int(batch["batch_size"])
    for key in ("tokens", "gt_boxes"):
        if key in batch:
            return len(batch[key])
    if batch.get("images") is not None:
        return int(batch["images"].shape[0])
    pts = batch["points"]
    return int(pts[:, 0].max().item()) + 1 if pts.numel() else 1


def move_to(obj: Any, device: torch.device | str) -> Any:
    """Move every tensor in a (nested) batch to ``device``; other values pass through.

    Host-to-device copies are asynchronous (``non_blocking``: they overlap when the loader pins memory, and
    the stream orders them before any use); a copy off the GPU is not, since the CPU would read it at once.
    """
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=obj.device.type == "cpu")
    if isinstance(obj, dict):
        return {k: move_to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to(v, device) for v in obj)
    return obj
