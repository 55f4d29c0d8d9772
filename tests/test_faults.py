"""Issue 18's fault list: every bad input and fault gets a clear one-line answer and loses nothing.

Each test reproduces one trial of the fault-injection run (it failed before the fix) and checks the answer.
"""

from __future__ import annotations

import json

import pytest

from calico.cli import main
from calico.config import get_config, validate_config


# ---------------------------------------------------------------------------------- config validation
@pytest.mark.parametrize("override, key", [
    ("data.sweeps=-1", "data.sweeps"), ("data.sweeps=50", "data.sweeps"),
    ("finetune.fraction=2", "finetune.fraction"), ("finetune.fraction=0", "finetune.fraction"),
    ("finetune.lr=-1", "finetune.lr"), ("finetune.batch_size=0", "finetune.batch_size"),
    ("pretrain.batch_size=0", "pretrain.batch_size"), ("finetune.schedule=bogus", "finetune.schedule"),
    ("pretrain.schedule=bogus", "pretrain.schedule"), ("model.modality=X", "model.modality"),
    ("model.voxel_size=(0.2, 0.2)", "model.voxel_size"), ("pretrain.sampling=random", "pretrain.sampling"),
    ("pretrain.features=neck", "pretrain.features"), ("finetune.pretrained_lr_mult=-0.1", "finetune.pretrained_lr_mult"),
    ("augment.flip_prob=1.5", "augment.flip_prob"), ("augment.scale_range=(1.1, 0.9)", "augment.scale_range"),
    ("augment.rot_range=-5", "augment.rot_range"), ("augment.paste_max=-1", "augment.paste_max"),
    ("augment.translate_std=-1", "augment.translate_std"), ("pooling.eps=0", "pooling.eps"),
    ("data.point_cloud_range=(1.0, -1.0, -5.0, -1.0, 1.0, 3.0)", "data.point_cloud_range"),
    ("seed=-1", "seed"),
])
def test_config_rejects_out_of_range(override, key):
    with pytest.raises(ValueError) as exc:
        get_config("cpu", [override])
    msg = str(exc.value)
    assert msg.startswith(key + "=") and "must be" in msg and "\n" not in msg


def test_config_presets_and_dumps_validate(tmp_path):
    from calico.config import SCHEDULES as CONFIG_SCHEDULES
    from calico.config import config_from_dict
    from calico.engine.optim import SCHEDULES

    assert CONFIG_SCHEDULES == SCHEDULES
    for name in ("paper", "cpu"):
        cfg = get_config(name)
        assert validate_config(cfg) is cfg
        d = cfg.to_dict()
        d["finetune"]["lr"] = 0.0
        with pytest.raises(ValueError, match=r"^finetune.lr=0.0 is invalid: must be a number > 0$"):
            config_from_dict(d)


def test_cli_config_errors_are_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    for override in ("finetune.fraction=2", "finetune.lr=-1", "finetune.batch_size=0", "model.modality=X",
                     "model.voxel_size=(0.2,0.2)", "finetune.schedule=bogus"):
        assert main(["finetune", "--config", "cpu", "--dataroot", str(tmp_path), "--out", str(out),
                     "--set", override]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("calico finetune: error: config: " + override.split("=")[0])
        assert len(err.splitlines()) == 1
    assert not out.exists()  # nothing created for a refused config
    assert main(["pool", "--dataroot", str(tmp_path), "--sweeps", "-1"]) == 1
    assert "--sweeps: data.sweeps=-1 is invalid: must be an integer >= 0 and <= 10" in capsys.readouterr().err
    assert main(["pool", "--dataroot", str(tmp_path), "--sweeps", "50"]) == 1
    assert "data.sweeps=50 is invalid" in capsys.readouterr().err
    assert main(["prepare", "--dataroot", str(tmp_path), "--max-sweeps", "-1"]) == 1
    assert "--max-sweeps -1 is invalid: must be an integer >= 0" in capsys.readouterr().err


def test_malformed_config_json_names_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json: not a readable config\.json"):
        get_config(str(bad))
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"bad\.json: not a config\.json"):
        get_config(str(bad))
    bad.write_text(json.dumps({"finetune": {"fraction": 3}}))
    with pytest.raises(ValueError, match=r"bad\.json: finetune\.fraction=3"):
        get_config(str(bad))
    assert main(["finetune", "--config", str(bad), "--dataroot", str(tmp_path), "--out", str(tmp_path / "r")]) == 1
    assert "bad.json" in capsys.readouterr().err
