"""``calico study``: the paper's grids (methods × label fractions × seeds), one run folder per cell.

Each cell is ``calico finetune`` from a method's pre-trained checkpoint (pre-training runs are shared
between cells) followed by ``calico evaluate`` on the val split. A cell whose ``eval/metrics.json`` exists is
skipped, so an interrupted study resumes where it stopped. Results are aggregated into the paper's table
layouts with mean ± std over seeds, plus the label-efficiency plot (paper Fig. 5).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calico.cli import CalicoError
from calico.config import CLASSES, MAP_CLASSES


@dataclass(frozen=True)
class Method:
    label: str  # as in the paper's tables
    modality: str  # "L", "C" or "L+C"
    stages: tuple[tuple[str, tuple[str, ...]], ...] = ()  # pre-training chain: (stage, --set overrides)


# Every method of Tables 1, 4, 5 and 7, built from `calico pretrain` stages. Distillation stages start from
# the PRC checkpoint (their frozen teacher) and their checkpoints carry it, so one --init covers both branches.
METHODS: dict[str, Method] = {
    "rand_l": Method("Rand. Init.", "L"),
    "pointcontrast": Method("PointContrast", "L", (("pointcontrast", ()),)),
    "proposalcontrast": Method("ProposalContrast", "L", (("proposalcontrast", ()),)),
    "plrc": Method("PLRC", "L", (("plrc", ()),)),
    "prc": Method("PRC", "L", (("prc", ()),)),
    "rand_lc": Method("Rand. Init. (L+C)", "L+C"),
    "prc_randc": Method("PRC+Rand. Init. (C)", "L+C", (("prc", ()),)),
    "pointcontrast_lc": Method("PointContrast (L) + Rand. Init. (C)", "L+C", (("pointcontrast", ()),)),
    "simipu": Method("SimIPU", "L+C", (("simipu", ()),)),
    "prc_bevdistill": Method("PRC+BEVDistill", "L+C", (("prc", ()), ("bevdistill", ()))),
    "calico": Method("CALICO", "L+C", (("prc", ()), ("rad", ()))),
    "rand_c": Method("Rand. Init. (C)", "C"),
    "vanilla_c": Method("Vanilla Distillation", "C", (("prc", ()), ("vanilla_distill", ()))),
    "bevdistill_c": Method("BEVDistill", "C", (("prc", ()), ("bevdistill", ()))),
    "rad_c": Method("RAD", "C", (("prc", ()), ("rad", ()))),
    **{f"prc_a{a}": Method(f"PRC α={a}", "L", (("prc", (f"pretrain.alpha={a}",)),))
       for a in ("0.1", "0.25", "0.5", "0.75", "0.9")},
}


@dataclass(frozen=True)
class Grid:
    title: str
    methods: tuple[str, ...]
    fractions: tuple[float, ...]
    task: str = "det"  # "det" (NDS/mAP table) or "seg" (IoU table)
    overrides: tuple[str, ...] = field(default=())


GRIDS: dict[str, Grid] = {
    "table1": Grid("Table 1: 3D detection, label fractions", (
        "rand_l", "pointcontrast", "proposalcontrast", "plrc", "prc", "prc_randc", "simipu", "prc_bevdistill",
        "calico"), (0.05, 0.10, 0.20, 0.50)),
    "table4": Grid("Table 4: BEV map segmentation IoU", (
        "rand_lc", "prc_randc", "simipu", "prc_bevdistill", "calico"), (0.05, 0.10, 0.20, 0.50), task="seg"),
    "table5": Grid("Table 5: α in PRC", tuple(f"prc_a{a}" for a in ("0.1", "0.25", "0.5", "0.75", "0.9")),
                   (0.05, 0.50)),
    "table7": Grid("Table 7: camera-only and RAD", (
        "plrc", "prc", "rand_c", "vanilla_c", "bevdistill_c", "rad_c", "calico"), (0.10, 0.50)),
    "demo": Grid("Demo: L+C detection", ("rand_lc", "prc_randc", "calico", "pointcontrast_lc"), (0.25,)),
}


def _call(argv: list[str]) -> None:
    from calico.cli import main

    print("$ calico " + " ".join(argv), flush=True)
    rc = main(argv)
    if rc:
        raise CalicoError(f"`calico {' '.join(argv)}` failed with exit code {rc}")


class Study:
    """Runs and aggregates one grid under ``out``; every step is skipped when its result exists."""

    def __init__(self, out: Path, config: str, dataroot: str, version: str, seeds: tuple[int, ...],
                 overrides: list[str], pretrain_overrides: list[str] | None = None,
                 finetune_overrides: list[str] | None = None):
        self.out, self.config, self.dataroot, self.version = Path(out), config, dataroot, version
        self.seeds, self.overrides = seeds, list(overrides)
        self.pre_over = list(pretrain_overrides or [])
        self.ft_over = list(finetune_overrides or [])

    def _common(self) -> list[str]:
        return ["--config", self.config, "--dataroot", self.dataroot, "--version", self.version]

    def pool(self) -> None:
        _call(["pool", *self._common()])

    def pretrained(self, method: Method, seed: int) -> str | None:
        """Run (or reuse) the method's pre-training chain; return the final checkpoint path."""
        ckpt = None
        chain = []
        for stage, sets in method.stages:
            chain.append(stage + "".join(f"[{s}]" for s in sets))
            run = self.out / "pretrain" / f"{'+'.join(chain)}-s{seed}"
            done = run / "DONE"
            if not done.exists():
                argv = ["pretrain", "--stage", stage, *self._common(), "--out", str(run), "--seed", str(seed)]
                if (run / "last.pt").exists():
                    argv.append("--resume")
                if ckpt:
                    argv += ["--init", ckpt]
                sets_all = [*self.overrides, *self.pre_over, *sets]
                if sets_all:
                    argv += ["--set", *sets_all]
                _call(argv)
                done.write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
            ckpt = str(run / "last.pt")
        return ckpt

    def cell(self, name: str, fraction: float, seed: int, grid: Grid) -> dict:
        """Fine-tune + evaluate one cell; returns its metrics."""
        method = METHODS[name]
        cell = self.out / "cells" / name / f"f{int(round(fraction * 100)):03d}" / f"s{seed}"
        metrics = cell / "eval" / "metrics.json"
        if metrics.exists():
            return json.loads(metrics.read_text())
        init = self.pretrained(method, seed)
        ft = cell / "finetune"
        argv = ["finetune", *self._common(), "--out", str(ft), "--fraction", str(fraction),
                "--modality", method.modality, "--seed", str(seed), "--no-eval"]
        if (ft / "last.pt").exists() and not (ft / "DONE").exists():
            argv.append("--resume")
        if init:
            argv += ["--init", init]
        sets = [*self.overrides, *self.ft_over, *grid.overrides]
        if sets:
            argv += ["--set", *sets]
        if not (ft / "DONE").exists():
            _call(argv)
            (ft / "DONE").write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
        _call(["evaluate", "--ckpt", str(ft / "last.pt"), *self._common()[2:], "--split", "val",
               "--out", str(cell / "eval")])
        return json.loads(metrics.read_text())

    def run(self, grid: Grid) -> dict[str, dict[float, list[dict]]]:
        needs_regions = any(s in ("prc", "plrc", "rapc", "rad", "bevdistill")
                            for m in grid.methods for s, _ in METHODS[m].stages)
        if needs_regions:
            self.pool()
        results: dict[str, dict[float, list[dict]]] = {}
        for fraction in grid.fractions:
            for name in grid.methods:
                for seed in self.seeds:
                    results.setdefault(name, {}).setdefault(fraction, []).append(
                        self.cell(name, fraction, seed, grid))
        return results


def _ms(values: list[float], scale: float = 100.0) -> str:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float) * scale
    if len(v) == 0:
        return "–"
    return f"{v.mean():.1f}" if len(v) == 1 else f"{v.mean():.1f} ± {v.std(ddof=1):.1f}"


def table(grid: Grid, results: dict[str, dict[float, list[dict]]], per_class: bool = False) -> str:
    """The grid in the paper's layout (values in %, mean ± std over seeds)."""
    if grid.task == "seg":
        cols = [f"IoU/{c}" for c in MAP_CLASSES] + ["mIoU"]
        head = ["Training Data", "Method", *MAP_CLASSES, "Average"]
    else:
        cols = ["NDS", "mAP"] + ([f"AP/{c}" for c in CLASSES] if per_class else [])
        head = ["Training Data", "Method", "Modality", "NDS", "mAP"] + (list(CLASSES) if per_class else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for fraction in grid.fractions:
        for name in grid.methods:
            runs = results.get(name, {}).get(fraction, [])
            if not runs:
                continue
            m = METHODS[name]
            vals = [_ms([r.get(c) for r in runs]) for c in cols]
            lead = [f"{fraction * 100:g}%", m.label] + ([] if grid.task == "seg" else [m.modality])
            lines.append("| " + " | ".join(lead + vals) + " |")
    return "\n".join(lines)


def plot_label_efficiency(grid: Grid, results: dict, path: Path, metric: str = "NDS") -> Path:
    """Paper Fig. 5: the metric against the label fraction, one line per method (error bars over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in grid.methods:
        fr = sorted(results.get(name, {}))
        if not fr:
            continue
        vals = [[r.get(metric, np.nan) * 100 for r in results[name][f]] for f in fr]
        ax.errorbar([f * 100 for f in fr], [np.mean(v) for v in vals],
                    yerr=[np.std(v) if len(v) > 1 else 0 for v in vals], marker="o", capsize=3,
                    label=METHODS[name].label)
    ax.set_xlabel("labelled training data (%)")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(grid.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grid", required=True, choices=sorted(GRIDS), help="which paper grid")
    parser.add_argument("--out", default="work/study", help="study folder (one run folder per cell)")
    parser.add_argument("--dataroot", help="dataset (default: the synthetic world, generated if needed)")
    parser.add_argument("--version", default=None, help="dataset version (default v1.0-synth / v1.0-trainval)")
    parser.add_argument("--config", default="cpu", help="paper or cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--fractions", type=float, nargs="+", help="override the grid's label fractions")
    parser.add_argument("--methods", nargs="+", help="override the grid's methods")
    parser.add_argument("--set", nargs="+", default=[], metavar="SECTION.KEY=VALUE", help="overrides for every run")


def run(args: argparse.Namespace) -> int:
    grid = GRIDS[args.grid]
    if args.fractions or args.methods:
        unknown = [m for m in (args.methods or []) if m not in METHODS]
        if unknown:
            raise CalicoError(f"unknown method(s) {unknown}; known: {sorted(METHODS)}")
        grid = Grid(grid.title, tuple(args.methods or grid.methods), tuple(args.fractions or grid.fractions),
                    grid.task, grid.overrides)
    out = Path(args.out)
    if args.dataroot:
        dataroot, version = args.dataroot, args.version or "v1.0-trainval"
    else:
        from calico.demo import WORLD_VERSION, ensure_world

        dataroot, version = str(out / "world"), args.version or WORLD_VERSION
        ensure_world(Path(dataroot), seed=0, quick=False)
    study = Study(out, args.config, dataroot, version, tuple(args.seeds), args.set)
    results = study.run(grid)
    md = f"## {grid.title}\n\nCommand: `calico study --grid {args.grid} ...` (folder {out})\n\n" + table(grid, results)
    (out / f"{args.grid}.md").write_text(md + "\n")
    (out / f"{args.grid}.json").write_text(json.dumps(
        {m: {str(f): r for f, r in fr.items()} for m, fr in results.items()}, indent=1))
    if grid.task == "det" and len(grid.fractions) > 1:
        plot_label_efficiency(grid, results, out / f"{args.grid}_label_efficiency.png")
    print(md)
    return 0
