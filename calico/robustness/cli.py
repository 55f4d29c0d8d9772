"""``calico robustness``: corruptions (mCE), spoofing (ASR), sensor dropout and calibration errors.

    calico robustness --ckpt K --dataroot D --suite corruptions|spoofing|dropout|calibration|all --out DIR
    calico robustness --ckpt K0 ... --suite corruptions --out scratch/          # the mCE baseline (100 %)
    calico robustness --ckpt K1 ... --suite corruptions --baseline scratch/ --out calico/
    calico robustness --plot scratch/ calico/ --out figs/                      # Fig. 2 and Fig. 3 bars

Writes DIR/robustness.json (all numbers), DIR/robustness.md (tables) and one evaluation folder per
perturbation (devkit metric files).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from calico.errors import CalicoError
from calico.robustness.corruptions import CORRUPTIONS, SEVERITIES
from calico.robustness.spoofing import TRACE_SIZES
from calico.robustness.suite import SUITES, Perturbation
from calico.utils.cliargs import add_set_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", help="fine-tuned detector checkpoint")
    parser.add_argument("--dataroot", help="nuScenes-format dataroot (prepared with `calico prepare`)")
    parser.add_argument("--config", default=None,
                        help="preset (paper, cpu) or config.json; default: config.json next to --ckpt")
    add_set_argument(parser)
    parser.add_argument("--split", default="val")
    parser.add_argument("--suite", default="all", choices=[*SUITES, "all"])
    parser.add_argument("--out", required=True, help="output folder (with --plot: the figures' folder)")
    parser.add_argument("--seed", type=int, default=0, help="seeds every perturbation (per sample index)")
    parser.add_argument("--corruptions", nargs="+", default=list(CORRUPTIONS), choices=list(CORRUPTIONS))
    parser.add_argument("--severities", nargs="+", type=int, default=list(SEVERITIES), choices=list(SEVERITIES))
    parser.add_argument("--baseline", help="robustness.json (or its folder) of the randomly initialised model: "
                                           "adds CE per corruption and mCE")
    parser.add_argument("--label", default="", help="method name shown in the plots (default: --out's name)")
    parser.add_argument("--score-thr", type=float, default=0.3, help="spoofing: detection score threshold")
    parser.add_argument("--max-frames", type=int, default=None, help="spoofing: attack at most this many frames")
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--plot", nargs="+", metavar="RESULTS", help="plot these robustness.json files instead")


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

    return evaluate


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
    from calico.eval.cli import load_finetuned

    cfg, model = load_finetuned(args.ckpt, args.dataroot, args.config, args.set, device=args.device)
    groups = list(SUITES) if args.suite == "all" else [args.suite]
    results: dict[str, Any] = {"label": args.label or out.name, "ckpt": str(args.ckpt), "split": args.split,
                               "seed": args.seed}
    metric_groups = [g for g in groups if g != "spoofing"]
    if metric_groups:
        plan = [p for g in metric_groups
                for p in suite.suite_plan(g, args.seed, args.corruptions, args.severities)]
        results.update(suite.run_metric_suite(plan, make_evaluator(model, cfg, args.split), out))
        if args.baseline and results.get("corruptions"):
            base = plots.load_results([args.baseline])[0][1]
            try:
                suite.add_corruption_errors(results, base)
            except (ValueError, KeyError) as exc:
                raise CalicoError(f"{args.baseline}: {exc}") from exc
    if "spoofing" in groups:
        from calico.data.dataset import NuScenesDataset

        dataset = NuScenesDataset(cfg, split=args.split, with_regions=False)
        results["spoofing"] = suite.run_spoofing(model, dataset, args.seed, TRACE_SIZES, score_thr=args.score_thr,
                                                 max_frames=args.max_frames, device=args.device)
    path = suite.save_results(results, out)
    print(suite.results_table(results))
    print(f"wrote {path}")
    return 0
