"""Fine-tuning through the engine with a stand-in model following the model contract; CLI errors."""

from __future__ import annotations

import pytest
import torch
from engine_toy import ContractModel, ToyData, ToyModel, collate

from calico.cli import main
from calico.config import get_config
from calico.engine.checkpoint import load_file
from calico.finetune.train import finetune
from calico.utils.runinfo import seed_everything


def _cfg(**over):
    cfg = get_config("cpu", ["finetune.epochs=2", "finetune.batch_size=4", "finetune.ckpt_every=3",
                             "finetune.lr=1e-3", "finetune.device=cpu", "finetune.weight_decay=0.2"])
    for k, v in over.items():
        setattr(cfg.finetune, k, v)
    return cfg


def _run(tmp_path, name, **kw):
    seed_everything(0)
    model = ContractModel()
    summary = finetune(_cfg(), tmp_path / name, dataset=ToyData(20), collate_fn=collate, model=model,
                       evaluate=False, **kw)
    return model, summary


def test_finetune_with_init_and_resume(tmp_path):
    pre = ToyModel()
    torch.nn.init.constant_(pre.lidar_backbone[0].weight, 0.5)
    torch.save({"parts": {"lidar_backbone": pre.lidar_backbone.state_dict()}}, tmp_path / "prc.pt")
    model, summary = _run(tmp_path, "a", init=str(tmp_path / "prc.pt"))
    assert summary["global_step"] == 10
    ckpt = load_file(tmp_path / "a" / "last.pt")
    assert ckpt["kind"] == "finetune" and set(ckpt["model"]) == set(model.state_dict())
    assert all(torch.equal(ckpt["model"][k], v) for k, v in model.state_dict().items())

    class Stop(Exception):
        pass

    def kill(event, trainer):
        if event == "step_start" and trainer.global_step == 7:
            raise Stop

    with pytest.raises(Stop):  # the kill must happen, else the comparison below would be trivial
        _run(tmp_path, "b", init=str(tmp_path / "prc.pt"), hooks=[kill])
    resumed, _ = _run(tmp_path, "b", init=str(tmp_path / "prc.pt"), resume=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_finetune_cli_errors(tmp_path, capsys):
    rc = main(["finetune", "--config", "cpu", "--out", str(tmp_path / "r"), "--fraction", "0.1"])
    assert rc == 1 and "--dataroot" in capsys.readouterr().err
    rc = main(["finetune", "--config", "cpu", "--dataroot", str(tmp_path), "--out", str(tmp_path / "r"),
               "--fraction", "1.5"])
    assert rc == 1 and "--fraction must be in (0, 1]" in capsys.readouterr().err
    rc = main(["finetune", "--config", "cpu", "--dataroot", str(tmp_path), "--out", str(tmp_path / "r"),
               "--set", "finetune.nope=1"])
    assert rc == 1 and "unknown config key" in capsys.readouterr().err


def test_pretrained_parts_get_their_lr_multiplier():
    from calico.config import get_config
    from calico.finetune.train import pretrained_lr_mult
    from calico.models import build_model

    cfg = get_config("cpu", ["model.modality=L"])
    model = build_model(cfg.model, cfg.data)
    mult = pretrained_lr_mult(model, {"lidar_backbone"}, 0.1)
    assert set(mult) == {id(p) for p in model.lidar_backbone.parameters()} and set(mult.values()) == {0.1}
    assert pretrained_lr_mult(model, {"lidar_backbone"}, 1.0) == {}
