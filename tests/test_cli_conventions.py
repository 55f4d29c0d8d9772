"""One CLI convention (issue 12): every command that reads a dataset takes ``--config``, ``--set``, ``--dataroot``,
``--version`` and ``--cache-dir`` from ``calico.utils.cliargs.add_data_arguments``, with the same dest, default,
nargs and help; ``--set`` takes several values per flag, is repeatable and accumulates in order. The test walks
every sub-command in ``calico.cli.COMMANDS``, so a new command or a hand-written flag that drifts fails here."""

from __future__ import annotations

import argparse
import importlib

import pytest

from calico.cli import COMMANDS
from calico.utils.cliargs import DATA_FLAGS, add_data_arguments, data_overrides

# Commands without (some of) the data flags: the shared flags they do take, and why not the others (a new command
# must take all five or be listed here with its reason).
NO_DATA_FLAGS = {
    "synth": ((), "writes a dataset (its --version names the tables it writes); reads none"),
    "convert": ((), "writes a dataset from another layout (its --version names the tables it writes); no config"),
    "demo": ((), "makes its own synthetic world and runs one fixed protocol (cpu preset, calico.apps.demo.SIZES); "
                 "the same pipeline with other data or settings is `calico study`"),
    "export": (("--config", "--set"), "rewrites a checkpoint's keys for another framework: a config, no dataset"),
}
# What the parser insists on besides the data flags, to parse a command line at all.
REQUIRED = {"robustness": ["--ckpt", "k", "--out", "o"], "evaluate": ["--ckpt", "k", "--split", "val", "--out", "o"],
            "show": ["--sample", "0"],
            "finetune": ["--out", "o"], "pretrain": ["--stage", "prc", "--out", "o"], "study": ["--grid", "table1"],
            "probe": ["--ckpt", "random"]}
# Compared between every command and the reference parser (help up to the command's own "default:" wording).
FIELDS = ("dest", "default", "nargs", "const", "type", "choices", "metavar")


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"calico {command}")
    importlib.import_module(COMMANDS[command][0]).add_arguments(parser)
    return parser


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {opt: a for a in parser._actions for opt in a.option_strings}


def _help_stem(action: argparse.Action) -> str:
    """The shared help, up to the command's own wording of what its default (None) means."""
    return (action.help or "").split(" (default: ")[0]


REFERENCE = argparse.ArgumentParser()
add_data_arguments(REFERENCE)
DATA_COMMANDS = sorted(set(COMMANDS) - set(NO_DATA_FLAGS))


def test_every_command_is_classified():
    assert set(NO_DATA_FLAGS) <= set(COMMANDS)
    assert {"prepare", "pool", "pretrain", "finetune", "evaluate", "probe", "robustness", "study",
            "show"} <= set(DATA_COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_data_flags_are_the_shared_ones(command):
    ref, got = _actions(REFERENCE), _actions(_parser(command))
    taken = NO_DATA_FLAGS[command][0] if command in NO_DATA_FLAGS else DATA_FLAGS
    missing = [flag for flag in taken if flag not in got]
    assert not missing, f"calico {command} lacks {missing}: use calico.utils.cliargs.add_data_arguments"
    for flag in taken:
        a, b = ref[flag], got[flag]
        for field in FIELDS:
            assert getattr(b, field) == getattr(a, field), f"calico {command} {flag}: {field} {getattr(b, field)!r} " \
                                                           f"!= {getattr(a, field)!r} (add_data_arguments')"
        assert type(b) is type(a), f"calico {command} {flag}: action {type(b).__name__} != {type(a).__name__}"
        assert b.option_strings == [flag], f"calico {command} {flag}: extra spellings {b.option_strings}"
        assert _help_stem(b) == _help_stem(a), f"calico {command} {flag}: help {b.help!r} is not the shared one"


@pytest.mark.parametrize("command", sorted(NO_DATA_FLAGS))
def test_commands_without_data_flags_take_only_the_listed_ones(command):
    """A writer's --version (the tables it writes) is its own; any other shared flag must be listed, and match."""
    got = _actions(_parser(command))
    assert {"--config", "--set", "--dataroot", "--cache-dir"} & set(got) <= set(NO_DATA_FLAGS[command][0])


@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_set_accumulates_across_flags(command):
    args = _parser(command).parse_args([*REQUIRED.get(command, []), "--dataroot", "d", "--set", "a.b=1", "c.d=2",
                                        "--set", "e.f=3"])
    assert args.set == ["a.b=1", "c.d=2", "e.f=3"]
    assert args.config is None and args.version is None and args.cache_dir is None


@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_data_flags_become_the_same_overrides(command):
    args = _parser(command).parse_args([*REQUIRED.get(command, []), "--dataroot", "/d", "--version", "v1.0-mini",
                                        "--cache-dir", "/c"])
    assert data_overrides(args) == ["data.dataroot=/d", "data.version=v1.0-mini", "data.cache_dir=/c"]


def test_a_drifting_flag_fails_the_check():
    """The comparison the test makes catches a command that writes one of the flags by hand."""
    drifted = argparse.ArgumentParser(conflict_handler="resolve")
    add_data_arguments(drifted)
    drifted.add_argument("--version", default="v1.0-trainval", help="table folder, e.g. v1.0-trainval")
    a, b = _actions(REFERENCE)["--version"], _actions(drifted)["--version"]
    assert [f for f in FIELDS if getattr(a, f) != getattr(b, f)] == ["default"]


def test_pool_and_prepare_resolve_the_flags_like_the_training_commands(tmp_path):
    """--set applies after the data flags in every command; --config absent = the paper preset."""
    from calico.pooling.cli import _config

    args = _parser("pool").parse_args(["--dataroot", str(tmp_path), "--cache-dir", str(tmp_path / "c"), "--set",
                                       "data.version=v1.0-mini"])
    cfg = _config(args)
    assert (cfg.data.dataroot, cfg.data.version, cfg.data.cache_dir) == (str(tmp_path), "v1.0-mini",
                                                                          str(tmp_path / "c"))
    assert cfg.model.bev_size == 180  # the paper preset


def test_prepare_reads_the_version_from_the_config_when_no_flag_gives_it(real_root, tmp_path, capsys):
    """Without --version the config's data.version is the one indexed and reported (here set with --set)."""
    from calico.cli import main

    assert main(["prepare", "--dataroot", str(real_root), "--set", "data.version=v1.0-mini", "--cache-dir",
                 str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "indexed 41 samples" in out and (tmp_path / "index.json").is_file()
