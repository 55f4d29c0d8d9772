"""Command-line conventions every ``calico`` command shares."""

from __future__ import annotations

import argparse


def add_set_argument(parser: argparse.ArgumentParser, dest: str = "set", help_text: str = "config overrides") -> None:
    """``--set section.key=value [...]``: several values per flag, repeatable, accumulating in order."""
    parser.add_argument("--set", dest=dest, nargs="+", action="extend", default=[], metavar="SECTION.KEY=VALUE",
                        help=f"{help_text}, e.g. finetune.weight_decay=0.2 (several per --set; repeatable)")
