"""``calico evaluate``: load a fine-tuned checkpoint, run it over a split, write nuScenes metrics and BEV IoU."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from calico.config import Config, apply_overrides, config_from_dict, get_config, validate_config
from calico.data.splits import has_annotations
from calico.errors import CalicoError
from calico.utils.cliargs import add_data_arguments, data_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="fine-tuning checkpoint ({'model': state_dict, ...})")
    add_data_arguments(parser, dataroot_required=True, config_default="the checkpoint's 'config', else the "
                       "run's config.json next to the checkpoint")
    parser.add_argument("--split", required=True, help="a name in the splits file (data.splits_file, default <version>/splits.json), else train / val (the version's: mini_val on v1.0-mini, "
                             "test on v1.0-test) or an official name (mini_val, ...)")
    parser.add_argument("--out", required=True, help="output folder for results_nusc.json and the metrics")
    parser.add_argument("--max-samples", type=int, default=None, help="evaluate only the first N samples")
    parser.add_argument("--batch-size", type=int, default=None, help="default: finetune.batch_size")
    parser.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    parser.add_argument("--plots", action="store_true", help="also render the devkit's PR/TP curves (slow)")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint dict with a clear error when it is missing, unreadable or has no model weights."""
    path = Path(path)
    if not path.is_file():
        raise CalicoError(f"{path}: checkpoint not found")
    try:
        # weights_only: a checkpoint is data; never execute pickled code from a file we were handed
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip/pickle/EOF errors come in many types; all mean "not a usable checkpoint"
        raise CalicoError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        keys = sorted(ckpt)[:10] if isinstance(ckpt, dict) else type(ckpt).__name__
        hint = " (a pre-training checkpoint: fine-tune it first)" if isinstance(ckpt, dict) and "parts" in ckpt else ""
        raise CalicoError(f"{path}: not a fine-tuning checkpoint: no 'model' state_dict; found {keys}{hint}")
    return ckpt


def checkpoint_config(ckpt: dict[str, Any], path: str | Path) -> Config:
    """The run's config: ``ckpt["config"]`` if stored, else ``config.json`` beside the checkpoint or one level up."""
    if isinstance(ckpt.get("config"), dict):
        try:
            return config_from_dict(ckpt["config"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CalicoError(f"{path}: the checkpoint's config is not usable ({exc})") from exc
    path = Path(path)
    for candidate in (path.parent / "config.json", path.parent.parent / "config.json"):
        if candidate.is_file():
            try:
                return config_from_dict(json.loads(candidate.read_text()))
            except (ValueError, KeyError) as exc:
                raise CalicoError(f"{candidate}: cannot read the run's config ({exc})") from exc
    raise CalicoError(f"{path}: no 'config' in the checkpoint and no config.json beside it; pass --config")


def build_from_checkpoint(ckpt: dict[str, Any], cfg: Config, path: str | Path) -> torch.nn.Module:
    """``build_model(cfg.model, cfg.data)`` loaded strictly with the checkpoint's weights."""
    from calico.models import build_model

    model = build_model(cfg.model, cfg.data)
    state = {k.removeprefix("module."): v for k, v in ckpt["model"].items()}  # DDP-wrapped saves
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = [f"{len(v)} {label} (first: {', '.join(v[:3])})" for label, v in
                 (("shape mismatches", shapes), ("missing", missing), ("unexpected", unexpected)) if v]
        raise CalicoError(f"{path}: weights do not match the model built from the config (trained with another "
                          f"config? pass that run's --config): {'; '.join(parts)}")
    model.load_state_dict(state, strict=True)
    return model


def load_finetuned(ckpt_path: str | Path, dataroot: str, config: str | None = None, overrides: list[str] | None = None,
                   version: str | None = None, device: str | None = None) -> tuple[Config, torch.nn.Module]:
    """Config and model of a fine-tuning checkpoint, ready to evaluate (also used by ``calico robustness``).

    The config is ``config`` (preset or config.json) when given, else the checkpoint's own; ``dataroot`` /
    ``version`` / ``overrides`` are applied on top; the weights are loaded strictly."""
    ckpt = load_checkpoint(ckpt_path)
    if config:
        try:
            cfg = get_config(config)
        except (ValueError, KeyError) as exc:
            raise CalicoError(str(exc)) from exc
    else:
        cfg = checkpoint_config(ckpt, ckpt_path)
    cfg.data.dataroot = dataroot
    if version:
        cfg.data.version = version
    try:
        validate_config(apply_overrides(cfg, list(overrides or [])))
    except (KeyError, ValueError) as exc:
        raise CalicoError(f"--set: {exc}") from exc
    model = build_from_checkpoint(ckpt, cfg, ckpt_path)
    model.to(torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")))
    return cfg, model.eval()


def run(args: argparse.Namespace) -> int:
    from calico.eval.runner import run_evaluation
    from calico.utils.runinfo import writable_dir

    if args.max_samples is not None and args.max_samples < 1:
        raise CalicoError(f"--max-samples {args.max_samples}: must be >= 1 (omit it to evaluate every sample)")
    writable_dir(args.out)

    cfg, model = load_finetuned(args.ckpt, args.dataroot, args.config, data_overrides(args) + args.set, args.version,
                                args.device)
    metrics = run_evaluation(model, cfg, args.split, args.out, max_samples=args.max_samples,
                             batch_size=args.batch_size, plots=args.plots)
    if not has_annotations(cfg.data.version):  # v1.0-test: a submission, no metrics
        print(f"wrote {Path(args.out) / 'results_nusc.json'} ({cfg.data.version} has no annotations to score)")
        return 0
    print(f"wrote {Path(args.out) / 'metrics_summary.json'} ({', '.join(f'{k} {v:.4f}' for k, v in metrics.items() if k in ('NDS', 'mAP', 'mIoU'))})")
    return 0
