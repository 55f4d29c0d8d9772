"""``calico demo``: the whole pipeline on the synthetic world, no download, with a report.

Generates (or reuses) a synthetic nuScenes-format world, pools it, pre-trains PRC then RAD (and
PointContrast as a baseline), fine-tunes L+C detection at a small label fraction from random init, from PRC
(random camera), from CALICO and from PointContrast, evaluates them all, and writes ``report/report.md`` with
the table, the label-efficiency plot, the pooling picture, BEV feature maps, detections and training curves.
Every number in the report comes from this run. Re-running reuses finished steps.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

from calico.config import get_config
from calico.study import GRIDS, METHODS, Grid, Study, run_jobs, table

WORLD_VERSION = "v1.0-synth"


@dataclass(frozen=True)
class DemoSize:
    scenes: int
    samples_per_scene: int
    sweeps: int
    fraction: float  # the small label fraction every method is fine-tuned on
    extra_fraction: float  # a second fraction for random init and CALICO (the label-efficiency plot)
    pretrain_steps: int
    rad_steps: int
    finetune_steps: int


SIZES = {
    "full": DemoSize(8, 10, 3, 0.2, 0.5, 150, 100, 100),
    "quick": DemoSize(3, 3, 1, 0.5, 1.0, 4, 4, 4),
}


def world_settings(size: DemoSize) -> dict:
    return {"scenes": size.scenes, "samples_per_scene": size.samples_per_scene, "sweeps": size.sweeps,
            "image_size": (225, 400)}


def ensure_world(root: Path, seed: int, quick: bool, scenes: int | None = None) -> dict:
    """Generate the synthetic world into ``root`` unless the same one is already there (``scenes``: override
    the size's scene count)."""
    from calico.data.synth import generate

    settings = {**world_settings(SIZES["quick" if quick else "full"]), "seed": seed, "version": WORLD_VERSION}
    if scenes:
        settings["scenes"] = scenes
    stamp = root / "calico_world.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("settings") == _jsonable(settings):
        print(f"reusing the synthetic world in {root}")
        return json.loads(stamp.read_text())["summary"]
    print(f"generating the synthetic world in {root} ...")
    summary = generate(root, progress=True, **settings)
    stamp.write_text(json.dumps({"settings": _jsonable(settings), "summary": _jsonable(summary)}, indent=1))
    return summary


def _jsonable(x):
    return json.loads(json.dumps(x, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="work/demo", help="folder for the world, runs and the report")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a tiny world and a few steps: CI's smoke test")
    parser.add_argument("--jobs", type=int, default=2, help="trainings run in parallel (default 2)")


def run(args: argparse.Namespace) -> int:
    from calico.data.prepare import prepare

    t0 = time.time()
    size = SIZES["quick" if args.quick else "full"]
    out = Path(args.out) / ("quick" if args.quick else "full")
    root = out / "world"
    ensure_world(root, args.seed, args.quick)
    cfg = get_config("cpu")
    cfg.data.dataroot, cfg.data.version = str(root), WORLD_VERSION
    if not (Path(cfg.data.dataroot) / ".calico" / WORLD_VERSION / "index.pkl").exists():
        prepare(cfg.data, progress=True)
    study = Study(out, "cpu", str(root), WORLD_VERSION, (args.seed,), [],
                  pretrain_overrides=["pretrain.epochs=1000", f"pretrain.max_steps={size.pretrain_steps}"],
                  finetune_overrides=["finetune.epochs=1000", f"finetune.max_steps={size.finetune_steps}"],
                  stage_overrides={"rad": [f"pretrain.max_steps={size.rad_steps}"]})
    main_grid = Grid(GRIDS["demo"].title, GRIDS["demo"].methods, (size.fraction,))
    eff_grid = Grid("Label efficiency", ("rand_lc", "calico"), (size.fraction, size.extra_fraction))
    jobs = {j.name: j for grid in (main_grid, eff_grid) for j in study.plan(grid)}  # cells shared once
    fresh = sum(not j.done() for j in jobs.values())
    run_jobs(list(jobs.values()), parallel=args.jobs, log_dir=out / "logs", threads=1)
    report = write_report(out, cfg, study, main_grid, eff_grid, size, time.time() - t0, args,
                          f"{fresh} of {len(jobs)} steps ran in this invocation, the others were reused")
    print(f"\ndemo finished in {(time.time() - t0) / 60:.1f} min; report: {report}")
    return 0


def write_report(out: Path, cfg, study: Study, grid: Grid, eff: Grid, size: DemoSize, seconds: float,
                 args, provenance: str) -> Path:
    """``report/report.md`` and its figures, all from the run folders under ``out``."""
    from calico.data.dataset import NuScenesDataset, collate
    from calico.pooling.plot import plot_sample
    from calico.report import (
        detections_figure,
        feature_maps_figure,
        plot_label_efficiency,
        training_curves_figure,
    )

    rep = out / "report"
    rep.mkdir(parents=True, exist_ok=True)
    results = study.results(grid)
    eff_results = study.results(eff)
    val = NuScenesDataset(cfg, split="val")
    i = len(val) // 2
    sample = val[i]
    batch = collate([sample])
    prc = study.pretrain_dir(METHODS["prc_randc"], args.seed)
    rad = study.pretrain_dir(METHODS["calico"], args.seed)
    figs = {
        "label_efficiency.png": plot_label_efficiency(eff, eff_results, rep / "label_efficiency.png"),
        "pooling.png": plot_sample(NuScenesDataset(cfg, load_images=False), val.records[i]["token"],
                                   rep / "pooling.png"),
        "feature_maps.png": feature_maps_figure(cfg, batch, {
            "random init": None, "PRC (LiDAR) / random (camera)": str(prc / "last.pt"),
            "CALICO (PRC + RAD)": str(rad / "last.pt")}, rep / "feature_maps.png"),
        "detections.png": detections_figure(
            get_config(str(study.cell_dir("calico", size.fraction, args.seed) / "finetune" / "config.json")),
            str(study.cell_dir("calico", size.fraction, args.seed) / "finetune" / "last.pt"),
            sample, batch, rep / "detections.png"),
        "pretrain_curves.png": training_curves_figure(
            {"PRC": prc, "RAD": rad,
             "PointContrast": study.pretrain_dir(METHODS["pointcontrast_lc"], args.seed)},
            rep / "pretrain_curves.png", "pre-training loss"),
        "finetune_curves.png": training_curves_figure(
            {METHODS[m].label: study.cell_dir(m, size.fraction, args.seed) / "finetune" for m in grid.methods},
            rep / "finetune_curves.png", f"fine-tuning loss ({size.fraction * 100:g}% labels)"),
    }
    cmd = "calico demo" + (" --quick" if args.quick else "")
    lines = [
        "# CALICO demo report", "",
        f"Produced by `{cmd}` in {seconds / 60:.1f} min ({time.strftime('%Y-%m-%d %H:%M')}; {provenance}); "
        f"every number and figure below comes from the run folders under `{out}`.", "",
        f"Synthetic world: {size.scenes} scenes × {size.samples_per_scene} keyframes, {size.sweeps} sweeps; "
        f"config `cpu`; pre-training {size.pretrain_steps} steps (RAD {size.rad_steps}); fine-tuning "
        f"{size.finetune_steps} steps of batch {cfg.finetune.batch_size} on the train split's label fraction; "
        "evaluation on the val split with the nuScenes devkit (detection_cvpr_2019).", "",
        f"## Detection at {size.fraction * 100:g}% labels (Table 1 layout; values in %)", "",
        table(grid, results, per_class=True), "",
        f"One seed per method ({args.seed}): at this size, differences of a few points are within run-to-run "
        "noise; `calico study --grid ... --seeds 0 1 2` gives mean ± std.", "",
        "## Label efficiency (paper Fig. 5)", "", table(eff, eff_results), "", "![](label_efficiency.png)", "",
        "## Semantic pooling (paper Fig. 6)", "", "![](pooling.png)", "",
        "## BEV feature maps with and without pre-training (paper Fig. 9, 10)", "", "![](feature_maps.png)", "",
        "## CALICO detections against ground truth", "", "![](detections.png)", "",
        "## Training curves", "", "![](pretrain_curves.png)", "", "![](finetune_curves.png)", "",
    ]
    missing = [name for name, p in figs.items() if not Path(p).exists()]
    if missing:
        lines += ["", f"Figures not produced: {', '.join(missing)}"]
    path = rep / "report.md"
    path.write_text("\n".join(lines))
    return path
