"""The robustness suite: on-the-fly perturbations of any split, and the runs that score them.

A :class:`Perturbation` is a dataset transform ``(sample, index) -> sample`` (the hook
``NuScenesDataset.transform``); its randomness is seeded by (suite seed, perturbation name, sample index),
so a perturbed split is identical from run to run and independent of the loader's order or workers.
:class:`PerturbedDataset` wraps any dataset of sample dicts for evaluators that take a dataset.

Scoring is injected: ``evaluate(perturbation_or_None, out_dir) -> {"NDS": .., "mAP": .., ...}`` (the CLI
plugs in ``calico.eval.run_evaluation``); spoofing runs the model itself (``model.decode`` boxes).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from calico.data.batch import move_to
from calico.robustness import sensors
from calico.robustness.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from calico.robustness.metrics import attack_success_rate, mean_corruption_error, metric_drop
from calico.robustness.spoofing import TRACE_SIZES, spoof, spot_score, succeeded

Sample = dict[str, Any]
SUITES = ("corruptions", "spoofing", "dropout", "calibration")
# camera extrinsic errors: (rotation deg, translation m), rotation-only, translation-only, both
CALIBRATION_LEVELS: tuple[tuple[float, float], ...] = (
    (0.5, 0.0), (1.0, 0.0), (2.0, 0.0), (5.0, 0.0),
    (0.0, 0.05), (0.0, 0.1), (0.0, 0.2), (0.0, 0.5), (1.0, 0.1), (2.0, 0.2),
)


@dataclass
class Perturbation:
    """A named, seeded perturbation of sample dicts; ``fn(sample, rng) -> sample``."""

    name: str
    group: str  # "corruptions", "spoofing", "dropout", "calibration"
    fn: Callable[[Sample, np.random.Generator], Sample]
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(self.name.encode()), int(index)])

    def __call__(self, sample: Sample, index: int) -> Sample:
        return self.fn(sample, self.rng(index))


def corruption(name: str, severity: int, seed: int = 0) -> Perturbation:
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose from {sorted(CORRUPTIONS)}")
    return Perturbation(f"{name}/{severity}", "corruptions",
                        lambda s, rng: sensors.with_points(s, corrupt(np.asarray(s["points"]), name, severity, rng)),
                        {"corruption": name, "severity": severity}, seed)


def spoofing(n_points: int, distance: float = 10.0, seed: int = 0, every_sweep: bool = False,
             template: tuple[np.ndarray, np.ndarray] | None = None) -> Perturbation:
    """Inject the car trace (in every sweep with ``every_sweep``; ``template``: default the shipped real car,
    see ``spoofing.spoof``); the sample gains ``spoof_spot`` (3,), the fake car's centre (LiDAR frame)."""
    def fn(s: Sample, rng: np.random.Generator) -> Sample:
        pts, spot = spoof(np.asarray(s["points"]), n_points, rng, s["lidar2ego"], distance, template=template,
                          every_sweep=every_sweep)
        out = sensors.with_points(s, pts)
        out["spoof_spot"] = spot
        return out
    params = {"n_points": n_points, "distance": distance, **({"every_sweep": True} if every_sweep else {})}
    return Perturbation(f"spoof/{n_points}", "spoofing", fn, params, seed)


def dropout_plan(seed: int = 0) -> list[Perturbation]:
    """All cameras, 1 and 3 random cameras, LiDAR at 16 / 8 / 4 rings, no LiDAR."""
    plan = [Perturbation("cameras/all", "dropout", lambda s, rng: sensors.drop_cameras(s, "all"),
                         {"cameras_dropped": "all"}, seed)]
    for k in (1, 3):
        plan.append(Perturbation(f"cameras/{k}", "dropout",
                                 lambda s, rng, k=k: sensors.drop_random_cameras(s, k, rng), {"cameras_dropped": k}, seed))
    for keep in (16, 8, 4):
        plan.append(Perturbation(f"lidar_rings/{keep}", "dropout",
                                 lambda s, rng, keep=keep: sensors.drop_lidar_beams(s, keep, rng), {"rings_kept": keep}, seed))
    plan.append(Perturbation("lidar/none", "dropout", lambda s, rng: sensors.drop_lidar(s), {"rings_kept": 0}, seed))
    return plan


def calibration_plan(levels: Sequence[tuple[float, float]] = CALIBRATION_LEVELS, seed: int = 0) -> list[Perturbation]:
    return [Perturbation(f"calib/rot{r:g}deg_trans{t:g}m", "calibration",
                         lambda s, rng, r=r, t=t: sensors.perturb_calibration(s, r, t, rng),
                         {"rot_deg": r, "trans_m": t}, seed) for r, t in levels]


def suite_plan(suite: str, seed: int = 0, corruptions: Sequence[str] = tuple(CORRUPTIONS),
               severities: Sequence[int] = SEVERITIES) -> list[Perturbation]:
    """The perturbations of one suite (or "all"); spoofing is listed for completeness (run separately)."""
    if suite == "all":
        return [p for name in SUITES for p in suite_plan(name, seed, corruptions, severities)]
    if suite == "corruptions":
        return [corruption(c, s, seed) for c in corruptions for s in severities]
    if suite == "spoofing":
        return [spoofing(n, seed=seed) for n in TRACE_SIZES]
    if suite == "dropout":
        return dropout_plan(seed)
    if suite == "calibration":
        return calibration_plan(seed=seed)
    raise ValueError(f"unknown suite {suite!r}; choose from {list(SUITES) + ['all']}")


class PerturbedDataset(torch.utils.data.Dataset):
    """``base[i]`` passed through ``perturbation(sample, i)``; other attributes come from ``base``."""

    def __init__(self, base: Any, perturbation: Callable[[Sample, int], Sample] | None):
        self.base, self.perturbation = base, perturbation

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> Sample:
        sample = self.base[i]
        return sample if self.perturbation is None else self.perturbation(sample, i)

    def __getattr__(self, name: str) -> Any:
        if name in ("base", "perturbation"):
            raise AttributeError(name)
        return getattr(self.base, name)


# -- spoofing ---------------------------------------------------------------------------------------
@torch.no_grad()
def detect(model: torch.nn.Module, samples: list[Sample], device: torch.device | str = "cpu") -> list[dict]:
    """Run ``model`` on sample dicts and return ``model.decode`` detections as numpy dicts."""
    from calico.data.dataset import collate

    dev = torch.device(device)
    batch = move_to(collate(samples), dev)
    dets = model.decode(model(batch))
    return [{k: v.detach().cpu().numpy() for k, v in d.items()} for d in dets]


def run_spoofing(model: torch.nn.Module, dataset: Any, seed: int = 0, trace_sizes: Sequence[int] = TRACE_SIZES,
                 class_id_car: int = 0, score_thr: float = 0.3, radius: float = 2.0, max_frames: int | None = None,
                 device: torch.device | str = "cpu", every_sweep: bool = False,
                 template: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """ASR per trace size. A frame is attacked only when its spot is free space and the clean model does
    not already report a car there (otherwise success would not be the attack's doing).

    Beside the ASR at ``score_thr``, each size reports the mean car score at the spot
    (:func:`~calico.robustness.spoofing.spot_score`) on the attacked frames, clean and attacked: it shows how
    far a trace pushes a model towards a fake car even where no frame crosses the threshold."""
    model.eval()
    n = len(dataset) if max_frames is None else min(max_frames, len(dataset))
    out: dict[str, Any] = {}
    clean_dets: dict[int, dict] = {}  # the spot does not depend on the trace size: one clean pass per frame
    for size in trace_sizes:
        pert = spoofing(size, seed=seed, every_sweep=every_sweep, template=template)
        successes, skipped = [], {"car_already_there": 0}
        scores_clean, scores_attacked = [], []
        for i in tqdm(range(n), desc=f"spoof {size} pts", leave=False):
            clean = dataset[i]
            attacked = pert(clean, i)
            spot = attacked["spoof_spot"]
            if i not in clean_dets:
                clean_dets[i] = detect(model, [clean], device)[0]
            clean_score = spot_score(clean_dets[i], spot, class_id_car, radius)
            if succeeded(clean_score, score_thr):
                skipped["car_already_there"] += 1
                continue
            score = spot_score(detect(model, [attacked], device)[0], spot, class_id_car, radius)
            successes.append(succeeded(score, score_thr))
            scores_clean.append(clean_score)
            scores_attacked.append(score)
        out[str(size)] = {"asr": attack_success_rate(successes) if successes else float("nan"),
                          "frames": len(successes), "skipped": skipped, "score_thr": score_thr,
                          "every_sweep": every_sweep,
                          "spot_score_clean": _mean(scores_clean), "spot_score_attacked": _mean(scores_attacked)}
    return out


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


# -- the metric suites ------------------------------------------------------------------------------
def run_metric_suite(plan: Sequence[Perturbation], evaluate: Callable[[Perturbation | None, Path], dict[str, float]],
                     out_dir: str | Path, key: str = "NDS") -> dict[str, Any]:
    """Evaluate clean and every perturbation of ``plan``; returns the results dict (see :func:`summarise`)."""
    from calico.robustness.protocols import NothingChanged, Recorded, changed_nothing, collect_fingerprint

    out_dir = Path(out_dir)
    clean = evaluate(None, out_dir / "clean")
    runs = {}
    for pert in tqdm(plan, desc="robustness"):
        folder = out_dir / pert.name.replace("/", "_")
        # the same name, hence the same seeds, plus a per-sample fingerprint of what it changed
        rec = pert if isinstance(pert, Recorded) else Recorded(pert.name, pert.group, pert.fn, pert.params, pert.seed)
        rec.record_dir = str(folder / "fingerprint")
        for old in Path(rec.record_dir).glob("*.jsonl"):
            old.unlink()
        metrics = evaluate(rec, folder)
        fp = collect_fingerprint(rec.record_dir)
        if fp["samples"] and changed_nothing(fp):
            raise NothingChanged(f"{pert.name} changed nothing in {fp['samples']} samples (fingerprint {fp}): its "
                                 f"evaluation would equal the clean one")
        runs[pert.name] = {"group": pert.group, "params": pert.params, "metrics": metrics, "fingerprint": fp}
    return summarise(clean, runs, key)


def summarise(clean: dict[str, float], runs: dict[str, dict], key: str = "NDS") -> dict[str, Any]:
    """Group runs: corruption scores per severity, drops against clean for dropout and calibration."""
    res: dict[str, Any] = {"clean": clean, "key": key, "runs": runs, "corruptions": {}, "dropout": {},
                           "calibration": {}}
    for name, run in runs.items():
        if run["group"] == "corruptions":
            c = res["corruptions"].setdefault(run["params"]["corruption"], {"severities": [], key: []})
            c["severities"].append(run["params"]["severity"])
            c[key].append(run["metrics"][key])
        elif run["group"] in ("dropout", "calibration"):
            res[run["group"]][name] = {**run["params"], **metric_drop(clean[key], run["metrics"][key])}
    return res


def add_corruption_errors(results: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """CE per corruption and mCE against a baseline results dict (the randomly initialised model = 100 %)."""
    key = results.get("key", "NDS")
    mine = {c: v[key] for c, v in results["corruptions"].items()}
    base = {c: baseline["corruptions"][c][key] for c in mine if c in baseline.get("corruptions", {})}
    if set(base) != set(mine):
        raise ValueError(f"baseline lacks corruptions {sorted(set(mine) - set(base))}")
    for c in mine:
        if results["corruptions"][c]["severities"] != baseline["corruptions"][c]["severities"]:
            raise ValueError(f"{c}: severities differ from the baseline's")
    mce, ce = mean_corruption_error(mine, base)
    results["CE"], results["mCE"] = ce, mce
    return results


def results_table(results: dict[str, Any]) -> str:
    """Markdown tables of a results dict."""
    key = results.get("key", "NDS")
    lines = [f"clean {key}: {results['clean'].get(key, float('nan')):.4f}", ""]
    if results.get("corruptions"):
        sev = next(iter(results["corruptions"].values()))["severities"]
        lines += ["| corruption | " + " | ".join(f"s{s}" for s in sev) + " | CE |",
                  "|---|" + "---:|" * (len(sev) + 1)]
        for c, v in results["corruptions"].items():
            ce = results.get("CE", {}).get(c)
            lines.append(f"| {c} | " + " | ".join(f"{x:.4f}" for x in v[key]) +
                         f" | {'' if ce is None else f'{100 * ce:.1f} %'} |")
        if "mCE" in results:
            lines.append(f"\nmCE: {100 * results['mCE']:.1f} %")
        lines.append("")
    for group in ("dropout", "calibration"):
        if results.get(group):
            lines += [f"| {group} | {key} | drop | relative drop |", "|---|---:|---:|---:|"]
            for name, d in results[group].items():
                lines.append(f"| {name} | {d['perturbed']:.4f} | {d['drop']:.4f} | {100 * d['relative_drop']:.1f} % |")
            lines.append("")
    if results.get("spoofing"):
        lines.append(spoofing_table(results["spoofing"]))
    return "\n".join(lines)


def spoofing_table(spoofing: dict[str, Any]) -> str:
    """ASR per trace size (``run_spoofing``'s result) as Markdown, with the mean car score at the spot."""
    every = any(d.get("every_sweep") for d in spoofing.values())
    lines = [f"| trace points{' (in every sweep)' if every else ''} | ASR | frames | mean car score at the spot, "
             "clean → attacked |", "|---:|---:|---:|---:|"]
    for size, d in spoofing.items():
        score = (f"{d['spot_score_clean']:.3f} → {d['spot_score_attacked']:.3f}" if "spot_score_attacked" in d
                 else "–")  # results written before the spot score existed
        lines.append(f"| {size} | {100 * d['asr']:.1f} % | {d['frames']} | {score} |")
    return "\n".join(lines)


def save_results(results: dict[str, Any], out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "robustness.json"
    path.write_text(json.dumps(results, indent=2, default=float))
    (out / "robustness.md").write_text(results_table(results) + "\n")
    return path
