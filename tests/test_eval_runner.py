"""run_evaluation and `calico evaluate` end to end: an oracle model on the real scene, a seg-only fake."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from eval_helpers import SCENE, nusc_or_skip

from calico.cli import main
from calico.config import get_config
from calico.errors import CalicoError
from calico.eval.runner import run_evaluation


class Oracle(torch.nn.Module):
    """Predicts the batch's own ground truth (score 1 where the box has LiDAR points, else 0.5)."""

    def __init__(self, num_pts: dict[str, np.ndarray] | None = None):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.num_pts = num_pts or {}

    def forward(self, batch):
        return {"boxes": batch["gt_boxes"], "labels": batch["gt_labels"], "tokens": batch["tokens"]}

    def decode(self, out):
        dets = []
        for b, lab, tok in zip(out["boxes"], out["labels"], out["tokens"]):
            pts = self.num_pts.get(tok)
            scores = torch.ones(len(b)) if pts is None else torch.where(torch.from_numpy(pts) > 0, 1.0, 0.5)
            dets.append({"boxes": b, "scores": scores, "labels": lab})
        return dets


@pytest.fixture(scope="module")
def real_cfg(tmp_path_factory):
    nusc_or_skip()
    from calico.data.prepare import prepare

    cfg = get_config("cpu", ["data.load_images=false", "data.sweeps=0", "model.with_seg=false"])
    cfg.data.dataroot, cfg.data.version = str(SCENE), "v1.0-mini"
    cfg.data.cache_dir = str(tmp_path_factory.mktemp("evalcache"))
    prepare(cfg.data, progress=False)
    return cfg


def test_oracle_on_the_prepared_index(real_cfg, tmp_path):
    from calico.data.dataset import NuScenesDataset

    ds = NuScenesDataset(real_cfg, split="mini_val", with_regions=False)
    model = Oracle({r["token"]: r["gt_num_pts"] for r in ds.records})
    flat = run_evaluation(model, real_cfg, "mini_val", tmp_path, dataset=ds, progress=False)
    # index boxes (calico prepare's LiDAR frame) -> lidar_boxes_to_nusc -> devkit GT: the frames agree
    assert flat["num_samples"] == 41
    assert flat["mAP_present"] > 0.97 and flat["mATE"] < 0.41  # 4 absent classes count 1 each in mATE
    assert flat["AP/car"] > 0.97 and flat["AP/trailer"] == 0.0
    assert "mIoU" not in flat
    for name in ("results_nusc.json", "metrics_summary.json", "metrics_details.json", "seg_metrics.json",
                 "metrics.json", "metrics.md"):
        assert (tmp_path / name).is_file(), name
    sub = json.loads((tmp_path / "results_nusc.json").read_text())
    assert sub["meta"]["use_lidar"] and sub["meta"]["use_camera"]  # cpu preset: modality L+C
    assert json.loads((tmp_path / "seg_metrics.json").read_text())["available"] is False
    assert "NDS" in (tmp_path / "metrics.md").read_text()


def test_max_samples_limits_the_split(real_cfg, tmp_path):
    flat = run_evaluation(Oracle(), real_cfg, "mini_val", tmp_path, max_samples=3, progress=False)
    assert flat["num_samples"] == 3
    assert len(json.loads((tmp_path / "results_nusc.json").read_text())["results"]) == 3


class _SegData:
    """Four tiny samples with map masks and nothing else the model needs."""

    def __init__(self, n=4, s=8):
        rng = np.random.default_rng(0)
        self.masks = (rng.random((n, 6, s, s)) > 0.6).astype(np.uint8)
        self.records = [{"token": f"t{i}"} for i in range(n)]

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        eye = np.eye(4, dtype=np.float32)
        return {"token": f"t{i}", "points": np.zeros((1, 5), np.float32), "gt_boxes": np.zeros((0, 9), np.float32),
                "gt_labels": np.zeros(0, np.int64), "intrinsics": np.eye(3, dtype=np.float32)[None],
                "lidar2cam": eye[None], "cam2lidar": eye[None], "lidar2img": eye[None], "lidar2ego": eye,
                "ego2global": eye, "map_masks": self.masks[i]}


class _SegModel(torch.nn.Module):
    def __init__(self, flip_class=None):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.flip = flip_class

    def forward(self, batch):
        logits = batch["map_masks"].float() * 8 - 4  # sigmoid: 0.98 on, 0.02 off
        if self.flip is not None:
            logits[:, self.flip] = -logits[:, self.flip]
        return {"seg": logits}


def test_segmentation_metrics(tmp_path):
    cfg = get_config("cpu", ["model.with_det=false", "data.num_workers=0"])
    data = _SegData()
    flat = run_evaluation(_SegModel(), cfg, None, tmp_path / "a", dataset=data, progress=False)
    assert flat["mIoU"] == pytest.approx(1.0) and "NDS" not in flat
    flat = run_evaluation(_SegModel(flip_class=2), cfg, None, tmp_path / "b", dataset=data, progress=False)
    assert flat["IoU/walkway"] == pytest.approx(0.0) and flat["mIoU"] == pytest.approx(5 / 6)
    seg = json.loads((tmp_path / "b" / "seg_metrics.json").read_text())
    assert seg["available"] and seg["samples"] == 4 and seg["best_threshold"]["drivable_area"] == 0.35


def test_cli_errors_are_clear(tmp_path, capsys):
    args = ["evaluate", "--dataroot", str(tmp_path), "--split", "val", "--out", str(tmp_path / "o")]
    assert main([*args, "--ckpt", str(tmp_path / "missing.pt")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert main([*args, "--ckpt", str(tmp_path / "bad.pt")]) == 1
    assert "cannot read checkpoint" in capsys.readouterr().err
    torch.save({"parts": {}}, tmp_path / "pre.pt")
    assert main([*args, "--ckpt", str(tmp_path / "pre.pt")]) == 1
    assert "pre-training checkpoint" in capsys.readouterr().err
    torch.save({"model": {}}, tmp_path / "noconf.pt")
    assert main([*args, "--ckpt", str(tmp_path / "noconf.pt")]) == 1
    assert "pass --config" in capsys.readouterr().err


def test_cli_end_to_end_with_a_run_folder(real_cfg, tmp_path, monkeypatch):
    import calico.models

    built = []

    def fake_build(model_cfg, data_cfg):
        built.append((model_cfg, data_cfg))
        return Oracle()

    monkeypatch.setattr(calico.models, "build_model", fake_build, raising=False)
    run_dir = tmp_path / "run"
    (run_dir / "ckpt").mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(real_cfg.to_dict()))
    torch.save({"model": Oracle().state_dict()}, run_dir / "ckpt" / "last.pt")
    out = tmp_path / "out"
    rc = main(["evaluate", "--ckpt", str(run_dir / "ckpt" / "last.pt"), "--dataroot", str(SCENE),
               "--split", "mini_val", "--out", str(out), "--max-samples", "2", "--set", "data.num_workers=0"])
    assert rc == 0 and built and built[0][1].cache_dir == real_cfg.data.cache_dir
    assert json.loads((out / "metrics.json").read_text())["num_samples"] == 2
    # a state_dict that does not fit the model is named as such
    torch.save({"model": {"nope": torch.zeros(1)}}, run_dir / "ckpt" / "bad.pt")
    with pytest.raises(CalicoError, match="do not match"):
        from calico.eval.cli import build_from_checkpoint, load_checkpoint

        build_from_checkpoint(load_checkpoint(run_dir / "ckpt" / "bad.pt"), real_cfg, "bad.pt")


def test_top_k_keeps_the_best_boxes():
    from calico.eval.runner import top_k

    boxes = torch.arange(27, dtype=torch.float32).view(3, 9)
    det = {"boxes": boxes, "scores": torch.tensor([0.2, 0.9, 0.5]), "labels": torch.tensor([0, 1, 2])}
    b, s, lab = top_k(det, 2)
    assert s.tolist() == pytest.approx([0.9, 0.5]) and lab.tolist() == [1, 2] and b[0, 0] == 9
    b, s, lab = top_k({k: v.numpy() for k, v in det.items()}, 5)
    assert len(s) == 3 and isinstance(b, np.ndarray)


def test_test_version_writes_the_submission_only(tmp_path):
    """v1.0-test has no annotations: no metrics, no devkit scoring, every sample in results_nusc.json."""
    from calico.data.dataset import NuScenesDataset
    from calico.data.prepare import prepare
    from calico.data.synth import generate

    generate(tmp_path / "data", scenes=2, samples_per_scene=2, sweeps=0, image_size=(16, 28), version="v1.0-test",
             progress=False)
    cfg = get_config("cpu", ["data.load_images=false", "data.sweeps=0", "model.with_seg=false"])
    cfg.data.dataroot, cfg.data.version = str(tmp_path / "data"), "v1.0-test"
    cfg.data.cache_dir = str(tmp_path / "cache")
    prepare(cfg.data, progress=False)
    ds = NuScenesDataset(cfg, split=None, with_regions=False)
    flat = run_evaluation(Oracle(), cfg, None, tmp_path / "eval", dataset=ds, progress=False)
    assert flat == {"num_samples": 4.0}
    sub = json.loads((tmp_path / "eval" / "results_nusc.json").read_text())
    assert set(sub["results"]) == {r["token"] for r in ds.records} and sub["meta"]["use_lidar"]
    assert sum(len(v) for v in sub["results"].values()) == sum(len(r["gt_boxes"]) for r in ds.records)
    assert not (tmp_path / "eval" / "metrics_summary.json").exists()
    assert "v1.0-test has no annotations" in (tmp_path / "eval" / "metrics.md").read_text()
    # `calico evaluate --split val` on v1.0-test: val is test there; the submission, no metrics file
    from calico.engine.checkpoint import FORMAT
    from calico.models import build_model

    cfg.model.modality = "L"
    torch.save({"format": FORMAT, "model": build_model(cfg.model, cfg.data).state_dict(), "config": cfg.to_dict()},
               tmp_path / "last.pt")
    assert main(["evaluate", "--ckpt", str(tmp_path / "last.pt"), "--dataroot", cfg.data.dataroot, "--split", "val",
                 "--set", "data.num_workers=0", "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "results_nusc.json").exists() and not (tmp_path / "cli" / "metrics_summary.json").exists()
