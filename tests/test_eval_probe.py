"""`calico probe` on a tiny synthetic world: cell labels, end-to-end probe, a perfect-feature probe, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import prepared_tiny_world

from calico.cli import main as calico_main
from calico.config import CLASSES, get_config
from calico.eval.probe import GROUPS, cell_labels, run_probe


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """2 scenes (train 1, val 1) x 3 keyframes, 1 sweep, tiny images; prepared into its own cache."""
    return prepared_tiny_world(tmp_path_factory, "probe_world", 3)


def _cfg(world):
    data, cache = world
    return get_config("cpu", [f"data.dataroot={data}", "data.version=v1.0-synth", f"data.cache_dir={cache}",
                              "data.sweeps=1"])


def test_cell_labels_hand_made():
    cfg = get_config("cpu")  # range +-48 m, 96 cells: cell (i, j) = [j - 48, j - 47) x [i - 48, i - 47)
    boxes = np.array([[10.5, 20.5, 0.0, 2.0, 4.0, 2.0, 0.0, 0, 0],      # car
                      [0.5, -10.5, 0.0, 0.8, 0.8, 2.0, 0.0, 0, 0],      # pedestrian
                      [-20.5, 30.5, 0.0, 3.0, 8.0, 3.0, np.pi / 2, 0, 0]], np.float32)  # truck
    labels = np.array([CLASSES.index("car"), CLASSES.index("pedestrian"), CLASSES.index("truck")])
    pts = np.array([[10.5, 20.5, 0.0], [10.5, 20.9, 0.5],                # car, one cell
                    [10.2, 20.1, -2.0], [10.9, 20.8, 3.0],              # same cell, outside the box in z
                    [0.5, -10.5, 0.3],                                  # pedestrian
                    [-20.5, 33.5, 0.0],                                 # truck (yaw 90: length along +y)
                    [-23.5, 30.5, 0.0],                                 # beside the truck: background
                    [-30.5, 5.5, 0.0], [-30.6, 5.4, 0.1],               # background, one cell
                    [60.0, 0.0, 0.0], [0.0, 0.0, 9.0]], np.float32)     # outside the range: ignored
    rows, cols, group = cell_labels(pts, boxes, labels, cfg)
    got = {(int(r), int(c)): int(g) for r, c, g in zip(rows, cols, group)}
    assert got == {(68, 58): 1, (37, 48): 2, (81, 27): 3, (78, 24): 0, (53, 17): 0}
    assert GROUPS[got[(68, 58)]] == "car"
    # the raster convention of calico.models.bev: row along +y, column along +x, centre at +0.5 cell
    from calico.models.bev import bev_cell_centers

    c = bev_cell_centers(cfg.model.bev_size, -48.0, 48.0)
    assert abs(float(c[58]) - 10.5) < 1e-5 and abs(float(c[68]) - 20.5) < 1e-5
    # no boxes: every occupied cell is background; no points: no cells
    _, _, g = cell_labels(pts, np.zeros((0, 9), np.float32), np.zeros(0, np.int64), cfg)
    assert len(g) == 5 and (g == 0).all()
    assert len(cell_labels(np.zeros((0, 5), np.float32), boxes, labels, cfg)[0]) == 0


def test_probe_random_init_end_to_end(world):
    cfg = _cfg(world)
    res = run_probe(cfg, [None], train_frames=3, features="lidar", seed=0, device="cpu")
    r = res["random"]
    assert 0.0 <= r["balanced_accuracy"] <= 1.0
    assert r["train_frames"] == 3 and r["val_frames"] == 3 and r["train_cells"] > 100 and r["val_cells"] > 100
    assert set(r["recall"]) == set(GROUPS)


def test_probe_perfect_features_score_one(world, monkeypatch):
    """Features that one-hot encode each cell's label (plus noise) must be read back almost perfectly."""
    from calico.models.model import BEVModel

    cfg = _cfg(world)

    def oracle(self, batch, decoded=False):
        S = cfg.model.bev_size
        pts = batch["points"]
        out = torch.randn(len(batch["tokens"]), 64, S, S) * 0.1
        for b in range(len(batch["tokens"])):
            p = pts[pts[:, 0] == b][:, 1:].numpy()
            rows, cols, g = cell_labels(p, batch["gt_boxes"][b].numpy(), batch["gt_labels"][b].numpy(), cfg)
            out[b, torch.from_numpy(g), torch.from_numpy(rows), torch.from_numpy(cols)] += 3.0
        return {"lidar_bev": out, "camera_bev": None}

    monkeypatch.setattr(BEVModel, "extract", oracle)
    r = run_probe(cfg, [None], train_frames=3, seed=0, device="cpu")["random"]
    assert r["balanced_accuracy"] > 0.98, r


def test_probe_cli_line_json_and_errors(world, tmp_path, capsys):
    from calico.models import build_model
    from calico.utils.runinfo import seed_everything

    data, cache = world
    cfg = _cfg(world)
    seed_everything(0)  # the weights `--ckpt random --seed 0` builds: the probe must score them identically
    model = build_model(cfg.model, cfg.data)
    ckpt = tmp_path / "prc.pt"
    torch.save({"parts": {"lidar_backbone": model.lidar_backbone.state_dict()}}, ckpt)
    common = ["--config", "cpu", "--dataroot", str(data), "--version", "v1.0-synth",
              "--set", f"data.cache_dir={cache}", "data.sweeps=1", "--device", "cpu", "--train-frames", "3"]
    out = tmp_path / "probe.json"
    assert calico_main(["probe", "--ckpt", "random", str(ckpt), *common, "--val-frames", "2",
                        "--json", str(out)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "balanced accuracy" in ln]
    assert len(lines) == 2 and lines[0].startswith("random:") and "recall background" in lines[0]
    res = json.loads(out.read_text())
    assert set(res) == {"random", str(ckpt)} and res["random"]["val_frames"] == 2
    # same weights, same cells, same seed: the same score (also: the probe is deterministic)
    assert res["random"]["balanced_accuracy"] == res[str(ckpt)]["balanced_accuracy"]

    assert calico_main(["probe", "--ckpt", str(tmp_path / "nope.pt"), *common]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    assert calico_main(["probe", "--ckpt", "random", *common, "--set", "finetune.val_split=nosuch"]) == 1
    assert "nosuch" in capsys.readouterr().err


def test_points_in_boxes_near_only_matches_the_dense_helper():
    from calico.data.geometry import points_in_boxes
    from calico.eval.probe import _points_in_boxes

    rng = np.random.default_rng(0)
    xyz = rng.uniform(-20, 20, (5000, 3)).astype(np.float32)
    xyz[:, 2] /= 10
    boxes = np.concatenate([rng.uniform(-18, 18, (40, 2)), rng.uniform(-1, 1, (40, 1)), rng.uniform(0.5, 8, (40, 3)),
                            rng.uniform(-4, 4, (40, 1)), np.zeros((40, 2))], 1).astype(np.float32)
    dense = points_in_boxes(xyz, boxes)
    assert dense.sum() > 100 and np.array_equal(_points_in_boxes(xyz, boxes), dense)
    assert _points_in_boxes(xyz, np.zeros((0, 9), np.float32)).shape == (5000, 0)
