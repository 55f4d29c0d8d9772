"""Supervised fine-tuning of the BEV model (detection / map segmentation) on a label fraction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from calico.config import Config
from calico.engine import Trainer, TrainSettings, dist, load_init
from calico.engine.trainer import Hook


class SupervisedStep(nn.Module):
    """The engine's step module for fine-tuning: ``model(batch)`` then ``model.loss(out, batch)``.

    The step generator is not used: fine-tuning has no stochastic augmentation yet (a future one must draw
    from ``generator`` to keep exact resume).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        return self.model.loss(self.model(batch), batch)


def finetune(cfg: Config, run_dir: str | Path, *, init: str | list[str] | None = None, resume: bool = False,
             evaluate: bool = True, dataset: Any = None, collate_fn: Any = None, model: nn.Module | None = None,
             hooks: list[Hook] | None = None, init_partial: bool = False) -> dict[str, Any]:
    """Fine-tune ``build_model(cfg.model, cfg.data)`` on ``cfg.finetune.fraction`` of the train split.

    The caller has seeded the RNGs and created ``run_dir`` (see ``calico.engine.runsetup.start_run``).
    ``init``: checkpoint path(s), loaded in order (later ones win per key). ``dataset``/``collate_fn``/
    ``model`` replace the defaults (tests). Returns the trainer's summary, with
    ``metrics`` when the evaluation ran.
    """
    from calico.engine.runsetup import decide_segmentation  # no map ground truth: segmentation off

    ft, cfg = cfg.finetune, decide_segmentation(cfg, dataset)
    if model is None:
        from calico.models import build_model

        model = build_model(cfg.model, cfg.data)
    if dataset is None:
        from calico.data.dataset import NuScenesDataset, collate

        dataset = NuScenesDataset(cfg, split=ft.train_split, fraction=ft.fraction, with_regions=False)
        collate_fn = collate_fn or collate
    run_dir = Path(run_dir)
    if init and not (resume and (run_dir / "last.pt").is_file()):  # a resumed run's weights come from last.pt
        for path in [init] if isinstance(init, str) else init:
            load_init(model, path, verbose=dist.is_main(), partial=init_partial)
    if dist.is_main():
        print(f"fine-tuning on {len(dataset)} samples (split {ft.train_split!r}, fraction {ft.fraction}), "
              f"modality {cfg.model.modality}")
    settings = TrainSettings.from_section(ft, num_workers=cfg.data.num_workers)
    trainer = Trainer(settings, run_dir, SupervisedStep(model), dataset, collate_fn, seed=cfg.seed,
                      extra_state=lambda: {"model": model.state_dict(), "kind": "finetune",
                                           "config": cfg.to_dict()},
                      hooks=hooks, resume=resume)
    summary = trainer.fit()
    if evaluate and dist.is_main():
        from calico.engine.runsetup import try_evaluation

        summary["metrics"] = try_evaluation(model, cfg, ft.val_split, run_dir / "eval")
    dist.barrier()
    return summary
