"""One fine-tuning and one PRC step of the real BEV model on a dummy batch, with or without bf16 autocast.

Shared by tests/test_models_autocast.py (CPU autocast) and tests/test_gpu.py (CUDA); the stand-in regions are
the ones benchmarks/bench_models.py uses.
"""

from __future__ import annotations

import copy
import math
from contextlib import nullcontext

import torch

from calico.config import get_config
from calico.models import build_model, make_dummy_batch

# smaller than the cpu preset (as tests/test_models.py's TINY): 48x48 BEV over ±24 m, small images
TINY = [
    "data.point_cloud_range=(-24.0, -24.0, -5.0, 24.0, 24.0, 3.0)", "data.image_size=(64, 176)",
    "model.bev_size=48", "model.seg_range=24.0", "model.seg_size=40", "model.head_channels=16",
    "model.depth_bound=(1.0, 33.0, 2.0)", "pretrain.num_rich=128", "pretrain.num_less=128",
]

# bf16 keeps 8 significant bits: one step's loss moves by about 1 %; 5 % is the stated tolerance of the bf16
# against fp32 comparisons (tests/test_models_autocast.py on CPU, tests/test_gpu.py on CUDA)
AMP_RTOL = 5e-2


def add_regions(batch: dict) -> dict:
    """Stand-in pooled regions: points grouped by 2 m BEV cells, a third of the cells semantic-less."""
    cell = torch.floor(batch["points"][:, 1:3] / 2.0).long()
    key = (cell[:, 0] * 1000 + cell[:, 1]).remainder(3000)
    batch["regions"] = torch.where(key % 3 == 0, torch.full_like(key, -1), key)
    return batch


def setup(task: str, modality: str, preset: str = "cpu", extra: list[str] | None = None,
          device: str = "cpu", num_points: int = 3000, batch_size: int = 2) -> tuple[torch.nn.Module, dict]:
    """(module, batch) for ``task`` "finetune" (the BEV model) or a pre-training stage such as "prc" (its method)."""
    torch.manual_seed(0)
    cfg = get_config(preset, [*(extra or []), f"model.modality={modality}"])
    model = build_model(cfg.model, cfg.data).to(device).train()
    batch = make_dummy_batch(cfg, batch_size=batch_size, num_points=num_points, num_boxes=4, device=device)
    if task == "finetune":
        return model, batch
    from calico.pretrain.methods import build_method

    return build_method(task, model, cfg).to(device).train(), add_regions(batch)


def step_loss(module: torch.nn.Module, batch: dict) -> torch.Tensor:
    """The step's loss: ``model.loss(model(batch), batch)`` or a method's ``forward(batch, generator)``."""
    if hasattr(module, "trainable_parameters"):  # a pre-training method
        return module(batch, torch.Generator().manual_seed(0))[0]
    return module.loss(module(batch), batch)[0]


def loss_and_grads(module: torch.nn.Module, batch: dict, bf16: bool) -> tuple[float, bool]:
    """Loss of one forward (on a copy of ``module``, so BatchNorm statistics stay untouched) under bf16 autocast
    or in fp32, and whether the loss and every gradient are finite."""
    module = copy.deepcopy(module)
    device = next(module.parameters()).device.type
    with torch.autocast(device, dtype=torch.bfloat16) if bf16 else nullcontext():
        loss = step_loss(module, batch)
    loss.backward()
    value = float(loss.detach().float())
    finite = all(bool(torch.isfinite(p.grad).all()) for p in module.parameters() if p.grad is not None)
    return value, finite and math.isfinite(value)
