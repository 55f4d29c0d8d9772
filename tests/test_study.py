"""`calico study`: grids name known methods, cells are skipped when done, tables aggregate over seeds."""

from __future__ import annotations

import json

import pytest

from calico import study
from calico.study import GRIDS, METHODS, Grid, Study, table


def test_grids_use_known_methods_and_stages():
    from calico.pretrain.methods import METHODS as STAGES

    for grid in GRIDS.values():
        assert all(m in METHODS for m in grid.methods)
    for m in METHODS.values():
        assert m.modality in ("L", "C", "L+C")
        assert all(stage in STAGES for stage, _ in m.stages)


def test_table_mean_and_std_over_seeds():
    grid = Grid("t", ("rand_l", "prc"), (0.05,))
    results = {"rand_l": {0.05: [{"NDS": 0.30, "mAP": 0.20}, {"NDS": 0.34, "mAP": 0.22}]},
               "prc": {0.05: [{"NDS": 0.40, "mAP": 0.25}]}}
    md = table(grid, results)
    assert "| 5% | Rand. Init. | L | 32.0 ± 2.8 | 21.0 ± 1.4 |" in md
    assert "| 5% | PRC | L | 40.0 | 25.0 |" in md


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

    from calico.cli import CalicoError

    args = argparse.Namespace(grid="table1", fractions=None, methods=["nope"], out="x", dataroot="d",
                              version="v", config="cpu", seeds=[0], set=[])
    with pytest.raises(CalicoError, match="unknown method"):
        study.run(args)
