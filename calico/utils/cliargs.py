"""Command-line conventions every ``calico`` command shares.

Every command that reads a dataset takes the same five flags from ``add_data_arguments`` (same dest, default,
nargs and help; ``tests/test_cli_conventions.py`` walks every sub-command's parser and fails on a drift);
``calico export``, which reads a config but no dataset, takes ``--config`` / ``--set`` from ``add_config_arguments``:

``--config``     preset (paper, cpu) or a config.json; default None = the command's own (``DEFAULT_CONFIG``, a
                 checkpoint's saved config for evaluate / robustness, ``cpu`` for study), said in its help
``--set``        ``section.key=value`` overrides: several per flag, repeatable, accumulating in order
``--dataroot``   the dataset folder (``data.dataroot``); required where the command cannot work without one
``--version``    the table folder (``data.version``); default: the config's
``--cache-dir``  where derived files go (``data.cache_dir``); default: the config's, else ``calico.data.paths``

The three data flags become overrides (``data_overrides``) applied *before* ``--set``, so ``--set data.version=X``
wins over ``--version``, in every command alike.
"""

from __future__ import annotations

import argparse

DEFAULT_CONFIG = "paper"  # the preset a command uses when --config is not given and nothing else supplies one
DATA_FLAGS = ("--config", "--set", "--dataroot", "--version", "--cache-dir")


def add_set_argument(parser: argparse.ArgumentParser, dest: str = "set", help_text: str = "config overrides") -> None:
    """``--set section.key=value [...]``: several values per flag, repeatable, accumulating in order."""
    parser.add_argument("--set", dest=dest, nargs="+", action="extend", default=[], metavar="SECTION.KEY=VALUE",
                        help=f"{help_text}, e.g. finetune.weight_decay=0.2 (several per --set; repeatable)")


def add_config_arguments(parser: argparse.ArgumentParser, *, config_default: str = DEFAULT_CONFIG) -> None:
    """``--config`` and ``--set`` alone, for a command that reads a config but no dataset (``calico export``)."""
    parser.add_argument("--config", default=None, metavar="PRESET|CONFIG.JSON",
                        help=f"preset (paper, cpu) or a config.json path (default: {config_default})")
    add_set_argument(parser)


def add_data_arguments(parser: argparse.ArgumentParser, *, dataroot_required: bool = False,
                       config_default: str = DEFAULT_CONFIG,
                       dataroot_default: str = "the config's data.dataroot") -> None:
    """``--config``, ``--set``, ``--dataroot``, ``--version``, ``--cache-dir``: the same flags, defaults (None:
    resolved by the command) and help everywhere. ``config_default`` / ``dataroot_default`` only word what None
    means for this command in its help; ``dataroot_required`` for commands that cannot run without a dataset."""
    add_config_arguments(parser, config_default=config_default)
    parser.add_argument("--dataroot", required=dataroot_required, default=None,
                        help="nuScenes-format dataset folder (data.dataroot)"
                             + ("" if dataroot_required else f" (default: {dataroot_default})"))
    parser.add_argument("--version", default=None,
                        help="table folder, e.g. v1.0-trainval or v1.0-mini (data.version; default: the config's)")
    parser.add_argument("--cache-dir", default=None,
                        help="where derived files go: index, map masks, pooled regions (data.cache_dir; default: the "
                             "config's, else <dataroot>/.calico/<version> or a per-user cache, see calico.data.paths)")


def data_overrides(args: argparse.Namespace) -> list[str]:
    """``--dataroot`` / ``--version`` / ``--cache-dir`` (those given) as ``data.*`` overrides, to apply before
    ``--set``."""
    return [f"data.{key}={getattr(args, key)}" for key in ("dataroot", "version", "cache_dir")
            if getattr(args, key, None)]
