"""`calico demo --quick`: CI's end-to-end smoke test of the whole pipeline (world → pool → PRC/RAD/PointContrast
→ fine-tune → evaluate → report), and the report's numbers are the run's own metrics files."""

from __future__ import annotations

import json

import pytest

from calico.cli import main


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    run = tmp_path / "quick"
    text = (run / "report" / "report.md").read_text()
    for label in ("Rand. Init. (L+C)", "PRC+Rand. Init. (C)", "CALICO", "PointContrast"):
        assert f"| {label} |" in text or f"| {label} (" in text
    for fig in ("label_efficiency.png", "pooling.png", "feature_maps.png", "detections.png",
                "pretrain_curves.png", "finetune_curves.png"):
        assert (run / "report" / fig).stat().st_size > 10_000, fig
    for method in ("rand_lc", "prc_randc", "calico", "pointcontrast_lc"):
        m = json.loads((run / "cells" / method / "f050" / "s0" / "eval" / "metrics.json").read_text())
        assert 0.0 <= m["NDS"] <= 1.0
    calico = json.loads((run / "cells" / "calico" / "f050" / "s0" / "eval" / "metrics.json").read_text())
    assert f"| 50% | CALICO | L+C | {calico['NDS'] * 100:.1f} | {calico['mAP'] * 100:.1f} |" in text
    # a second run reuses every finished step
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
