"""The ``calico`` command: thin dispatch to one module per sub-command.

Each sub-command module defines ``add_arguments(parser)`` and ``run(args) -> int | None``; modules are
imported only when their command runs, so ``calico --help`` stays fast and a broken optional part
cannot take the whole CLI down.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from calico.errors import CalicoError

COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("calico.data.synth.cli", "generate a synthetic nuScenes-format world"),
    "convert": ("calico.data.convert.cli", "import another dataset's layout (PandaSet) as nuScenes format"),
    "prepare": ("calico.data.prepare", "index a nuScenes-format dataset for training"),
    "pool": ("calico.pooling.cli", "semantic pooling: cache, evaluate or plot unsupervised regions"),
    "pretrain": ("calico.pretrain.cli", "self-supervised pre-training (PRC, RAD, baselines)"),
    "finetune": ("calico.finetune.cli", "supervised fine-tuning on a label fraction"),
    "evaluate": ("calico.eval.cli", "nuScenes detection metrics and BEV segmentation IoU"),
    "demo": ("calico.apps.demo", "the whole pipeline on the synthetic world, with a report"),
    "study": ("calico.apps.study", "the paper's grids (methods x fractions x seeds), aggregated"),
    "probe": ("calico.eval.probe", "linear probe on frozen BEV features of a checkpoint"),
    "robustness": ("calico.robustness.cli", "corruptions, spoofing, sensor dropout, calibration errors"),
    "show": ("calico.apps.show", "draw one sample: BEV points, GT / predicted boxes, pooled regions, six cameras"),
    "export": ("calico.interop.cli", "write a checkpoint's LiDAR / camera branch for mmdetection3d or OpenPCDet"),
}


def _clean(message: str) -> str:
    """Errors re-raised from a DataLoader worker carry the worker's traceback text: keep the message."""
    if "Original Traceback" in message:
        last = message.strip().splitlines()[-1]
        return last.split("Error: ", 1)[-1]
    return message


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="calico", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown command {argv[0]!r}")
        parser.print_help()
        return 0 if argv else 2
    name = argv[0]
    module_name, help_text = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"calico {name}: not available in this version ({module_name} is missing)", file=sys.stderr)
            return 2
        raise
    cmd_parser = argparse.ArgumentParser(prog=f"calico {name}", description=help_text)
    module.add_arguments(cmd_parser)
    args = cmd_parser.parse_args(argv[1:])

    try:
        rc = module.run(args)
    except CalicoError as exc:  # DataError is one
        print(f"calico {name}: error: {_clean(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"calico {name}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
