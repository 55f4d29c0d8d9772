"""`calico demo --quick`: CI's end-to-end smoke test of the whole pipeline (world → pool → PRC/PointContrast →
paired fine-tuning seeds → evaluate → probe → report), and the report's numbers are the run's own metrics files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calico.apps.demo import LIDAR_ARMS, SIZES, probe_available
from calico.apps.study import METHODS
from calico.cli import main
from calico.eval.stats import paired_difference


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


def test_full_demo_plan_pretrains_on_the_pool_and_pairs_seeds(tmp_path):
    """The full demo's plan without running it: one pre-training per method on the whole train split (no
    label fraction), every fine-tuning seed of a pre-trained arm starts from it, 2 of 15 train scenes labeled."""
    from calico.apps.demo import make_plan, probe_jobs
    from calico.data.splits import fraction_scenes

    size = SIZES["full"]
    n_val = max(1, size.scenes // 4)  # calico.data.synth.generate's split
    train = [f"scene-{i:04d}" for i in range(size.scenes - n_val)]
    assert len(fraction_scenes(train, size.fraction)) == 2 and len(train) == 15
    plan = make_plan(tmp_path, tmp_path / "world", size, seed=0, fusion=False)
    jobs = {j.name: j for j in plan.lidar_study.plan(plan.lidar) + probe_jobs(plan, tmp_path)}
    pre = sorted(n for n in jobs if n.startswith("pretrain/"))
    assert pre == ["pretrain/pointcontrast-s0", "pretrain/prc-s0"]
    for name in pre:
        argv = jobs[name].argv
        assert "--fraction" not in argv and argv[argv.index("--split") + 1] == "train"  # all of train, unlabeled
        assert f"pretrain.max_steps={size.pretrain_steps}" in argv
    cells = [n for n in jobs if n.startswith("finetune/")]
    assert len(cells) == len(LIDAR_ARMS) * size.seeds
    for name in cells:
        argv = jobs[name].argv
        assert argv[argv.index("--fraction") + 1] == str(size.fraction)
        assert argv[argv.index("--modality") + 1] == "L"
        assert f"finetune.max_steps={size.finetune_steps}" in argv
        method = name.split("/")[2]
        init = argv[argv.index("--init") + 1] if "--init" in argv else None
        assert init == (None if method == "rand_l" else str(tmp_path / "pretrain" / f"{method}-s0" / "last.pt"))
    fusion = make_plan(tmp_path, tmp_path / "world", size, seed=0, fusion=True)
    fjobs = {j.name for j in fusion.fusion_study.plan(fusion.fusion)}
    assert "pretrain/prc+rad-s0" in fjobs
    assert sum(n.startswith("finetune/cells/calico/") for n in fjobs) == size.seeds


def test_paired_sentences_claim_no_more_than_the_interval():
    from calico.apps.demo import paired_sentences
    from calico.apps.study import Grid

    grid = Grid("t", ("rand_l", "prc"), (0.1,))

    def res(base, arm):
        return {"rand_l": {0.1: [{"seed": s, "mAP": v} for s, v in enumerate(base)]},
                "prc": {0.1: [{"seed": s, "mAP": v} for s, v in enumerate(arm)]}}

    up = paired_sentences(grid, res([0.30, 0.20, 0.25], [0.33, 0.24, 0.27]))[0]
    assert "PRC beats Rand. Init. at 10 % labels by +3.0 mAP points [" in up and "above zero" in up
    noisy = paired_sentences(grid, res([0.30, 0.20, 0.25], [0.35, 0.15, 0.28]))[0]
    assert "PRC differs from Rand. Init." in noisy and "does not show a gain" in noisy and "beats" not in noisy
    down = paired_sentences(grid, res([0.30, 0.20, 0.25], [0.27, 0.16, 0.23]))[0]
    assert "PRC trails" in down and "below zero" in down
    one = paired_sentences(grid, res([0.30], [0.40]))[0]
    assert "one seed" in one and "neither a gain nor a loss" in one
