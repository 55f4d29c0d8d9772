"""`calico study`: grids name known methods, cells are skipped when done, tables aggregate over seeds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from calico.apps import study
from calico.apps.study import GRIDS, METHODS, Grid, Study, table


def test_grids_use_known_methods_and_stages():
    from calico.pretrain.methods import METHODS as STAGES

    for grid in GRIDS.values():
        assert all(m in METHODS for m in grid.methods)
    for m in METHODS.values():
        assert m.modality in ("L", "C", "L+C")
        assert all(stage in STAGES for stage, _ in m.stages)


def test_lidar_stages_pretrain_on_the_lidar_split(tmp_path):
    """--lidar-pretrain-split reaches the stages without images, with the split in the run's folder name
    (a resumed study never reuses a pre-training of another pool); RAD reads images and stays on train."""
    s = Study(tmp_path, "cpu", "D", "v", (0,), [], lidar_pretrain_split="train+unlabeled")
    jobs = {j.name: j for j in s.plan(Grid("g", ("calico",), (0.1,)))}
    prc, rad = jobs["pretrain/prc@train+unlabeled-s0"].argv, jobs["pretrain/prc@train+unlabeled+rad-s0"].argv
    assert prc[prc.index("--split") + 1] == "train+unlabeled" and rad[rad.index("--split") + 1] == "train"
    plain = Study(tmp_path, "cpu", "D", "v", (0,), [])
    assert "pretrain/prc-s0" in {j.name for j in plain.plan(Grid("g", ("prc",), (0.1,)))}


def test_table_mean_and_std_over_seeds():
    grid = Grid("t", ("rand_l", "prc"), (0.05,))
    results = {"rand_l": {0.05: [{"NDS": 0.30, "mAP": 0.20}, {"NDS": 0.34, "mAP": 0.22}]},
               "prc": {0.05: [{"NDS": 0.40, "mAP": 0.25}]}}
    md = table(grid, results)
    assert "| 5% | Rand. Init. | L | 32.0 ± 2.8 | 21.0 ± 1.4 |" in md
    assert "| 5% | PRC | L | 40.0 | 25.0 |" in md
    # rows ascend by fraction whatever order --fractions gave (the first is where --tune tunes)
    results["rand_l"][0.02] = [{"NDS": 0.1, "mAP": 0.05}]
    md = table(Grid("t", ("rand_l", "prc"), (0.05, 0.02)), results)
    assert md.index("| 2% | Rand. Init.") < md.index("| 5% | Rand. Init.")


def test_cells_skip_when_done_and_chain_pretraining(tmp_path, monkeypatch):
    calls: list[list[str]] = []

    def fake_call(argv):
        calls.append(argv)
        if argv[0] in ("pretrain", "finetune"):
            (tmp_path / argv[argv.index("--out") + 1]).mkdir(parents=True, exist_ok=True)
        if argv[0] == "evaluate":
            out = argv[argv.index("--out") + 1]
            (tmp_path / out).mkdir(parents=True, exist_ok=True)
            (tmp_path / out / "metrics.json").write_text(json.dumps({"NDS": 0.5, "mAP": 0.4}))

    monkeypatch.setattr(study, "_call", fake_call)
    monkeypatch.chdir(tmp_path)
    s = Study("st", "cpu", "D", "v", (0,), [])
    grid = Grid("g", ("calico",), (0.1,))
    res = s.run(grid)
    assert res["calico"][0.1][0]["NDS"] == 0.5
    kinds = [c[0] if c[0] != "pretrain" else f"pretrain:{c[c.index('--stage') + 1]}" for c in calls]
    assert kinds == ["pool", "pretrain:prc", "pretrain:rad", "finetune", "evaluate"]
    rad = calls[2]
    assert rad[rad.index("--init") + 1].endswith("prc-s0/last.pt")
    ft = calls[3]
    assert ft[ft.index("--init") + 1].endswith("prc+rad-s0/last.pt") and ft[ft.index("--modality") + 1] == "L+C"
    calls.clear()
    s.run(grid)  # everything done: only pooling (itself resumable) runs again
    assert [c[0] for c in calls] == ["pool"]


def test_unknown_method_is_a_clear_error():
    import argparse

    from calico.errors import CalicoError

    args = argparse.Namespace(grid="table1", fractions=None, methods=["nope"], out="x", dataroot="d",
                              version="v", config="cpu", seeds=[0], set=[])
    with pytest.raises(CalicoError, match="unknown method"):
        study.run(args)


def test_paired_table_pairs_by_seed_and_flags_intervals_above_zero():
    grid = Grid("t", ("rand_l", "prc"), (0.05,))
    results = {"rand_l": {0.05: [{"seed": 0, "mAP": 0.30}, {"seed": 1, "mAP": 0.30}, {"seed": 2, "mAP": 0.31}]},
               "prc": {0.05: [{"seed": 2, "mAP": 0.35}, {"seed": 0, "mAP": 0.35}, {"seed": 1, "mAP": 0.36}]}}
    md = study.paired_table(grid, results, metrics=("mAP",))
    row = [line for line in md.splitlines() if "PRC" in line][0]
    # per seed +5, +6, +4 -> mean +5.0, sd 1.0, t(0.975, 2) 4.303 -> [+2.5, +7.5]
    assert row == "| 5% | PRC | Rand. Init. | 3 | +5.0 [+2.5, +7.5] * |"
    assert study.baseline_of("calico", ("rand_l", "rand_lc", "calico")) == "rand_lc"


def test_paired_table_adds_the_shorter_chain_a_method_extends():
    # CALICO (prc -> rad) is compared with random init (L+C) and with PRC + random camera (prc): RAD's share
    assert study.chain_baselines_of("calico", ("rand_lc", "prc_randc", "calico", "prc")) == ["prc_randc"]
    assert study.chain_baselines_of("prc_randc", ("rand_lc", "prc_randc", "calico")) == []
    assert study.chain_baselines_of("prc_bevdistill", ("prc_randc", "calico")) == ["prc_randc"]
    grid = Grid("t", ("rand_lc", "prc_randc", "calico"), (0.05,))
    results = {"rand_lc": {0.05: [{"seed": s, "mAP": 0.10} for s in (0, 1)]},
               "prc_randc": {0.05: [{"seed": 0, "mAP": 0.12}, {"seed": 1, "mAP": 0.14}]},
               "calico": {0.05: [{"seed": 0, "mAP": 0.15}, {"seed": 1, "mAP": 0.17}]}}
    rows = [line for line in study.paired_table(grid, results, metrics=("mAP",)).splitlines() if "| 5%" in line]
    assert [r.split(" | ")[1:3] for r in rows] == [["PRC+Rand. Init. (C)", "Rand. Init. (L+C)"],
                                                   ["CALICO", "Rand. Init. (L+C)"],
                                                   ["CALICO", "PRC+Rand. Init. (C)"]]
    assert "+3.0" in rows[2]  # per seed +3, +3: the later RAD stage's share


def test_tuning_uses_train_holdout_and_shared_pretraining(tmp_path, monkeypatch):
    calls: list[list[str]] = []
    scores = iter([0.2, 0.4, 0.5, 0.1])

    def fake_call(argv):
        calls.append(argv)
        if argv[0] == "evaluate":
            out = tmp_path / argv[argv.index("--out") + 1]
            out.mkdir(parents=True, exist_ok=True)
            (out / "metrics.json").write_text(json.dumps({"NDS": 0.5, "mAP": next(scores, 0.3)}))

    monkeypatch.setattr(study, "_call", fake_call)
    monkeypatch.chdir(tmp_path)
    s = Study("st", "cpu", "D", "v", (0, 1), [], pretrain_seed=0)
    grid = Grid("g", ("rand_l", "prc"), (0.05, 0.2))
    study.run_jobs(s.plan(grid, tune=True))
    ft = [c for c in calls if c[0] == "finetune"]
    ev = [c for c in calls if c[0] == "evaluate"]
    assert len(ft) == 4 and all("finetune.train_split=train:fit" in c and c[c.index("--fraction") + 1] == "0.05"
                                for c in ft)
    assert all(c[c.index("--split") + 1] == "train:holdout" for c in ev)
    tuned = s.tuned(grid)
    assert tuned["rand_l"]["sets"] == list(study.TUNE_CANDIDATES["random"][1])
    assert tuned["prc"]["sets"] == list(study.TUNE_CANDIDATES["pretrained"][0])
    s.method_over = {m: t["sets"] for m, t in tuned.items()}
    calls.clear()
    s.run(grid)
    pre = [c for c in calls if c[0] == "pretrain"]
    assert pre == []  # the one shared pre-training (seed 0) ran during tuning
    ft = [c for c in calls if c[0] == "finetune" and "prc" in c[c.index("--out") + 1]]
    assert len(ft) == 4 and all(c[c.index("--init") + 1].endswith("prc-s0/last.pt") for c in ft)
    assert all(study.TUNE_CANDIDATES["pretrained"][0][0] in c for c in ft)
    assert all(c[c.index("--split") + 1] == "val" for c in calls if c[0] == "evaluate")


def test_probe_table_probes_each_pretraining_once_and_caches(tmp_path, monkeypatch):
    import calico.eval.probe as probe

    calls = []

    def fake_probe(cfg, ckpts, seed=0, features="lidar", **kw):
        calls.append((features, cfg.model.modality, list(ckpts)))
        acc = 0.3 if features == "camera" else 0.4
        return {c: {"balanced_accuracy": acc + 0.1 * (c != "random"),
                    "recall": {"background": 0.5, "car": 0.5, "pedestrian": None, "other": 0.1}} for c in ckpts}

    monkeypatch.setattr(probe, "run_probe", fake_probe)
    s = Study(tmp_path, "cpu", "D", "v", (0, 1), [], pretrain_seed=0)
    md = study.probe_table(s, Grid("g", ("rand_l", "prc", "calico"), (0.05,)))
    rad = str(tmp_path / "pretrain" / "prc+rad-s0" / "last.pt")
    # F^LiDAR for every chain; F^Camera (on an L+C model) only for the chain that trains the camera (RAD)
    assert [(f, ck) for f, _, ck in calls] == [
        ("lidar", ["random", str(tmp_path / "pretrain" / "prc-s0" / "last.pt"), rad]), ("camera", ["random", rad])]
    assert calls[1][1] == "L+C"  # the camera probe builds a model with a camera branch
    assert "| Rand. Init. | 0.400 | 0.50 / 0.50 / – / 0.10 |" in md and "| prc + rad | 0.500 |" in md
    camera = md[md.index("F^Camera"):]
    assert "| Rand. Init. | 0.300 |" in camera and "| prc + rad | 0.400 |" in camera
    study.probe_table(s, Grid("g", ("rand_l", "prc", "calico"), (0.05,)))
    assert len(calls) == 2  # both cached in probe.json


def test_data_flags_reach_every_run(tmp_path, monkeypatch):
    """`calico study --dataroot D --cache-dir C` hands the same data flags to every job it runs (the one CLI
    convention: each of those commands takes them); no --cache-dir when none was given."""
    calls: list[list[str]] = []

    def fake_call(argv):
        calls.append(argv)
        if argv[0] == "evaluate":
            out = Path(argv[argv.index("--out") + 1])
            out.mkdir(parents=True, exist_ok=True)
            (out / "metrics.json").write_text(json.dumps({"NDS": 0.5, "mAP": 0.4}))

    monkeypatch.setattr(study, "_call", fake_call)
    parser = argparse.ArgumentParser()
    study.add_arguments(parser)
    common = ["--grid", "table1", "--methods", "rand_l", "--fractions", "0.1", "--dataroot", "D"]
    assert study.run(parser.parse_args([*common, "--cache-dir", "C", "--out", str(tmp_path / "a")])) == 0
    assert [c[0] for c in calls] == ["finetune", "evaluate"]
    for argv in calls:
        assert argv[argv.index("--cache-dir") + 1] == "C" and argv[argv.index("--dataroot") + 1] == "D"
        assert argv[argv.index("--version") + 1] == "v1.0-trainval"  # the cpu preset's data.version
    calls.clear()
    assert study.run(parser.parse_args([*common, "--out", str(tmp_path / "b")])) == 0
    assert calls and not any("--cache-dir" in c for c in calls)


def test_tuning_table_names_the_fraction_the_tuning_ran_at(tmp_path):
    """A study folder tuned at 5 % and resumed with --fractions 0.5 reuses the 5 % tuning: the report says 5 %."""
    s = Study(str(tmp_path), "cpu", "D", "v", (0,), [], pretrain_seed=0)
    for name, kind in (("rand_l", "random"), ("prc", "pretrained")):
        for k, _ in enumerate(study.TUNE_CANDIDATES[kind]):
            d = s.tune_dir(name, k)
            (d / "eval").mkdir(parents=True)
            (d / "eval" / "metrics.json").write_text(json.dumps({"mAP": 0.1 * (k + 1), "NDS": 0.2}))
            (d / "finetune").mkdir()
            (d / "finetune" / "config.json").write_text(json.dumps({"finetune": {"fraction": 0.05}}))
    grid = Grid("g", ("rand_l", "prc"), (0.5,))
    tuned = s.tuned(grid)
    assert tuned["rand_l"]["fraction"] == 0.05 and tuned["prc"]["fraction"] == 0.05
    table = study.tuning_table(grid, tuned)
    assert "at 5% labels" in table and "50%" not in table
    # a method whose tuning cells do not record it falls back to the grid's first fraction, tagged per row
    (s.tune_dir("prc", 0) / "finetune" / "config.json").unlink()
    (s.tune_dir("prc", 1) / "finetune" / "config.json").unlink()
    table = study.tuning_table(grid, s.tuned(grid))
    assert "at 5% / 50% labels" in table and "(at 50%)" in table and "(at 5%)" in table


def test_report_only_runs_nothing_and_lists_missing_cells(tmp_path, monkeypatch):
    """--report-only: tables from the finished cells (here seed 0 of rand_l at 10 % and 50 %, seed 1 at 10 %),
    no job and no probe run, the unfinished cells named."""
    import calico.eval.probe as probe

    calls: list[list[str]] = []
    monkeypatch.setattr(study, "_call", lambda argv: calls.append(argv))
    monkeypatch.setattr(probe, "run_probe", lambda *a, **k: calls.append(["probe"]) or {})
    s = Study(tmp_path, "cpu", "D", "v", (0, 1), [])
    for fraction, seed, m in ((0.1, 0, 0.2), (0.1, 1, 0.3), (0.5, 0, 0.6)):
        d = s.cell_dir("rand_l", fraction, seed) / "eval"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"NDS": m, "mAP": m}))
    parser = argparse.ArgumentParser()
    study.add_arguments(parser)
    args = parser.parse_args(["--grid", "efficiency", "--methods", "rand_l", "prc", "--fractions", "0.1", "0.5",
                              "--seeds", "0", "1", "--dataroot", "D", "--out", str(tmp_path), "--report-only"])
    assert study.run(args) == 0
    assert calls == []
    md = (tmp_path / "efficiency.md").read_text()
    assert "Report only: 5 of 8 cells are not finished" in md
    assert "rand_l/f050/s1" in md and "prc/f010/s0" in md and "rand_l/f010/s0," not in md
    assert "| 10% | Rand. Init. | L | 25.0 ± 7.1 | 25.0 ± 7.1 |" in md  # mean ± std of the two finished seeds
    assert "not probed" in md
    assert (tmp_path / "efficiency_label_efficiency.png").exists()
