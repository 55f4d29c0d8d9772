"""``calico study``: the paper's grids (methods × label fractions × seeds), one run folder per cell.

Each cell is ``calico finetune`` from a method's pre-trained checkpoint (pre-training runs are shared
between cells) followed by ``calico evaluate`` on the val split. A cell whose ``eval/metrics.json`` exists is
skipped, so an interrupted study resumes where it stopped. Results are aggregated into the paper's table
layouts with mean ± std over seeds, plus the label-efficiency plot (paper Fig. 5).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calico.apps.grids import GRIDS, METHODS, TUNE_CANDIDATES, Grid, Method, baseline_of, chain_baselines_of  # noqa: F401 (re-exported)
from calico.config import CLASSES, MAP_CLASSES, get_config
from calico.errors import CalicoError
from calico.eval.stats import paired_difference, summarize
from calico.pretrain.methods import stage_class
from calico.utils.cliargs import add_data_arguments

# the world `calico study` generates when no --dataroot is given (--world-scenes overrides the scene count)
STUDY_WORLD = {"scenes": 8, "samples_per_scene": 10, "sweeps": 3, "image_size": (225, 400)}
STUDY_CONFIG = "cpu"  # the preset of every run when --config is not given


def _call(argv: list[str]) -> None:
    from calico.cli import main

    print("$ calico " + " ".join(argv), flush=True)
    rc = main(argv)
    if rc:
        raise CalicoError(f"`calico {' '.join(argv)}` failed with exit code {rc}")


@dataclass
class Job:
    """One `calico` command of a study; ``marker`` exists once it has finished (then it is skipped)."""

    name: str
    argv: list[str]
    marker: Path | None = None  # None: always run (the command itself is resumable, e.g. `calico pool`)
    deps: list[str] = field(default_factory=list)
    resume_from: Path | None = None  # when this exists but the marker does not, add --resume

    def done(self) -> bool:
        return self.marker is not None and self.marker.exists()

    def command(self) -> list[str]:
        resume = self.resume_from is not None and self.resume_from.exists()
        return self.argv + (["--resume"] if resume else [])


def run_jobs(jobs: list[Job], parallel: int = 1, log_dir: Path | None = None, threads: int = 1) -> None:
    """Run jobs in dependency order. ``parallel == 1``: in this process. Otherwise up to ``parallel``
    subprocesses with ``threads`` BLAS/torch threads each (oversubscribing a small machine's cores with
    several 2-thread trainings made each step 3-5x slower), logs in ``log_dir/<job>.log``."""
    pending = [j for j in jobs if not j.done()]
    finished = {j.name for j in jobs if j.done()}
    if parallel <= 1:
        for job in pending:
            _call(job.command())
            _mark(job)
        return
    import os
    import subprocess

    log_dir = Path(log_dir or ".")
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    running: dict[str, tuple[subprocess.Popen, float, Job]] = {}
    # Start jobs that unblock the most others first (pre-training before the cells that wait for it).
    dependants = {j.name: 0 for j in jobs}
    for j in jobs:
        stack = list(j.deps)
        while stack:
            d = stack.pop()
            dependants[d] = dependants.get(d, 0) + 1
            stack.extend(next((x.deps for x in jobs if x.name == d), []))
    pending.sort(key=lambda j: -dependants[j.name])
    while pending or running:
        for job in [j for j in pending if all(d in finished for d in j.deps)]:
            if len(running) >= parallel:
                break
            log = open(log_dir / f"{job.name.replace('/', '_')}.log", "w")  # noqa: SIM115 (closed on exit)
            print(f"[{time.strftime('%H:%M:%S')}] start {job.name}: calico {' '.join(job.command())}", flush=True)
            proc = subprocess.Popen([sys.executable, "-m", "calico", *job.command()], stdout=log,
                                    stderr=subprocess.STDOUT, env=env)
            running[job.name] = (proc, time.time(), job)
            pending.remove(job)
        if not running:
            missing = {d for j in pending for d in j.deps} - finished
            raise CalicoError(f"jobs wait for unknown or failed dependencies: {sorted(missing)}")
        time.sleep(1.0)
        for name, (proc, t0, job) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            if proc.returncode:
                for p, _, _ in running.values():
                    p.terminate()
                raise CalicoError(f"job {name} failed (exit {proc.returncode}); see {log_dir / (name.replace('/', '_') + '.log')}")
            _mark(job)
            finished.add(name)
            print(f"[{time.strftime('%H:%M:%S')}] done  {name} in {time.time() - t0:.0f} s", flush=True)


def _mark(job: Job) -> None:
    if job.marker is not None and job.marker.suffix != ".json":  # metrics files mark themselves
        job.marker.parent.mkdir(parents=True, exist_ok=True)
        job.marker.write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))


class Study:
    """Plans, runs and aggregates one grid under ``out``; every job is skipped when its result exists."""

    def __init__(self, out: Path, config: str, dataroot: str, version: str, seeds: tuple[int, ...],
                 overrides: list[str], pretrain_overrides: list[str] | None = None,
                 finetune_overrides: list[str] | None = None, stage_overrides: dict[str, list[str]] | None = None,
                 pretrain_seed: int | None = None, method_overrides: dict[str, list[str]] | None = None,
                 lidar_pretrain_split: str = "train", cache_dir: str | None = None):
        """``overrides`` go to every run, ``pretrain_overrides`` / ``finetune_overrides`` to every run of that
        kind, ``stage_overrides[stage]`` to the pre-training runs of one stage (applied last),
        ``method_overrides[method]`` to that method's fine-tuning runs (its tuned settings).
        ``pretrain_seed``: every fine-tuning seed starts from the pre-training run of this seed (one
        pre-training per method, as a paper's checkpoint); None: one pre-training per seed.
        ``lidar_pretrain_split``: what stages without images pre-train on (e.g. ``train+unlabeled``, the
        synthetic world's LiDAR-heavy pool); stages that read images stay on ``train``. ``cache_dir``: the
        runs' ``--cache-dir`` (None: each command's default)."""
        self.out, self.config, self.dataroot, self.version = Path(out), config, dataroot, version
        self.cache_dir = cache_dir
        self.seeds, self.overrides = seeds, list(overrides)
        self.pre_over = list(pretrain_overrides or [])
        self.ft_over = list(finetune_overrides or [])
        self.stage_over = dict(stage_overrides or {})
        self.pretrain_seed = pretrain_seed
        self.method_over = dict(method_overrides or {})
        self.lidar_split = lidar_pretrain_split

    def _pretrain_split(self, stage: str) -> str:
        return "train" if stage_class(stage).needs_images else self.lidar_split

    def _common(self) -> list[str]:
        return ["--config", self.config, "--dataroot", self.dataroot, "--version", self.version,
                *(["--cache-dir", self.cache_dir] if self.cache_dir else [])]

    def pretrain_dir(self, method: Method, seed: int, upto: int | None = None) -> Path | None:
        """Run folder of the method's pre-training chain (up to stage ``upto``); None for random init."""
        stages = method.stages[: upto] if upto is not None else method.stages
        if not stages:
            return None
        seed = seed if self.pretrain_seed is None else self.pretrain_seed
        # the split is in the name when it is not train: a resumed study never reuses another pool's run
        chain = "+".join(stage + "".join(f"[{s}]" for s in sets)
                         + ("" if self._pretrain_split(stage) == "train" else f"@{self._pretrain_split(stage)}")
                         for stage, sets in stages)
        return self.out / "pretrain" / f"{chain}-s{seed}"

    def cell_dir(self, name: str, fraction: float, seed: int) -> Path:
        return self.out / "cells" / name / f"f{int(round(fraction * 100)):03d}" / f"s{seed}"

    def plan(self, grid: Grid, tune: bool = False) -> list[Job]:
        """Every job of the grid: pooling, shared pre-training chains, then fine-tune + evaluate per cell.

        ``tune``: instead of the grid's cells, one fine-tuning per method and ``TUNE_CANDIDATES`` entry at the
        grid's first fraction and the first seed, fitted on ``train:fit`` and scored on ``train:holdout``."""
        jobs: dict[str, Job] = {}
        if any(stage_class(s).needs_regions for m in grid.methods for s, _ in METHODS[m].stages):
            # the pool must see the runs' data/pooling overrides, or pretrain refuses its regions
            jobs["pool"] = Job("pool", ["pool", *self._common(), *(["--set", *self.overrides] if self.overrides else [])])
        for name in grid.methods:
            method = METHODS[name]
            for seed in self.seeds[:1] if tune else self.seeds:
                prev = None
                for k, (stage, sets) in enumerate(method.stages):
                    run = self.pretrain_dir(method, seed, k + 1)
                    key = f"pretrain/{run.name}"
                    if key not in jobs:
                        argv = ["pretrain", "--stage", stage, *self._common(), "--out", str(run), "--seed", str(seed),
                                "--split", self._pretrain_split(stage)]
                        if prev is not None:
                            argv += ["--init", str(prev / "last.pt")]
                        sets_all = [*self.overrides, *self.pre_over, *self.stage_over.get(stage, []), *sets]
                        if sets_all:
                            argv += ["--set", *sets_all]
                        deps = ([f"pretrain/{prev.name}"] if prev is not None else []) + \
                            (["pool"] if stage_class(stage).needs_regions else [])
                        jobs[key] = Job(key, argv, run / "DONE", deps, resume_from=run / "last.pt")
                    prev = run
                if tune:
                    kind = "pretrained" if prev is not None else "random"
                    for k, cand in enumerate(TUNE_CANDIDATES[kind]):
                        self._cell_jobs(jobs, self.tune_dir(name, k), name, grid.fractions[0], seed, prev,
                                        [*grid.overrides, *cand, "finetune.train_split=train:fit"], "train:holdout")
                    continue
                for fraction in grid.fractions:
                    self._cell_jobs(jobs, self.cell_dir(name, fraction, seed), name, fraction, seed, prev,
                                    [*grid.overrides, *self.method_over.get(name, [])], "val")
        return list(jobs.values())

    def _cell_jobs(self, jobs: dict[str, Job], cell: Path, name: str, fraction: float, seed: int,
                   init: Path | None, sets: list[str], split: str) -> None:
        """Fine-tune (from ``init``'s last.pt) + evaluate on ``split`` into ``cell``."""
        ft = cell / "finetune"
        argv = ["finetune", *self._common(), "--out", str(ft), "--fraction", str(fraction),
                "--modality", METHODS[name].modality, "--seed", str(seed), "--no-eval"]
        if init is not None:
            argv += ["--init", str(init / "last.pt")]
        sets = [*self.overrides, *self.ft_over, *sets]
        if sets:
            argv += ["--set", *sets]
        rel = cell.relative_to(self.out)
        key = f"finetune/{rel}"
        jobs[key] = Job(key, argv, ft / "DONE", [f"pretrain/{init.name}"] if init else [],
                        resume_from=ft / "last.pt")
        ev = ["evaluate", "--ckpt", str(ft / "last.pt"), *self._common()[2:], "--split", split,
              "--out", str(cell / "eval")]
        jobs[f"evaluate/{rel}"] = Job(f"evaluate/{rel}", ev, cell / "eval" / "metrics.json", [key])

    def tune_dir(self, name: str, candidate: int) -> Path:
        return self.out / "tune" / name / f"c{candidate}"

    def tuned(self, grid: Grid) -> dict[str, dict]:
        """Per method the best ``TUNE_CANDIDATES`` entry by held-out mAP (then NDS):
        ``{method: {"sets": [...], "mAP": .., "NDS": .., "all": [(sets, mAP, NDS), ...], "fraction": f}}``.

        ``fraction``: the label fraction the tuning cells actually ran at, read from their run folders (None
        when unreadable). A study tunes once per folder, at the first fraction of the run that tuned; a resumed
        run with other fractions reuses those cells, so the report must not name its own first fraction."""
        best: dict[str, dict] = {}
        for name in grid.methods:
            kind = "pretrained" if METHODS[name].stages else "random"
            scored = []
            for k, cand in enumerate(TUNE_CANDIDATES[kind]):
                path = self.tune_dir(name, k) / "eval" / "metrics.json"
                if path.exists():
                    m = json.loads(path.read_text())
                    scored.append((list(cand), m.get("mAP", float("nan")), m.get("NDS", float("nan"))))
            if scored:
                sets, mAP, nds = max(scored, key=lambda x: (np.nan_to_num(x[1], nan=-1), np.nan_to_num(x[2], nan=-1)))
                best[name] = {"sets": sets, "mAP": mAP, "NDS": nds, "all": scored,
                              "fraction": self._tune_fraction(name, kind)}
        return best

    def _tune_fraction(self, name: str, kind: str) -> float | None:
        """The label fraction of ``name``'s tuning cells (their resolved ``config.json``); None if unknown."""
        fractions = set()
        for k in range(len(TUNE_CANDIDATES[kind])):
            path = self.tune_dir(name, k) / "finetune" / "config.json"
            try:
                fractions.add(float(json.loads(path.read_text())["finetune"]["fraction"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return fractions.pop() if len(fractions) == 1 else None

    def results(self, grid: Grid) -> dict[str, dict[float, list[dict]]]:
        """Metrics of the grid's finished cells: {method: {fraction: [metrics per seed]}}."""
        results: dict[str, dict[float, list[dict]]] = {}
        for fraction in grid.fractions:
            for name in grid.methods:
                for seed in self.seeds:
                    path = self.cell_dir(name, fraction, seed) / "eval" / "metrics.json"
                    if path.exists():
                        metrics = {**json.loads(path.read_text()), "seed": seed}
                        results.setdefault(name, {}).setdefault(fraction, []).append(metrics)
        return results

    def missing(self, grid: Grid) -> list[str]:
        """The grid's cells without an evaluation, as ``method/fXXX/sN``."""
        return [str(self.cell_dir(n, f, s).relative_to(self.out / "cells")) for f in grid.fractions
                for n in grid.methods for s in self.seeds
                if not (self.cell_dir(n, f, s) / "eval" / "metrics.json").exists()]

    def run(self, grid: Grid, parallel: int = 1, threads: int = 1) -> dict[str, dict[float, list[dict]]]:
        run_jobs(self.plan(grid), parallel, self.out / "logs", threads)
        return self.results(grid)


def _ms(values: list[float], scale: float = 100.0) -> str:
    s = summarize(values)
    if s.n == 0:
        return "–"
    return f"{s.mean * scale:.1f}" if s.n == 1 else f"{s.mean * scale:.1f} ± {s.std * scale:.1f}"


def paired_cells(grid: Grid, results: dict[str, dict[float, list[dict]]]):
    """``(fraction, method, baseline, runs, baseline_runs)`` for each pre-trained method of ``grid`` whose
    random init of the same modality has results at that fraction, then against each method of the grid
    whose chain its own extends (``chain_baselines_of``: CALICO vs PRC + random camera isolates RAD): the
    pairs ``paired_table`` compares. Fractions ascend whatever order ``--fractions`` gave (its first one is
    where ``--tune`` tunes)."""
    for fraction in sorted(grid.fractions):
        for name in grid.methods:
            runs = results.get(name, {}).get(fraction, [])
            for base in filter(None, [baseline_of(name, grid.methods), *chain_baselines_of(name, grid.methods)]):
                ref = results.get(base, {}).get(fraction, [])
                if runs and ref:
                    yield fraction, name, base, runs, ref


def paired_table(grid: Grid, results: dict[str, dict[float, list[dict]]],
                 metrics: tuple[str, ...] = ("mAP", "NDS", "AP/car", "AP/pedestrian")) -> str:
    """Each pre-trained method against the random init of its modality (and the shorter chains it extends,
    ``paired_cells``): the paired difference per seed, its mean and 95 % t-interval (values in points of %);
    ``*`` marks an interval above zero."""
    head = ["Training Data", "Method", "vs", "seeds"] + [f"Δ {m}" for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for fraction, name, base, runs, ref in paired_cells(grid, results):
        cells = []
        for metric in metrics:
            d = paired_difference({r["seed"]: r.get(metric) for r in runs}, {r["seed"]: r.get(metric) for r in ref})
            cells.append(d.text() + (" *" if d.above_zero else ""))
        n = len({r["seed"] for r in runs} & {r["seed"] for r in ref})
        lines.append("| " + " | ".join([f"{fraction * 100:g}%", METHODS[name].label, METHODS[base].label,
                                        str(n), *cells]) + " |")
    return "\n".join(lines)


def table(grid: Grid, results: dict[str, dict[float, list[dict]]], per_class: bool = False) -> str:
    """The grid in the paper's layout (values in %, mean ± std over seeds)."""
    if grid.task == "seg":
        cols = [f"IoU/{c}" for c in MAP_CLASSES] + ["mIoU"]
        head = ["Training Data", "Method", *MAP_CLASSES, "Average"]
    else:
        cols = ["NDS", "mAP"] + ([f"AP/{c}" for c in CLASSES] if per_class else [])
        head = ["Training Data", "Method", "Modality", "NDS", "mAP"] + (list(CLASSES) if per_class else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for fraction in sorted(grid.fractions):  # ascending, as the paper's tables
        for name in grid.methods:
            runs = results.get(name, {}).get(fraction, [])
            if not runs:
                continue
            m = METHODS[name]
            vals = [_ms([r.get(c) for r in runs]) for c in cols]
            lead = [f"{fraction * 100:g}%", m.label] + ([] if grid.task == "seg" else [m.modality])
            lines.append("| " + " | ".join(lead + vals) + " |")
    return "\n".join(lines)


def _probe_key(ckpt: str, features: str) -> str:
    """A probe result's key in ``probe.json``: the checkpoint for F^LiDAR (the keys before camera probes
    existed), ``<ckpt>#camera`` for F^Camera."""
    return ckpt if features == "lidar" else f"{ckpt}#camera"


def probe_table(study: Study, grid: Grid, run_missing: bool = True) -> str:
    """``calico probe`` (linear probe on frozen features, balanced accuracy on val) for random init and each
    method's pre-training, cached in ``<out>/probe.json``; the pre-training seed's checkpoints. F^LiDAR for
    every chain; F^Camera too for chains with a stage that trains the camera (RAD, the distillations), whose
    F^LiDAR is the frozen teacher's and would only repeat the LiDAR row."""
    from calico.eval.probe import run_probe

    seed = study.pretrain_seed if study.pretrain_seed is not None else study.seeds[0]
    rows = {"lidar": {"random": "Rand. Init."}, "camera": {}}
    for name in grid.methods:
        m = METHODS[name]
        run = study.pretrain_dir(m, seed)
        if run is None:
            continue
        label = " + ".join(stage for stage, _ in m.stages)
        rows["lidar"].setdefault(str(run / "last.pt"), label)
        if "C" in m.modality and any(stage_class(stage).needs_images for stage, _ in m.stages):
            rows["camera"].setdefault("random", "Rand. Init.")
            rows["camera"].setdefault(str(run / "last.pt"), label)
    cache = study.out / "probe.json"
    done = json.loads(cache.read_text()) if cache.exists() else {}
    for features, ckpts in rows.items():
        todo = [c for c in ckpts if _probe_key(c, features) not in done]
        if not todo or not run_missing:
            continue
        cfg = get_config(study.config, [f"data.dataroot={study.dataroot}", f"data.version={study.version}",
                                         *([f"data.cache_dir={study.cache_dir}"] if study.cache_dir else []),
                                         f"seed={seed}", *(["model.modality=L+C"] if features == "camera" else []),
                                         *study.overrides])
        done.update({_probe_key(c, features): r for c, r in run_probe(cfg, todo, features=features, seed=seed).items()})
        cache.write_text(json.dumps(done, indent=1, default=lambda x: None))
    lines = []
    for features, ckpts in rows.items():
        if not ckpts:
            continue
        name = "F^LiDAR" if features == "lidar" else "F^Camera (the camera branch alone, lifted to BEV)"
        lines += [f"Linear probe on frozen {name} (`calico probe --features {features}`: occupied BEV cell -> "
                  "background / car / pedestrian / other, fitted on 12 train keyframes, balanced accuracy on val):",
                  "", "| pre-training | balanced accuracy | recall bg / car / ped / other |", "|---|---:|---|"]
        for ckpt, label in ckpts.items():
            if _probe_key(ckpt, features) not in done:  # --report-only: not probed yet
                lines.append(f"| {label} | – | not probed |")
                continue
            r = done[_probe_key(ckpt, features)]
            rec = " / ".join("–" if v is None or v != v else f"{v:.2f}" for v in r["recall"].values())  # NaN: none in val
            lines.append(f"| {label} | {r['balanced_accuracy']:.3f} | {rec} |")
        lines.append("")
    return "\n".join(lines).rstrip()


def tuning_table(grid: Grid, tuned: dict[str, dict]) -> str:
    """What each method chose on the held-out train scenes (first seed), at the fraction its tuning cells
    ran at (``Study.tuned``; a method whose cells do not say is reported at ``grid.fractions[0]``, where a
    fresh study tunes). The chosen setting serves every fraction of the study."""
    def at(t: dict) -> float:
        return grid.fractions[0] if t.get("fraction") is None else t["fraction"]

    fractions = sorted({at(t) for t in tuned.values()}) or [grid.fractions[0]]
    where = " / ".join(f"{f * 100:g}%" for f in fractions)
    lines = [f"Tuning on train:fit -> train:holdout at {where} labels, the setting then used at every fraction "
             "(held-out mAP / NDS in % per candidate; the chosen one in bold):", "",
             "| Method | candidates | chosen |", "|---|---|---|"]
    for name, t in tuned.items():
        cands = "; ".join(f"{' '.join(s)}: {m * 100:.1f} / {n * 100:.1f}" for s, m, n in t["all"])
        tag = f" (at {at(t) * 100:g}%)" if len(fractions) > 1 else ""
        lines.append(f"| {METHODS[name].label}{tag} | {cands} | **{' '.join(t['sets'])}** |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grid", required=True, choices=sorted(GRIDS), help="which paper grid")
    parser.add_argument("--out", default="work/study", help="study folder (one run folder per cell)")
    add_data_arguments(parser, config_default=STUDY_CONFIG,
                       dataroot_default="the synthetic world in --out/world, generated if needed (its version: "
                                        "v1.0-synth)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--fractions", type=float, nargs="+", help="override the grid's label fractions")
    parser.add_argument("--methods", nargs="+", help="override the grid's methods")
    parser.add_argument("--pretrain-set", nargs="+", action="extend", default=[], metavar="SECTION.KEY=VALUE",
                        help="overrides for the pre-training runs only (e.g. pretrain.max_steps=600)")
    parser.add_argument("--finetune-set", nargs="+", action="extend", default=[], metavar="SECTION.KEY=VALUE",
                        help="overrides for the fine-tuning runs only")
    parser.add_argument("--pretrain-seed", type=int,
                        help="one pre-training per method (this seed) shared by every fine-tuning seed "
                             "(default: one pre-training per seed)")
    parser.add_argument("--tune", action="store_true",
                        help="first pick each method's fine-tuning lr setting on train:fit -> train:holdout "
                             "(study.TUNE_CANDIDATES, first fraction, first seed), then run the grid with it")
    parser.add_argument("--lidar-pretrain-split", default="train",
                        help="what pre-training stages without images use (e.g. train+unlabeled: a world made by "
                             "`calico synth --unlabeled-scenes N`); stages that read images stay on train")
    parser.add_argument("--world-scenes", type=int, default=0,
                        help="scenes of the generated synthetic world (default: 40 for --grid efficiency, else 8)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs in parallel as subprocesses (default 1: in this process)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per parallel job")
    parser.add_argument("--report-only", action="store_true",
                        help="write the tables and figure from the cells already finished in --out and run nothing "
                             "(no tuning, cell or probe): for a grid whose fractions have different seeds; the "
                             "report lists the cells it lacks")


def run(args: argparse.Namespace) -> int:
    grid = GRIDS[args.grid]
    if args.fractions or args.methods:
        unknown = [m for m in (args.methods or []) if m not in METHODS]
        if unknown:
            raise CalicoError(f"unknown method(s) {unknown}; known: {sorted(METHODS)}")
        grid = Grid(grid.title, tuple(args.methods or grid.methods), tuple(args.fractions or grid.fractions),
                    grid.task, grid.overrides)
    out = Path(args.out)
    config = args.config or STUDY_CONFIG
    if args.dataroot:
        try:
            version = args.version or get_config(config).data.version
        except (ValueError, KeyError) as exc:
            raise CalicoError(f"--config: {exc}") from exc
        dataroot = args.dataroot
    else:
        from calico.data.synth.reuse import WORLD_VERSION, ensure_world

        dataroot, version = str(out / "world"), args.version or WORLD_VERSION
        scenes = args.world_scenes or (40 if args.grid == "efficiency" else STUDY_WORLD["scenes"])
        ensure_world(Path(dataroot), {**STUDY_WORLD, "scenes": scenes, "seed": 0})
    study = Study(out, config, dataroot, version, tuple(args.seeds), args.set, args.pretrain_set,
                  args.finetune_set, pretrain_seed=args.pretrain_seed,
                  lidar_pretrain_split=args.lidar_pretrain_split, cache_dir=args.cache_dir)
    md = f"## {grid.title}\n\nCommand: `calico {' '.join(sys.argv[1:])}` (folder {out})\n\n"
    if args.tune:
        if not args.report_only:
            run_jobs(study.plan(grid, tune=True), args.jobs, out / "logs", args.threads)
        tuned = study.tuned(grid)
        study.method_over = {m: t["sets"] for m, t in tuned.items()}
        (out / "tuning.json").write_text(json.dumps(tuned, indent=1, default=float))
        md += tuning_table(grid, tuned) + "\n\n"
    if args.report_only:
        results = study.results(grid)
        missing = study.missing(grid)
        if missing:
            md += (f"Report only: {len(missing)} of {len(grid.methods) * len(grid.fractions) * len(study.seeds)} "
                   f"cells are not finished and are left out: {', '.join(missing)}\n\n")
    else:
        results = study.run(grid, parallel=args.jobs, threads=args.threads)
    md += table(grid, results, per_class=True)
    if any(METHODS[m].stages for m in grid.methods):
        md += "\n\n" + probe_table(study, grid, run_missing=not args.report_only)
        md += ("\n\nPaired difference to the random init of the same modality, and to a shorter pre-training chain "
               "the method extends (same fine-tuning seed: data order, "
               "head initialisation, augmentation), mean [95 % t-interval over seeds], points of %; "
               "* = interval above zero:\n\n" + paired_table(grid, results))
    (out / f"{args.grid}.md").write_text(md + "\n")
    (out / f"{args.grid}.json").write_text(json.dumps(
        {m: {str(f): r for f, r in fr.items()} for m, fr in results.items()}, indent=1))
    if grid.task == "det" and len(grid.fractions) > 1:
        from calico.apps.report import plot_label_efficiency

        plot_label_efficiency(grid, results, out / f"{args.grid}_label_efficiency.png", metric="mAP")
    print(md)
    return 0
