"""BEV map-segmentation IoU, the BEVFusion way.

Per class and per probability threshold, true/false positives and false negatives are summed over the
whole split (a dataset-level IoU, not a mean of per-sample IoUs, which over-weights near-empty samples);
each class reports its IoU at its best threshold and ``mIoU`` is the mean of those. The default grid is
BEVFusion's (0.35 … 0.65, step 0.05).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from calico.config import MAP_CLASSES

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65)


class SegmentationMeter:
    """Accumulates TP/FP/FN per (threshold, class) over batches; ``compute`` gives per-class best IoU."""

    def __init__(self, classes: Sequence[str] = MAP_CLASSES, thresholds: Sequence[float] = DEFAULT_THRESHOLDS):
        if not thresholds:
            raise ValueError("SegmentationMeter needs at least one threshold")
        self.classes = tuple(classes)
        self.thresholds = torch.tensor(sorted(float(t) for t in thresholds), dtype=torch.float64)
        shape = (len(self.thresholds), len(self.classes))
        self.tp = torch.zeros(shape, dtype=torch.float64)
        self.fp = torch.zeros(shape, dtype=torch.float64)
        self.fn = torch.zeros(shape, dtype=torch.float64)
        self.samples = 0

    @torch.no_grad()
    def update(self, probs: torch.Tensor, masks: torch.Tensor) -> None:
        """``probs`` (B, C, S, S) in [0, 1] (sigmoid of the seg logits); ``masks`` (B, C, S, S) {0, 1}."""
        if probs.shape != masks.shape or probs.dim() != 4 or probs.shape[1] != len(self.classes):
            raise ValueError(f"expected probs and masks (B, {len(self.classes)}, S, S), "
                             f"got {tuple(probs.shape)} and {tuple(masks.shape)}")
        probs = probs.detach().float().flatten(2)  # (B, C, N)
        gt = masks.detach().bool().flatten(2)
        th = self.thresholds.to(probs.device, torch.float32)
        # One threshold at a time keeps memory at one (B, C, N) boolean, not T of them.
        for i, t in enumerate(th):
            pred = probs >= t
            self.tp[i] += (pred & gt).sum(dim=(0, 2)).double().cpu()
            self.fp[i] += (pred & ~gt).sum(dim=(0, 2)).double().cpu()
            self.fn[i] += (~pred & gt).sum(dim=(0, 2)).double().cpu()
        self.samples += probs.shape[0]

    def iou_table(self) -> torch.Tensor:
        """(T, C) IoU per threshold and class; NaN where a class has neither prediction nor ground truth."""
        union = self.tp + self.fp + self.fn
        return torch.where(union > 0, self.tp / union.clamp(min=1), torch.full_like(union, float("nan")))

    def compute(self) -> dict:
        """``{class: best IoU, "mIoU": mean over classes with a defined IoU, "best_threshold": {class: t}}``."""
        table = self.iou_table()
        result: dict = {}
        best_t: dict[str, float | None] = {}
        for c, name in enumerate(self.classes):
            col = table[:, c]
            if torch.isnan(col).all():
                result[name], best_t[name] = float("nan"), None
                continue
            i = int(torch.nan_to_num(col, nan=-1.0).argmax())
            result[name], best_t[name] = float(col[i]), float(self.thresholds[i])
        defined = [v for v in result.values() if v == v]
        result["mIoU"] = float(sum(defined) / len(defined)) if defined else float("nan")
        result["best_threshold"] = best_t
        return result
