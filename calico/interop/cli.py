"""``calico export``: a calico checkpoint's LiDAR branch (and, for mmdetection3d's BEVFusion, its camera branch)
as an mmdetection3d or OpenPCDet checkpoint, with a report of what mapped and what has no counterpart.

``calico export --ckpt runs/prc/last.pt --format openpcdet --out prc_openpcdet.pth``; the file loads back with
``calico finetune --init prc_openpcdet.pth``.
"""

from __future__ import annotations

import argparse

from calico.interop.keymaps import FORMATS
from calico.utils.cliargs import DEFAULT_CONFIG, add_config_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="a calico checkpoint (pre-training or fine-tuning last.pt)")
    parser.add_argument("--format", required=True, choices=FORMATS, help="the framework to write for")
    parser.add_argument("--out", required=True, help="the .pth file to write")
    # no dataset: --config / --set only (calico.utils.cliargs.add_config_arguments)
    add_config_arguments(parser, config_default="the one the checkpoint holds; with only --set, paper")


def run(args: argparse.Namespace) -> int:
    from calico.config import get_config
    from calico.errors import CalicoError
    from calico.interop.convert import export_checkpoint

    cfg = None
    if args.config or args.set:
        try:
            cfg = get_config(args.config or DEFAULT_CONFIG, args.set)
        except ValueError as exc:
            raise CalicoError(str(exc)) from exc
    print(export_checkpoint(args.ckpt, args.format, args.out, cfg))
    return 0
