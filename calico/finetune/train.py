"""Supervised fine-tuning of the BEV model (detection / map segmentation) on a label fraction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from calico.config import Config
from calico.engine import Trainer, dist
from calico.engine.trainer import Hook
from calico.interop.convert import load_init_any  # calico, mmdetection3d or OpenPCDet checkpoints


class SupervisedStep(nn.Module):
    """The engine's step module for fine-tuning: ``model(batch)`` then ``model.loss(out, batch)``.

    The step generator is not used: fine-tuning's augmentation (``calico.data.augment``) runs in the dataset's
    ``transform``, drawing from a per-(seed, epoch, sample) generator, which keeps exact resume.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        return self.model.loss(self.model(batch), batch)


def pretrained_lr_mult(model: nn.Module, parts: set[str], mult: float) -> dict[int, float]:
    """``{id(param): mult}`` for the parameters of the named (pre-trained) ``parts``; empty when mult is 1."""
    if mult == 1.0 or not parts:
        return {}
    if dist.is_main():
        print(f"pre-trained parts {sorted(parts)} train at {mult} x the lr")
    return {id(p): mult for name in sorted(parts) for p in getattr(model, name).parameters()}


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
    if cfg.augment.enabled and getattr(dataset, "transform", False) is None:  # training set only, never evaluation
        from calico.data.augment import Augmenter, GTDatabase, paste_enabled

        paste_db = None
        if paste_enabled(cfg) and hasattr(dataset, "records"):  # the labeled fraction's objects only
            paste_db = GTDatabase.from_dataset(dataset)
        dataset.transform = Augmenter(cfg, cfg.seed, paste_db)
    run_dir = Path(run_dir)
    # The parts --init fills get their own lr. A resumed run loads --init too, to rebuild the same optimiser
    # groups; the trainer then overwrites every weight from last.pt.
    resumed = resume and (run_dir / "last.pt").is_file()
    loaded: set[str] = set()
    for path in ([init] if isinstance(init, str) else init) if init else []:
        report = load_init_any(model, path, verbose=dist.is_main() and not resumed, partial=init_partial)
        loaded |= {name for name, part in report.parts.items() if part.loaded > 0 and name != "(other)"}
    lr_mult = pretrained_lr_mult(model, loaded, ft.pretrained_lr_mult)
    if dist.is_main():
        from calico.data.splits import resolve_split

        named = resolve_split(cfg.data.dataroot, cfg.data.version, ft.train_split.partition(":")[0],
                              cfg.data.splits_file)
        shown = repr(ft.train_split) + ("" if named == ft.train_split.partition(":")[0] else f" = {named}")
        print(f"fine-tuning on {len(dataset)} samples (split {shown}, fraction {ft.fraction}), "
              f"modality {cfg.model.modality}")
    trainer = Trainer(ft, run_dir, SupervisedStep(model), dataset, collate_fn, seed=cfg.seed,
                      extra_state=lambda: {"model": model.state_dict(), "kind": "finetune",
                                           "config": cfg.to_dict()},
                      hooks=hooks, resume=resume, lr_mult=lr_mult, num_workers=cfg.data.num_workers)
    summary = trainer.fit()
    if evaluate and dist.is_main():
        from calico.eval.runner import try_evaluation

        summary["metrics"] = try_evaluation(model, cfg, ft.val_split, run_dir / "eval")
    dist.barrier()
    return summary
