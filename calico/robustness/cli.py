"""``calico robustness``: corruptions (mCE), spoofing (ASR), sensor dropout and calibration errors.

    calico robustness --ckpt K --dataroot D --suite corruptions|spoofing|dropout|calibration|all --out DIR
    calico robustness --ckpt K0 ... --suite corruptions --out scratch/          # the mCE baseline (100 %)
    calico robustness --ckpt K1 ... --suite corruptions --baseline scratch/ --out calico/
    calico robustness --plot scratch/ calico/ --out figs/                      # Fig. 2 and Fig. 3 bars
    calico robustness --ckpt K0 ... --protocol robo3d --out r3d_rand/          # Robo3D / nuScenes-C (mRR)
    calico robustness --ckpt K1 ... --protocol robo3d --baseline r3d_rand/ --out r3d_calico/   # + CE, mCE
    calico robustness --ckpt K1 ... --protocol multicorrupt [--baseline REF/] --out mc/        # RA, mRA (+ RRA)
    calico robustness --ckpt K1 ... --protocol calico-physics --out phys/      # our physical set, fingerprinted
    calico robustness --ckpt K10 ... --protocol paper --suite corruptions [--baseline R10/] --out p10/  # §3.4:
    calico robustness --ckpt K50 ... --protocol paper --suite spoofing --out p50/   # 10 % models / 50 % models

With --protocol: one DIR/<corruption>_<level>/corruption.json per corrupted evaluation (metrics, parameters and
the fingerprint of what the corruption changed; the run fails if a corruption changed nothing), and
DIR/robustness.json + DIR/robustness.md with the benchmark's own tables.

Writes DIR/robustness.json (all numbers), DIR/robustness.md (tables) and one evaluation folder per
perturbation (devkit metric files).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from calico.errors import CalicoError
from calico.robustness.corruptions import CORRUPTIONS, SEVERITIES
from calico.robustness.protocols import PROTOCOLS
from calico.robustness.spoofing import TRACE_SIZES
from calico.robustness.suite import SUITES, Perturbation
from calico.utils.cliargs import add_data_arguments, data_overrides

CAMERA_ONLY = ("brightness", "darkness", "camera_motion_blur", "camera_fog", "camera_snow", "missing_camera")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", help="fine-tuned detector checkpoint")
    # --dataroot is not required by the parser: --plot needs none (run() asks for it otherwise)
    add_data_arguments(parser, config_default="the checkpoint's 'config', else the run's config.json next to "
                       "--ckpt", dataroot_default="none; required unless --plot")
    parser.add_argument("--split", default="val")
    parser.add_argument("--suite", default="all", choices=[*SUITES, "all"])
    parser.add_argument("--protocol", choices=PROTOCOLS, default=None,
                        help="a published protocol instead of --suite: robo3d (nuScenes-C, mCE/mRR), multicorrupt "
                             "(RA/mRA, RRA with --baseline), calico-physics (our own physical set) or paper "
                             "(CALICO §3.4: nuScenes-C snow / fog / motion blur on a 10 %% model, CE against "
                             "--baseline; with --suite spoofing or all: 60/100/200-point traces 10 m ahead, "
                             "meant for a 50 %% model)")
    parser.add_argument("--out", required=True, help="output folder (with --plot: the figures' folder)")
    parser.add_argument("--seed", type=int, default=0, help="seeds every perturbation (per sample index)")
    parser.add_argument("--corruptions", nargs="+", default=None,
                        help=f"default: all of the suite's / protocol's (--suite corruptions: {list(CORRUPTIONS)})")
    parser.add_argument("--severities", nargs="+", type=int, default=None,
                        help=f"default: all levels (--suite corruptions: {list(SEVERITIES)}; protocols: 1 2 3)")
    parser.add_argument("--lidar-beams", type=int, default=32,
                        help="--protocol: beams of the spinning LiDAR, for ring recovery (nuScenes HDL-32E: 32)")
    parser.add_argument("--lidar-elevation", type=float, nargs=2, default=(-30.67, 10.67), metavar=("MIN", "MAX"),
                        help="--protocol: elevation (deg) of the lowest and highest beam, evenly spaced between")
    parser.add_argument("--baseline", help="robustness.json (or its folder) of the randomly initialised model: "
                                           "adds CE per corruption and mCE")
    parser.add_argument("--label", default="", help="method name shown in the plots (default: --out's name)")
    parser.add_argument("--score-thr", type=float, default=0.3, help="spoofing: detection score threshold")
    parser.add_argument("--max-frames", type=int, default=None, help="spoofing: attack at most this many frames")
    parser.add_argument("--spoof-every-sweep", action="store_true",
                        help="spoofing: put the trace in every sweep of the input (a static fake car, a spoofer "
                             "that keeps firing), not only in the keyframe scan as the paper's digital attack does")
    parser.add_argument("--spoof-template", metavar="NPZ",
                        help="spoofing: the car trace source (`python -m calico.robustness.make_spoof_template "
                             "--dataroot D --version V --out NPZ`: a car of the evaluated data's own LiDAR); "
                             "default: the shipped real nuScenes car")
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--plot", nargs="+", metavar="RESULTS", help="plot these robustness.json files instead")


def _spoof_template(args: argparse.Namespace) -> tuple[Any, Any] | None:
    """``--spoof-template`` read and checked (DataError naming the file), None for the shipped one."""
    from calico.robustness.spoofing import read_template

    path = args.spoof_template
    return read_template(path, min_points=max(TRACE_SIZES)) if path else None


def _run_spoofing(args: argparse.Namespace, model: Any, cfg: Any, results: dict[str, Any]) -> None:
    """The spoofing attack on ``args.split`` with the CLI's settings, into ``results`` (both entry paths)."""
    from calico.data.dataset import NuScenesDataset
    from calico.robustness import suite

    dataset = NuScenesDataset(cfg, split=args.split, with_regions=False)
    results["spoofing"] = suite.run_spoofing(model, dataset, args.seed, TRACE_SIZES, score_thr=args.score_thr,
                                             max_frames=args.max_frames, device=args.device,
                                             every_sweep=args.spoof_every_sweep, template=_spoof_template(args))
    results["spoofing_template"] = args.spoof_template or "shipped (calico/robustness/car_front_template.npz)"


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def make_evaluator(model: Any, cfg: Any, split: str) -> Any:
    """``evaluate(perturbation, out_dir)`` through ``calico.eval.run_evaluation`` with the perturbation as
    the dataset transform (clean when None), so clean numbers are exactly ``calico evaluate``'s. The dataset
    and the devkit tables are loaded once for all perturbations."""
    from calico.data.dataset import NuScenesDataset
    from calico.data.prepare import open_nuscenes
    from calico.eval import run_evaluation

    dataset = NuScenesDataset(cfg, split=split)
    nusc = open_nuscenes(cfg.data.dataroot, cfg.data.version)

    def evaluate(pert: Perturbation | None, out_dir: Path) -> dict[str, float]:
        summary = run_evaluation(model, cfg, split, out_dir, dataset=dataset, nusc=nusc, transform=pert)
        return {k: float(v) for k, v in summary.items() if isinstance(v, (int, float))}

    evaluate.dataset = dataset  # type: ignore[attr-defined]  # the frames temporal misalignment reads
    return evaluate


def paper_parts(args: argparse.Namespace, cfg: Any) -> list[str]:
    """Which parts of the paper's protocol ``--suite`` asks for, with a note when the checkpoint's label
    fraction is not the one the paper evaluates that part on (10 % corruptions, 50 % spoofing)."""
    from calico.robustness.protocols import PAPER_FRACTIONS

    if args.suite not in ("all", *PAPER_FRACTIONS):
        raise CalicoError(f"--protocol paper has the parts {list(PAPER_FRACTIONS)} (--suite all runs both); "
                          f"got --suite {args.suite}")
    parts = list(PAPER_FRACTIONS) if args.suite == "all" else [args.suite]
    fraction = None if args.config else cfg.finetune.fraction  # the checkpoint's own config knows it
    for part in parts:
        if fraction is None:
            print(f"note: the paper evaluates {part} on a model fine-tuned with {PAPER_FRACTIONS[part]:.0%} of the "
                  "labels; with --config the checkpoint's label fraction is not checked")
        elif abs(fraction - PAPER_FRACTIONS[part]) > 1e-9:
            print(f"note: the paper evaluates {part} on a model fine-tuned with {PAPER_FRACTIONS[part]:.0%} of the "
                  f"labels; {args.ckpt} was fine-tuned with {fraction:.0%}")
    return parts


def run_protocol_cli(args: argparse.Namespace, model: Any, cfg: Any, out: Path) -> int:

    from calico.robustness import plots, protocols

    parts = paper_parts(args, cfg) if args.protocol == "paper" else ["corruptions"]
    if "corruptions" not in parts:  # the paper's spoofing part alone
        results = {"protocol": "paper", "label": args.label or out.name, "ckpt": str(args.ckpt),
                   "split": args.split, "seed": args.seed}
        return _finish_protocol(args, model, cfg, out, results, parts)
    try:
        from calico.robustness.robo3d import BeamLayout

        layout = BeamLayout(args.lidar_beams, *args.lidar_elevation)
        plan = protocols.protocol_plan(args.protocol, args.seed, args.corruptions, args.severities, layout)
    except ValueError as exc:
        raise CalicoError(str(exc)) from exc
    evaluate = make_evaluator(model, cfg, args.split)
    dataset = evaluate.dataset  # type: ignore[attr-defined]
    if args.protocol == "multicorrupt" and not getattr(dataset, "load_images", True):
        skipped = sorted({p.params["corruption"] for p in plan if p.params["corruption"] in CAMERA_ONLY})
        plan = [p for p in plan if p.params["corruption"] not in CAMERA_ONLY]
        if skipped:
            print(f"the model has no camera branch (no images loaded): skipped {skipped}")
    try:
        results = protocols.run_protocol(args.protocol, plan, evaluate, out, source=dataset)
    except protocols.NothingChanged as exc:
        raise CalicoError(str(exc)) from exc
    results.update({"label": args.label or out.name, "ckpt": str(args.ckpt), "split": args.split, "seed": args.seed})
    if args.baseline:
        base = plots.load_results([args.baseline])[0][1]
        try:
            protocols.add_baseline(results, base)
        except (ValueError, KeyError) as exc:
            raise CalicoError(f"{args.baseline}: {exc}") from exc
    return _finish_protocol(args, model, cfg, out, results, parts)


def _finish_protocol(args: argparse.Namespace, model: Any, cfg: Any, out: Path, results: dict[str, Any],
                     parts: list[str]) -> int:
    """The paper's spoofing part when asked for, then robustness.json / robustness.md."""
    import json

    from calico.robustness import protocols, suite

    tables = [protocols.protocol_tables(results)] if "corruptions" in parts else []
    if "spoofing" in parts:
        _run_spoofing(args, model, cfg, results)
        tables.append(suite.spoofing_table(results["spoofing"]))
    if args.protocol == "paper":
        results["paper_fractions"] = {p: protocols.PAPER_FRACTIONS[p] for p in parts}
        results["finetune_fraction"] = None if args.config else cfg.finetune.fraction
    out.mkdir(parents=True, exist_ok=True)
    path = out / "robustness.json"
    path.write_text(json.dumps(results, indent=2, default=float))
    table = "\n".join(tables)
    (out / "robustness.md").write_text(table + "\n")
    print(table)
    print(f"wrote {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    from calico.robustness import plots, suite
    from calico.utils.runinfo import writable_dir

    out = writable_dir(args.out)
    if args.plot:
        try:
            results = plots.load_results(args.plot)
        except ValueError as exc:
            raise CalicoError(str(exc)) from exc
        out.mkdir(parents=True, exist_ok=True)
        made = []
        for fn, name in ((plots.plot_asr, "fig2_asr.png"), (plots.plot_ce, "fig3_ce.png")):
            try:
                made.append(fn(results, out / name))
            except ValueError as exc:
                print(f"skipped {name}: {exc}")
        for p in made:
            print(f"wrote {p}")
        return 0 if made else 1
    if not args.ckpt or not args.dataroot:
        raise CalicoError("--ckpt and --dataroot are required (or --plot RESULTS...)")
    _spoof_template(args)  # a bad --spoof-template fails now, not after the corruption runs
    from calico.eval.cli import load_finetuned

    cfg, model = load_finetuned(args.ckpt, args.dataroot, args.config, data_overrides(args) + args.set, args.version,
                                args.device)
    if args.protocol:
        return run_protocol_cli(args, model, cfg, out)
    bad = sorted(set(args.corruptions or ()) - set(CORRUPTIONS)) + \
        [s for s in (args.severities or ()) if s not in SEVERITIES]
    if bad:
        raise CalicoError(f"--suite takes corruptions {list(CORRUPTIONS)} and severities {list(SEVERITIES)}; "
                          f"got {bad} (the Robo3D / MultiCorrupt names need --protocol)")
    args.corruptions = args.corruptions or list(CORRUPTIONS)
    args.severities = args.severities or list(SEVERITIES)
    groups = list(SUITES) if args.suite == "all" else [args.suite]
    results: dict[str, Any] = {"label": args.label or out.name, "ckpt": str(args.ckpt), "split": args.split,
                               "seed": args.seed}
    metric_groups = [g for g in groups if g != "spoofing"]
    if metric_groups:
        plan = [p for g in metric_groups
                for p in suite.suite_plan(g, args.seed, args.corruptions, args.severities)]
        from calico.robustness.protocols import NothingChanged

        try:
            results.update(suite.run_metric_suite(plan, make_evaluator(model, cfg, args.split), out))
        except NothingChanged as exc:
            raise CalicoError(str(exc)) from exc
        if args.baseline and results.get("corruptions"):
            base = plots.load_results([args.baseline])[0][1]
            try:
                suite.add_corruption_errors(results, base)
            except (ValueError, KeyError) as exc:
                raise CalicoError(f"{args.baseline}: {exc}") from exc
    if "spoofing" in groups:
        _run_spoofing(args, model, cfg, results)
    path = suite.save_results(results, out)
    print(suite.results_table(results))
    print(f"wrote {path}")
    return 0
