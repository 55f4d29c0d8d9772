"""One `--set` convention for every command: several values per flag, repeatable, accumulating in order."""

from __future__ import annotations

import argparse
import importlib

import pytest

from calico.cli import COMMANDS

REQUIRED = {  # the fewest other arguments each command's parser insists on
    "pool": ["--dataroot", "d"], "robustness": ["--ckpt", "k", "--out", "o"], "evaluate": ["--ckpt", "k", "--dataroot", "d", "--split", "val", "--out", "o"],
    "finetune": ["--out", "o"], "pretrain": ["--stage", "prc", "--out", "o"], "study": ["--grid", "table1"],
    "probe": ["--ckpt", "random"],
}


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_set_accumulates_across_flags(command):
    parser = argparse.ArgumentParser()
    importlib.import_module(COMMANDS[command][0]).add_arguments(parser)
    args = parser.parse_args([*REQUIRED[command], "--set", "a.b=1", "c.d=2", "--set", "e.f=3"])
    dest = "overrides" if command == "evaluate" else "set"
    assert getattr(args, dest) == ["a.b=1", "c.d=2", "e.f=3"]
