"""The suite: seeded on-the-fly perturbations, clean pass-through, scoring, spoofing ASR, plots, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from calico.robustness import plots
from calico.robustness import suite as SU
from calico.robustness.corruptions import ring_elevations

SCENE = next((p / "shared/data/nuscenes-scene-0916" for p in Path(__file__).resolve().parents[2:4]
              if (p / "shared/data/nuscenes-scene-0916").is_dir()),
             Path(__file__).resolve().parents[2] / "shared/data/nuscenes-scene-0916")


def fake_sample(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed + 100)
    ring = np.repeat(np.arange(32), 200)
    az = np.tile(np.linspace(-np.pi, np.pi, 200, endpoint=False), 32)
    r, e = rng.uniform(3, 60, ring.size), ring_elevations()[ring]
    pts = np.stack([r * np.cos(e) * np.cos(az), r * np.cos(e) * np.sin(az), r * np.sin(e),
                    rng.uniform(0, 80, ring.size), np.zeros(ring.size)], 1).astype(np.float32)
    k4 = np.eye(4, dtype=np.float32)
    k4[:3, :3] = [[400, 0, 300], [0, 400, 100], [0, 0, 1]]
    return {"points": pts, "regions": np.zeros(len(pts), np.int64), "lidar2ego": np.eye(4, dtype=np.float32),
            "token": f"s{seed}", "intrinsics": np.stack([k4[:3, :3]] * 2), "lidar2cam": np.stack([np.eye(4)] * 2),
            "cam2lidar": np.stack([np.eye(4)] * 2), "lidar2img": np.stack([k4] * 2)}


def test_perturbations_are_seeded_per_index():
    base = [fake_sample(0)] * 4  # the same clean sample at every index
    ds = SU.PerturbedDataset(base, SU.corruption("snow", 3, seed=1))
    np.testing.assert_array_equal(ds[2]["points"], ds[2]["points"])
    assert not np.array_equal(ds[2]["points"], ds[3]["points"])
    other = SU.PerturbedDataset(base, SU.corruption("snow", 3, seed=2))
    assert not np.array_equal(ds[2]["points"], other[2]["points"])
    assert "regions" not in ds[2] and "regions" in base[2]  # stale point-aligned keys are dropped
    assert SU.PerturbedDataset(base, None)[1] is base[1]


def test_plans():
    assert len(SU.suite_plan("corruptions")) == 25
    assert [p.name for p in SU.suite_plan("spoofing")] == ["spoof/60", "spoof/100", "spoof/200"]
    names = [p.name for p in SU.suite_plan("all")]
    assert len(names) == len(set(names))
    with pytest.raises(ValueError, match="unknown suite"):
        SU.suite_plan("rain")


def oracle_metric(dataset) -> float:
    """A real, data-dependent stand-in for NDS: the share of boxes with >= 5 LiDAR points inside a
    3 m BEV disc around their centre."""
    hit = tot = 0
    for i in range(len(dataset)):
        s = dataset[i]
        boxes = np.asarray(s["gt_boxes"])
        if not len(boxes):
            continue
        d = np.linalg.norm(s["points"][None, :, :2] - boxes[:, None, :2], axis=2)
        hit += int(((d < 3.0).sum(1) >= 5).sum())
        tot += len(boxes)
    return hit / max(tot, 1)


def test_metric_suite_and_ce_with_stand_in_metric(tmp_path):
    base = []
    for k in range(3):
        s = fake_sample(k)
        s["gt_boxes"] = np.array([[20.0 * np.cos(a), 20.0 * np.sin(a), 0, 2, 4, 1.5, 0, 0, 0] for a in (0, 2, 4)])
        base.append(s)

    def evaluate(pert, out_dir):
        return {"NDS": oracle_metric(SU.PerturbedDataset(base, pert)), "mAP": 0.0}

    plan = [SU.corruption("fog", s) for s in (1, 5)] + [SU.corruption("beam_loss", s) for s in (1, 5)]
    plan += SU.calibration_plan([(1.0, 0.0)])
    res = SU.run_metric_suite(plan, evaluate, tmp_path)
    assert res["corruptions"]["fog"]["severities"] == [1, 5]
    assert res["corruptions"]["fog"]["NDS"][1] <= res["corruptions"]["fog"]["NDS"][0]
    assert res["calibration"]["calib/rot1deg_trans0m"]["drop"] == 0.0  # a LiDAR-only metric ignores calibration
    worse = json.loads(json.dumps(res))
    for c in worse["corruptions"].values():
        c["NDS"] = [x * 0.5 for x in c["NDS"]]
    SU.add_corruption_errors(res, worse)
    for c, v in res["corruptions"].items():
        a = np.array(v["NDS"])
        assert res["CE"][c] == pytest.approx((1 - a).sum() / (1 - 0.5 * a).sum()) and res["CE"][c] < 1.0
    assert res["mCE"] == pytest.approx(np.mean(list(res["CE"].values())))
    path = SU.save_results(res, tmp_path)
    assert "mCE" in path.with_suffix(".md").read_text()


@pytest.fixture(scope="module")
def real_ds(tmp_path_factory):
    if not (SCENE / "v1.0-mini" / "sample.json").exists():
        pytest.skip(f"real nuScenes scene not found at {SCENE}")
    from calico.config import get_config
    from calico.data.dataset import NuScenesDataset
    from calico.data.prepare import prepare

    cfg = get_config("cpu")
    cfg.data.dataroot, cfg.data.version = str(SCENE), "v1.0-mini"
    cfg.data.cache_dir = str(tmp_path_factory.mktemp("robust0916"))
    prepare(cfg.data, progress=False)
    return NuScenesDataset(cfg, load_images=False, with_regions=False)


def test_clean_through_suite_is_the_plain_dataset_and_corrupted_differs(real_ds):
    clean = real_ds[3]
    through = SU.PerturbedDataset(real_ds, None)[3]
    assert through.keys() == clean.keys()
    for k, v in clean.items():
        np.testing.assert_array_equal(np.asarray(through[k]), np.asarray(v))
    real_ds.transform = SU.corruption("fog", 5)  # the dataset's own hook, as the evaluator will use it
    try:
        fogged = real_ds[3]
        assert len(fogged["points"]) < len(clean["points"])
        np.testing.assert_array_equal(fogged["points"], real_ds[3]["points"])
    finally:
        real_ds.transform = None
    sub = torch.utils.data.Subset(real_ds, range(0, 41, 8))
    assert oracle_metric(SU.PerturbedDataset(sub, SU.corruption("fog", 5))) < oracle_metric(sub)


def test_real_spoof_lands_ahead_of_ego(real_ds):
    s = SU.spoofing(100)(real_ds[0], 0)
    ego = s["lidar2ego"].astype(np.float64) @ np.r_[s["spoof_spot"], 1.0]
    assert 9.9 < ego[0] < 10.1 and abs(ego[1]) <= 6.0
    assert len(s["points"]) == len(real_ds[0]["points"]) + 100


class SpotDetector(torch.nn.Module):
    """Reports a car wherever >= ``need`` points stand above the road (z -1.8 m), 7-13 m ahead (+x)."""

    def __init__(self, need: int):
        super().__init__()
        self.need = need

    def forward(self, batch):
        return batch["points"]

    def decode(self, pts):
        out = []
        for b in range(int(pts[:, 0].max().item()) + 1 if len(pts) else 0):
            p = pts[pts[:, 0] == b]
            m = (p[:, 1] > 7) & (p[:, 1] < 13) & (p[:, 2].abs() < 3) & (p[:, 3] > -1.79) & (p[:, 3] < 0.5)
            found = int(m.sum()) >= self.need
            centre = p[m, 1:4].mean(0, keepdim=True) if found else torch.zeros(0, 3)
            out.append({"boxes": torch.cat([centre, torch.zeros(len(centre), 6)], 1),
                        "scores": torch.ones(len(centre)), "labels": torch.zeros(len(centre), dtype=torch.long)})
        return out


class AlwaysCar(SpotDetector):
    """Reports a car 10 m ahead in every frame, spoofed or not."""

    def __init__(self):
        super().__init__(0)

    def decode(self, pts):
        box = torch.tensor([[10.0, 0, -1, 1.8, 4.5, 1.6, 0, 0, 0]])
        return [{"boxes": box, "scores": torch.ones(1), "labels": torch.zeros(1, dtype=torch.long)}]


def test_run_spoofing_asr():
    road = np.random.default_rng(0).uniform(-30, 30, (3000, 2))
    base = [{"points": np.concatenate([road, np.full((3000, 1), -1.8), np.ones((3000, 2))], 1).astype(np.float32),
             "lidar2ego": np.eye(4, dtype=np.float32), "token": f"t{k}", "gt_boxes": np.zeros((0, 9)),
             "gt_labels": np.zeros(0, np.int64), "intrinsics": np.zeros((0, 3, 3)), "lidar2cam": np.zeros((0, 4, 4)),
             "cam2lidar": np.zeros((0, 4, 4)), "lidar2img": np.zeros((0, 4, 4)), "ego2global": np.eye(4)}
            for k in range(3)]
    res = SU.run_spoofing(SpotDetector(need=80), base, trace_sizes=(60, 100, 200))
    assert res["60"]["asr"] == 0.0 and res["100"]["asr"] == 1.0 and res["200"]["frames"] == 3
    # mean car score at the spot over the attacked frames: nothing there when clean, the detector's 1.0 when found
    assert [res[k]["spot_score_clean"] for k in ("60", "100")] == [0.0, 0.0]
    assert [res[k]["spot_score_attacked"] for k in ("60", "100")] == [0.0, 1.0]
    table = SU.spoofing_table(res)
    assert "| 100 | 100.0 % | 3 | 0.000 → 1.000 |" in table and "| 60 | 0.0 % | 3 | 0.000 → 0.000 |" in table
    # a detector that already sees a car there on clean frames: nothing is counted as attacked
    res = SU.run_spoofing(AlwaysCar(), base, trace_sizes=(60,))
    assert res["60"]["frames"] == 0 and res["60"]["skipped"]["car_already_there"] == 3


def test_plots_and_cli_plot(tmp_path):
    from calico.cli import main

    for label, asr, ce in (("scratch", 0.8, 1.0), ("calico", 0.4, 0.78)):
        res = {"label": label, "spoofing": {"60": {"asr": asr / 2, "frames": 5}, "200": {"asr": asr, "frames": 5}},
               "CE": {"fog": ce, "snow": ce}, "mCE": ce}
        (tmp_path / f"{label}.json").write_text(json.dumps(res))
    results = plots.load_results([str(tmp_path / "scratch.json"), str(tmp_path / "calico.json")])
    assert [lab for lab, _ in results] == ["scratch", "calico"]
    rc = main(["robustness", "--plot", str(tmp_path / "scratch.json"), str(tmp_path / "calico.json"),
               "--out", str(tmp_path / "figs")])
    assert rc == 0
    for name in ("fig2_asr.png", "fig3_ce.png"):
        assert (tmp_path / "figs" / name).stat().st_size > 5000
    assert main(["robustness", "--plot", str(tmp_path / "missing.json"), "--out", str(tmp_path)]) == 1
