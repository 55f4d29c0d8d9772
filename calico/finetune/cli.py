"""``calico finetune``: supervised training of detection / segmentation on a label fraction.

Single process: ``calico finetune --config cpu --dataroot D --fraction 0.1 --out runs/ft``.
Many GPUs: ``torchrun --nproc_per_node 4 --no-python calico finetune ...`` (same flags).
"""

from __future__ import annotations

import argparse

from calico.engine import dist
from calico.engine.runsetup import add_common_arguments, done_message, resolve_config, start_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--fraction", type=float, help="label fraction of the train split (0 < F <= 1)")
    parser.add_argument("--modality", choices=("L", "C", "L+C"), help="sensors the model uses")
    parser.add_argument("--eval", action=argparse.BooleanOptionalAction, default=True,
                        help="evaluate on finetune.val_split after training when it exists (default: on)")


def run(args: argparse.Namespace) -> int:
    from calico.errors import CalicoError
    from calico.finetune.train import finetune

    extra = []
    if args.fraction is not None:
        if not 0 < args.fraction <= 1:
            raise CalicoError(f"--fraction must be in (0, 1], got {args.fraction}")
        extra.append(f"finetune.fraction={args.fraction}")
    if args.modality:
        extra.append(f"model.modality={args.modality}")
    if args.device:
        extra.append(f"finetune.device={args.device}")
    if args.max_steps is not None:
        extra.append(f"finetune.max_steps={args.max_steps}")
    cfg = resolve_config(args, extra)
    run_dir, _ = start_run(args, cfg, cfg.finetune.device)
    try:
        summary = finetune(cfg, run_dir, init=args.init, resume=args.resume, evaluate=args.eval,
                           init_partial=args.init_partial)
    finally:
        dist.cleanup()
    if dist.is_main():
        print(done_message(summary, "finetune", args.out)
              or f"done: {summary['global_step']} steps, checkpoint {summary['checkpoint']}")
    return 0
