"""Tiny stand-ins for engine tests: a two-part model, a dataset, and a step module using every RNG."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset


class ToyData(Dataset):
    def __init__(self, n: int = 22):
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(n, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "y": self.y[i]}


def collate(items: list[dict]) -> dict:
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


class ToyModel(nn.Module):
    def __init__(self, hidden: int = 8):
        super().__init__()
        self.lidar_backbone = nn.Sequential(nn.Linear(4, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.2))
        self.det_head = nn.Linear(hidden, 1)

    def part_names(self) -> list[str]:
        return ["lidar_backbone", "det_head"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.det_head(self.lidar_backbone(x)).squeeze(-1)


class ToyStep(nn.Module):
    """forward(batch, generator) -> (loss, logs); draws from the generator, numpy, python and torch RNGs."""

    def __init__(self, model: ToyModel, nan_at_call: int = -1):
        super().__init__()
        self.model = model
        self.calls = 0
        self.nan_at_call = nan_at_call

    def forward(self, batch: dict, generator: torch.Generator):
        self.calls += 1
        x = batch["x"] + 0.1 * torch.randn(batch["x"].shape, generator=generator).to(batch["x"].device)
        x = x * float(np.random.uniform(0.9, 1.1)) * (1.0 + 0.01 * random.random())
        mse = ((self.model(x) - batch["y"]) ** 2).mean()
        reg = 1e-3 * sum((p**2).sum() for p in self.model.det_head.parameters())
        if self.calls == self.nan_at_call:
            mse = mse * float("nan")
        return mse + reg, {"mse": mse, "reg": reg}


class ContractModel(nn.Module):
    """model(batch) -> out, model.loss(out, batch) -> (total, logs), model.part_names()."""

    def __init__(self):
        super().__init__()
        inner = ToyModel()
        self.lidar_backbone, self.det_head = inner.lidar_backbone, inner.det_head

    def part_names(self):
        return ["lidar_backbone", "det_head"]

    def forward(self, batch):
        return {"pred": self.det_head(self.lidar_backbone(batch["x"])).squeeze(-1)}

    def loss(self, out, batch):
        det = ((out["pred"] - batch["y"]) ** 2).mean()
        return det, {"det": float(det.detach()), "total": float(det.detach())}
