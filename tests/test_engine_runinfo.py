"""Run folders: config.json reloads, run.json records git/seed/argv/versions, refuses to mix runs."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from calico.config import get_config
from calico.errors import CalicoError
from calico.utils.runinfo import git_info, make_run_dir, seed_everything


def test_make_run_dir_roundtrip(tmp_path):
    cfg = get_config("cpu", ["finetune.weight_decay=0.2", "seed=3"])
    run = make_run_dir(tmp_path / "run", cfg, ["calico", "finetune", "--x"])
    again = get_config(str(run / "config.json"))
    assert again.to_dict() == cfg.to_dict()
    info = json.loads((run / "run.json").read_text())
    assert info["seed"] == 3 and info["argv"] == ["calico", "finetune", "--x"]
    assert info["torch"] == torch.__version__ and info["python"].count(".") == 2
    assert len(info["git"]["commit"]) == 40 or info["git"]["commit"] == "unknown"
    make_run_dir(run, cfg, ["calico", "finetune", "--x"])  # no checkpoint yet: a failed start is reusable
    (run / "last.pt").write_bytes(b"x")
    with pytest.raises(CalicoError, match="already holds a run"):
        make_run_dir(run, cfg, [])
    make_run_dir(run, cfg, ["calico", "finetune", "--resume"], resume=True)
    info = json.loads((run / "run.json").read_text())
    assert info["history"][0]["event"] == "resume" and info["argv"] == ["calico", "finetune", "--x"]
    with pytest.raises(CalicoError, match="cannot resume"):
        make_run_dir(tmp_path / "nothing", cfg, [], resume=True)


def test_git_info_outside_checkout(tmp_path):
    assert git_info(tmp_path) == {"commit": "unknown", "dirty": None}


def test_seed_everything_repeats():
    seed_everything(5)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(5)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())
