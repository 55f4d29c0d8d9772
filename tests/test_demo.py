"""`calico demo --quick`: CI's end-to-end smoke test of the whole pipeline (world → pool → PRC/PointContrast →
paired fine-tuning seeds → evaluate → probe → report), and the report's numbers are the run's own metrics files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calico.cli import main
from calico.demo import LIDAR_ARMS, SIZES, probe_available
from calico.eval.stats import paired_difference
from calico.study import METHODS


def _cells(run, method, fraction_dir, seeds):
    return {s: json.loads((run / "cells" / method / fraction_dir / f"s{s}" / "eval" / "metrics.json").read_text())
            for s in seeds}


def _ms(values):
    v = np.asarray(values, dtype=float) * 100
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}"


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path):
    size = SIZES["quick"]
    seeds = list(range(size.seeds))
    assert len(seeds) >= 2, "the quick demo must exercise the paired interval"
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    run = tmp_path / "quick"
    text = (run / "report" / "report.md").read_text()
    pct = f"{size.fraction * 100:g}"
    fdir = f"f{int(round(size.fraction * 100)):03d}"
    cells = {m: _cells(run, m, fdir, seeds) for m in LIDAR_ARMS}

    # the mean ± std table and the per-seed table are the cells' own metrics files
    for m, per_seed in cells.items():
        nds, mAP = _ms([r["NDS"] for r in per_seed.values()]), _ms([r["mAP"] for r in per_seed.values()])
        assert f"| {pct}% | {METHODS[m].label} | L | {nds} | {mAP} |" in text, m
        row = " | ".join(f"{r['mAP'] * 100:.1f} / {r['NDS'] * 100:.1f}" for r in per_seed.values())
        assert f"| {pct}% | {METHODS[m].label} | {row} |" in text, m

    # the paired sentence for each pre-trained arm, with the interval and the verdict it supports
    base = {s: r["mAP"] for s, r in cells["rand_l"].items()}
    for m in ("pointcontrast", "prc"):
        d = paired_difference({s: r["mAP"] for s, r in cells[m].items()}, base)
        assert d.n == len(seeds)
        verb, verdict = (("beats", "above zero, so this run shows a gain") if d.lo > 0 else
                         ("trails", "below zero, so in this run pre-training made detection worse") if d.hi < 0 else
                         ("differs from", "includes zero, so this run does not show a gain"))
        said = (f"{METHODS[m].label} {verb} Rand. Init. at {pct} % labels by {d.mean * 100:+.1f} mAP points "
                f"[{d.lo * 100:+.1f}, {d.hi * 100:+.1f}] (95 % t-interval) over {len(seeds)} paired seeds")
        assert said in text, said
        line = next(x for x in text.splitlines() if said in x)
        assert verdict in line, line

    # the world: the unlabeled pool (every train keyframe) is larger than the labeled set
    world = json.loads((run / "world" / "calico_world.json").read_text())["summary"]
    assert world["splits"]["train"] > 1
    labeled = json.loads((run / "cells" / "prc" / fdir / "s0" / "finetune" / "config.json").read_text())
    assert labeled["finetune"]["fraction"] == size.fraction
    assert "the unlabeled pool is 3.0× the labeled set" in text

    # the probe, when this version has it: its JSON is what the report shows
    if probe_available():
        probe = json.loads((run / "probe" / "lidar.json").read_text())
        assert set(probe) == {"random", *(str(run / "pretrain" / f"{m}-s0" / "last.pt") for m in ("pointcontrast", "prc"))}
        for r in probe.values():
            assert f"| {r['balanced_accuracy']:.3f} |" in text
    else:
        assert "Not run: this version has no `calico probe`" in text

    for fig in ("paired_seeds.png", "pooling.png", "feature_maps.png", "detections.png",
                "pretrain_curves.png", "finetune_curves.png"):
        assert (run / "report" / fig).stat().st_size > 10_000, fig
    assert "Figures not produced" not in text

    # a second run reuses every finished step (no training runs again)
    ckpt = run / "cells" / "prc" / fdir / "s0" / "finetune" / "last.pt"
    before = ckpt.stat().st_mtime_ns
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    assert ckpt.stat().st_mtime_ns == before
