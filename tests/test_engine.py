"""Engine: exact resume after a kill, NaN guard, schedules, atomic checkpoints, init loading."""

from __future__ import annotations

import json
import math

import pytest
import torch
from engine_toy import ToyData, ToyModel, ToyStep, collate

from calico.config import TrainConfig
from calico.engine import CheckpointError, NonFiniteLossError, Trainer, load_init
from calico.engine.checkpoint import load_file
from calico.engine.optim import build_optimizer, build_scheduler
from calico.utils.runinfo import seed_everything

SETTINGS = dict(epochs=3, batch_size=4, lr=1e-2, schedule="cyclic", ckpt_every=4, log_every=2,
                device="cpu", amp=False, weight_decay=0.1, grad_clip=1.0)


class Kill(Exception):
    pass


def kill_at(step: int):
    def hook(event: str, trainer: Trainer) -> None:
        if event == "step_start" and trainer.global_step == step:
            raise Kill(f"killed before step {step + 1}")
    return hook


def train(run_dir, *, hooks=None, resume=False, init_seed=0, seed=7, **over):
    seed_everything(init_seed)  # a resumed process starts from other weights and RNG state on purpose
    model = ToyModel()
    step = ToyStep(model, nan_at_call=over.pop("nan_at_call", -1))
    trainer = Trainer(TrainConfig(**{**SETTINGS, **over}), run_dir, step, ToyData(22), collate, seed=seed,
                      hooks=hooks, resume=resume, extra_state=lambda: {"model": model.state_dict()})
    trainer.fit()
    return model, trainer


def assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("kills", [[5], [8], [12], [5, 13, 17]])
def test_exact_resume_after_kill(tmp_path, kills):
    """22 samples / batch 4 = 6 steps per epoch, 18 in all; checkpoints every 4 steps and at epoch ends."""
    ref, ref_trainer = train(tmp_path / "ref")
    assert ref_trainer.global_step == 18
    run = tmp_path / "killed"
    for i, k in enumerate(kills):
        with pytest.raises(Kill):
            train(run, hooks=[kill_at(k)], resume=i > 0, init_seed=0 if i == 0 else 100 + i)
    resumed, trainer = train(run, resume=True, init_seed=999)
    assert trainer.global_step == 18
    assert_same(ref, resumed)
    # the comparison is sensitive: another seed for the step generators gives other weights
    other, _ = train(tmp_path / "other", seed=8)
    assert not all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), other.state_dict().values()))


def test_checkpoint_files_and_format(tmp_path):
    _, trainer = train(tmp_path, epochs=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert {"last.pt", "epoch_001.pt", "epoch_002.pt", "log.txt", "tb"} <= set(names)
    assert not [n for n in names if ".tmp" in n]
    ckpt = load_file(tmp_path / "last.pt")  # weights_only load works
    assert ckpt["global_step"] == 12 and ckpt["epoch"] == 2 and ckpt["step_in_epoch"] == 0
    assert set(ckpt["model"]) == set(ToyModel().state_dict())
    assert list((tmp_path / "tb").iterdir())
    assert "step 12" in (tmp_path / "log.txt").read_text()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(2, 13, 2)) and all("loss" in r and "lr" in r for r in records)
    from calico.apps.report import read_loss_curve

    steps, losses = read_loss_curve(tmp_path)
    assert list(steps) == list(range(2, 13, 2)) and losses[-1] == records[-1]["loss"]


def test_nan_guard_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError) as info:
        train(tmp_path, nan_at_call=7)
    msg = str(info.value)
    assert "step 7" in msg and "mse=nan" in msg and "loss=nan" in msg and "last.pt" in msg
    ckpt = load_file(tmp_path / "last.pt")
    assert ckpt["global_step"] == 6  # epoch end after step 6; step 7 never saved
    assert all(torch.isfinite(v).all() for v in ckpt["module"].values() if v.is_floating_point())


def test_max_steps_and_constant_schedule(tmp_path):
    _, trainer = train(tmp_path, max_steps=5, schedule="constant")
    assert trainer.global_step == 5
    assert load_file(tmp_path / "last.pt")["global_step"] == 5
    assert math.isfinite(trainer.last_logs["loss"])


def test_cyclic_schedule_matches_bevfusion_cyclic():
    p = torch.nn.Parameter(torch.zeros(2, 2))
    s = TrainConfig(lr=2e-4, schedule="cyclic")
    opt = build_optimizer([p], s)
    sched = build_scheduler(opt, s, total_steps=100)
    lrs, betas = [], []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        betas.append(opt.param_groups[0]["betas"][0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(2e-4)
    assert max(lrs) == pytest.approx(2e-3, rel=1e-3) and lrs.index(max(lrs)) in (39, 40)
    assert lrs[-1] == pytest.approx(2e-8, rel=0.05)
    assert betas[0] == pytest.approx(0.9) and min(betas) == pytest.approx(0.9 * 0.85 / 0.95, rel=1e-3)


def test_weight_decay_groups():
    model = ToyModel()
    opt = build_optimizer(model.parameters(), TrainConfig(weight_decay=0.2))
    decays = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert decays[id(model.det_head.weight)] == 0.2 and decays[id(model.det_head.bias)] == 0.0


@pytest.mark.parametrize("schedule", ["cyclic", "onecycle", "constant"])
def test_lr_multiplier_groups_follow_the_schedule_scaled(schedule):
    slow, fast = torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(2, 2))
    bias = torch.nn.Parameter(torch.zeros(2))
    s = TrainConfig(lr=1e-3, schedule=schedule, weight_decay=0.1)
    opt = build_optimizer([slow, fast, bias], s, lr_mult={id(slow): 0.1})
    groups = {id(p): g for g in opt.param_groups for p in g["params"]}
    assert groups[id(slow)]["weight_decay"] == 0.1 and groups[id(bias)]["weight_decay"] == 0.0
    assert groups[id(fast)]["lr_mult"] == 1.0 and groups[id(slow)]["lr_mult"] == 0.1
    sched = build_scheduler(opt, s, total_steps=50)
    for _ in range(50):
        assert groups[id(slow)]["lr"] == pytest.approx(0.1 * groups[id(fast)]["lr"], rel=1e-9)
        assert groups[id(bias)]["lr"] == groups[id(fast)]["lr"]
        opt.step()
        sched.step()


def test_load_init_parts_and_model(tmp_path, capsys):
    src = ToyModel()
    torch.save({"parts": {"lidar_backbone": src.lidar_backbone.state_dict(),
                          "projector": {"w": torch.zeros(3)}}}, tmp_path / "pre.pt")
    dst = ToyModel()
    report = load_init(dst, tmp_path / "pre.pt")
    assert torch.equal(dst.lidar_backbone[0].weight, src.lidar_backbone[0].weight)
    assert not torch.equal(dst.det_head.weight, src.det_head.weight)
    assert report.parts["det_head"].missing == ["bias", "weight"]
    assert report.parts["projector"].unexpected == ["w"]
    assert report.parts["lidar_backbone"].loaded == report.parts["lidar_backbone"].total
    out = capsys.readouterr().out
    assert "det_head: loaded 0/2" in out and "unexpected (1): w" in out
    # a fine-tune checkpoint ({"model": full state dict}) loads every part
    torch.save({"model": src.state_dict()}, tmp_path / "ft.pt")
    dst2 = ToyModel()
    load_init(dst2, tmp_path / "ft.pt", verbose=False)
    assert_same(src, dst2)


def test_load_init_refuses_shape_mismatch(tmp_path):
    torch.save({"parts": {"lidar_backbone": ToyModel(hidden=16).lidar_backbone.state_dict()}}, tmp_path / "p.pt")
    dst = ToyModel()
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_init(dst, tmp_path / "p.pt")
    assert "lidar_backbone.0.weight: checkpoint (16, 4) vs model (8, 4)" in str(info.value)
    assert all(torch.equal(before[k], v) for k, v in dst.state_dict().items())  # nothing half-loaded


def test_load_init_bad_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_init(ToyModel(), tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_init(ToyModel(), tmp_path / "junk.pt")
    torch.save({"foo": 1}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="neither"):
        load_init(ToyModel(), tmp_path / "odd.pt")
