"""What ``calico finetune`` and ``calico pretrain`` share: config resolution, run folder, seeding under DDP."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from calico.config import Config, get_config
from calico.engine import dist
from calico.errors import CalicoError
from calico.utils.cliargs import DEFAULT_CONFIG, add_data_arguments, data_overrides
from calico.utils.runinfo import make_run_dir, seed_everything


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--out", required=True, help="run folder (config.json, run.json, checkpoints, tb/, log.txt)")
    parser.add_argument("--init", nargs="+", action="extend", metavar="CKPT",
                        help="checkpoint(s) to initialise named model parts from (later files win)")
    parser.add_argument("--init-partial", action="store_true",
                        help="accept an --init checkpoint of which nothing (or no tensor of a part) matches")
    parser.add_argument("--seed", type=int, help="overrides the config's seed")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: the config's (auto)")
    parser.add_argument("--max-steps", type=int, help="stop after N optimiser steps (smoke runs)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from last.pt with its saved config.json")


def resolve_config(args: argparse.Namespace, extra: list[str] | None = None) -> Config:
    """The run's config: ``--config`` + ``extra`` + --dataroot/--version/--cache-dir/--seed + ``--set``, or on
    ``--resume`` the run's own ``config.json`` (so a resumed run cannot silently change its settings)."""
    saved = Path(args.out) / "config.json"
    if args.resume and not saved.is_file() and (any(Path(args.out).glob("*.pt"))
                                                or (Path(args.out) / "run.json").is_file()):
        raise CalicoError(f"{saved}: missing, cannot resume the run in {args.out} without its config (restore "
                          "config.json, or start a new run with another --out)")
    if args.resume and saved.is_file():
        if args.set or extra:
            print(f"resume: using {saved}; ignoring --set/--fraction/--modality style overrides", file=sys.stderr)
        try:
            cfg = get_config(str(saved))
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            raise CalicoError(f"{saved}: cannot load the run's config: {exc}") from exc
        return cfg
    overrides = list(extra or []) + data_overrides(args)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    try:
        cfg = get_config(args.config or DEFAULT_CONFIG, overrides + list(args.set))
    except (ValueError, KeyError) as exc:
        raise CalicoError(f"config: {exc}") from exc
    if not cfg.data.dataroot:
        raise CalicoError("no dataset: pass --dataroot (or set data.dataroot)")
    return cfg


def start_run(args: argparse.Namespace, cfg: Config, device: str = "auto") -> tuple[Path, torch.device]:
    """Join the process group (torchrun), create/annotate the run folder on rank 0, seed every RNG.

    Seeding happens before the model is built, so every rank (and a re-run) builds the same weights.
    """
    dev = dist.init_distributed(args.device or device)
    run = Path(args.out)
    if dist.is_main():
        fresh = not (args.resume and (run / "config.json").is_file())
        make_run_dir(run, cfg, sys.argv, resume=not fresh)
    dist.barrier()
    seed_everything(cfg.seed)
    return run, dev


def decide_segmentation(cfg: Config, dataset=None) -> Config:
    """Map segmentation needs map ground truth (the map expansion): without it, turn ``model.with_seg`` off
    with a one-line note (refuse when detection is off too). ``dataset``: its records are checked (else the
    index of ``cfg.data``). Call before the model is built."""
    if not cfg.model.with_seg:
        return cfg
    if dataset is not None:
        records = getattr(dataset, "records", None)
        if records is None:  # a custom dataset (tests): the caller knows what it holds
            return cfg
        has_maps = any(r.get("map_mask") for r in records)
    else:
        from calico.data.prepare import load_index

        index = load_index(cfg.data)
        has_maps = bool(index.get("map_masks")) or any(r.get("map_mask") for r in index["records"])
    if has_maps:
        return cfg
    if not cfg.model.with_det:
        raise CalicoError(f"{cfg.data.dataroot}: no map ground truth (the map expansion is not installed) and "
                          "model.with_det=false: nothing to train")
    cfg.model.with_seg = False
    if dist.is_main():
        print(f"note: {cfg.data.dataroot} has no map ground truth (nuScenes map expansion): map segmentation "
              "is off for this run (model.with_seg=false)", file=sys.stderr)
    return cfg


def done_message(summary: dict, section: str, out: str | Path) -> str | None:
    """The final line when the run trained nothing (None otherwise): complete already, or zero steps."""
    if summary.get("already_complete"):
        return (f"done: the run in {out} was already complete ({summary['global_step']} steps); "
                f"checkpoint {summary['checkpoint']}")
    if summary.get("checkpoint") is None:
        return (f"done: nothing to train ({section}.epochs or --max-steps gives 0 steps); "
                "no checkpoint written")
    return None
