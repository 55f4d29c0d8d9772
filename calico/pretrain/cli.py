"""``calico pretrain``: self-supervised pre-training (PRC, RAD, baselines) with the shared engine.

Checkpoints store ``{"parts": method.backbone_state_dict(), ...}`` so that ``calico finetune --init`` loads
the pre-trained LiDAR / camera parts. RAD (and the other distillation stages) need ``--init`` with a PRC
checkpoint: its LiDAR backbone becomes the frozen teacher.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from calico.engine import dist
from calico.engine.runsetup import add_common_arguments, done_message, resolve_config, start_run
from calico.utils.cliargs import DEFAULT_CONFIG


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", required=True, help="prc, rad or a baseline (see calico.pretrain.methods)")
    add_common_arguments(parser)
    parser.add_argument("--split", default="train",
                        help="samples to pre-train on: a split name, or 'all' (default: train)")


def check_regions(dataset, stage: str, config: str) -> None:
    """Before step 1: every region file of ``dataset`` pooled with the run's settings is present, readable
    and holds one id per loader point; else one line naming the (first) bad file and what to run."""
    from calico.data.regions import cache_settings, check_dataset, other_settings
    from calico.errors import CalicoError

    cfg = dataset.cfg
    pool = (f"`calico pool --config {config} --dataroot {cfg.data.dataroot} --version {cfg.data.version}"
            + (f" --cache-dir {cfg.data.cache_dir}" if cfg.data.cache_dir else "") + "` (with this run's --set)")
    folder, bad = check_dataset(dataset, num_workers=cfg.data.num_workers)
    if not folder.is_dir():
        other = other_settings(dataset.cache, cache_settings(cfg))
        raise CalicoError(f"stage {stage!r} needs semantic-pooling regions but none are cached for these settings "
                          f"in {folder}" + (f"; {other}" if other else "") + f"; or run {pool} first")
    if bad:
        path, why = bad[0]
        more = f" ({len(bad)} of {len(dataset)} region files bad)" if len(bad) > 1 else ""
        raise CalicoError(f"{path}: region file {why}{more}; run {pool}: it recomputes bad files")


def run(args: argparse.Namespace) -> int:
    from calico.data.dataset import NuScenesDataset, collate
    from calico.engine import Trainer, load_init
    from calico.errors import CalicoError
    from calico.models import build_model
    from calico.pretrain.methods import build_method, stage_class

    stage = args.stage.lower()
    extra = [f"pretrain.stage={stage}"]
    if args.device:
        extra.append(f"pretrain.device={args.device}")
    if args.max_steps is not None:
        extra.append(f"pretrain.max_steps={args.max_steps}")
    cfg = resolve_config(args, extra)
    if cfg.pretrain.stage != stage:
        raise CalicoError(f"--stage {stage} but the run in {args.out} was a {cfg.pretrain.stage!r} run")
    resuming = args.resume and (Path(args.out) / "last.pt").is_file()
    try:
        facts = stage_class(stage)
    except ValueError as exc:
        raise CalicoError(str(exc)) from exc
    if facts.teacher and not args.init and not resuming:
        raise CalicoError(f"stage {stage!r} distils from a pre-trained LiDAR backbone: pass --init with "
                          "the PRC checkpoint (e.g. runs/prc/last.pt)")
    # check the data before creating the run folder, so a failed start leaves nothing behind
    # LiDAR-only stages never look at the images: skip decoding them
    dataset = NuScenesDataset(cfg, split=None if args.split == "all" else args.split,
                              load_images=cfg.data.load_images and facts.needs_images)
    if facts.needs_regions:
        check_regions(dataset, stage, args.config or DEFAULT_CONFIG)
    run_dir, _ = start_run(args, cfg)
    try:
        model = build_model(cfg.model, cfg.data)
        for path in (args.init or []) if not resuming else []:
            # the teacher is the LiDAR map the stage reads: after the decoder when pretrain.features="decoder"
            teacher = ["lidar_backbone", "lidar_decoder"] if cfg.pretrain.features == "decoder" else ["lidar_backbone"]
            parts = teacher if facts.teacher else None
            load_init(model, path, parts=parts, verbose=dist.is_main(), partial=args.init_partial)
        try:
            method = build_method(stage, model, cfg)
        except ValueError as exc:
            raise CalicoError(str(exc)) from exc
        trainer = Trainer(cfg.pretrain, run_dir, method, dataset, collate, seed=cfg.seed,
                          params=list(method.trainable_parameters()), resume=args.resume,
                          num_workers=cfg.data.num_workers,
                          extra_state=lambda: {"parts": method.backbone_state_dict(), "stage": stage,
                                               "config": cfg.to_dict()})
        summary = trainer.fit()
    finally:
        dist.cleanup()
    if dist.is_main():
        print(done_message(summary, "pretrain", args.out)
              or f"done: {summary['global_step']} steps; `calico finetune --init {summary['checkpoint']}` "
              "loads its pre-trained parts")
    return 0

