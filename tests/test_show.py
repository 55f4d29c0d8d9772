"""calico show: one sample drawn (BEV, GT, predictions, regions, six cameras) on a tiny synthetic world and on the
real scene (skipped without ../shared); missing regions and bad samples give one-line errors."""

from __future__ import annotations

import pytest
import torch
from conftest import prepared_tiny_world
from PIL import Image

from calico.cli import main
from calico.config import get_config
from calico.engine.checkpoint import FORMAT
from calico.models import build_model


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return prepared_tiny_world(tmp_path_factory, "show_world", 2)


def _args(world, *extra: str) -> list[str]:
    data, cache = world
    return ["show", "--config", "cpu", "--dataroot", str(data), "--version", "v1.0-synth", "--cache-dir", str(cache),
            *extra]


def _picture(path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def test_show_draws_points_boxes_and_cameras(world, tmp_path, capsys):
    assert main(_args(world, "--sample", "1", "--out", str(tmp_path / "s.png"))) == 0
    out = capsys.readouterr().out
    assert "6 cameras" in out and "GT boxes" in out and "pred" not in out
    w, h = _picture(tmp_path / "s.png")
    assert w > 1000 and h > 500


def test_show_draws_a_checkpoints_predictions(world, tmp_path, capsys):
    cfg = get_config("cpu", ["model.modality=L"])
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.data)
    torch.save({"format": FORMAT, "model": model.state_dict(), "config": cfg.to_dict()}, tmp_path / "last.pt")
    data, cache = world
    args = ["show", "--dataroot", str(data), "--version", "v1.0-synth", "--cache-dir", str(cache), "--sample", "0",
            "--ckpt", str(tmp_path / "last.pt"), "--score", "0", "--out", str(tmp_path / "p.png")]
    assert main(args) == 0
    out = capsys.readouterr().out
    n = int(out.split(" pred")[0].rsplit(" ", 1)[1])
    assert 0 < n <= cfg.model.max_detections  # score 0: every decoded box is drawn
    assert main(args[:-4] + ["--score", "1.01", "--out", str(tmp_path / "p.png")]) == 0
    assert ", 0 pred" in capsys.readouterr().out


def test_show_regions_need_calico_pool(world, tmp_path, capsys):
    assert main(_args(world, "--sample", "0", "--regions", "--out", str(tmp_path / "r.png"))) == 1
    err = capsys.readouterr().err.strip()
    assert "calico pool" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r.png").exists()
    data, cache = world
    assert main(["pool", "--config", "cpu", "--dataroot", str(data), "--version", "v1.0-synth",
                 "--cache-dir", str(cache)]) == 0
    capsys.readouterr()
    assert main(_args(world, "--sample", "0", "--regions", "--out", str(tmp_path / "r.png"))) == 0
    out = capsys.readouterr().out
    assert int(out.split(" regions")[0].rsplit(" ", 1)[1]) > 0


def test_show_bad_sample_is_one_line(world, tmp_path, capsys):
    assert main(_args(world, "--sample", "nope", "--out", str(tmp_path / "x.png"))) == 1
    err = capsys.readouterr().err.strip()
    assert "--sample 'nope': not a sample token or index (0..3)" in err and len(err.splitlines()) == 1


def test_show_real_scene(real_cfg, tmp_path, capsys):
    token = "0"
    assert main(["show", "--config", "cpu", "--dataroot", real_cfg.data.dataroot, "--version", "v1.0-mini",
                 "--cache-dir", real_cfg.data.cache_dir, "--sample", token, "--out", str(tmp_path / "real.png")]) == 0
    out = capsys.readouterr().out
    assert "6 cameras" in out and int(out.split(" GT boxes")[0].rsplit(" ", 1)[1]) > 0
    assert _picture(tmp_path / "real.png")[0] > 1000
