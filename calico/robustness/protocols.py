"""Published robustness protocols as suite plans: Robo3D (nuScenes-C), MultiCorrupt, and our physical set.

``protocol_plan(name)`` lists one :class:`~calico.robustness.suite.Perturbation` per corruption and level;
:func:`run_protocol` evaluates clean + each of them, writes one JSON per corruption and level (metrics, the
parameters, the **fingerprint** of what the corruption changed) and fails when a corruption changed nothing
(no silent clean evaluation); :func:`protocol_tables` prints each benchmark's own table layout.

Randomness: a protocol perturbation's stream is seeded by (seed, protocol/corruption, sample index) -- not by
the level -- so for one sample the three levels see the same draws and a heavier level corrupts a superset
where the protocol's levels are nested (see :mod:`calico.robustness.robo3d`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from calico.robustness import multicorrupt, robo3d, sensors
from calico.robustness.corruptions import CORRUPTIONS, SEVERITIES
from calico.robustness.metrics import multicorrupt_summary, robo3d_summary
from calico.robustness.suite import Perturbation, Sample

PROTOCOLS = ("robo3d", "multicorrupt", "calico-physics", "paper")
# The CALICO paper's own settings (§3.4): nuScenes-C's snow, fog and motion blur (its 3 levels) on models
# fine-tuned with 10 % of the labels, CE / mCE against the model trained from scratch (100 %); spoofing traces of
# 60 / 100 / 200 points 10 m ahead on models fine-tuned with 50 % (``calico.robustness.spoofing.TRACE_SIZES``).
PAPER_CORRUPTIONS = ("fog", "snow", "motion_blur")
PAPER_FRACTIONS = {"corruptions": 0.10, "spoofing": 0.50}
# column titles of each benchmark's own tables (Robo3D README / docs/RESULTS.md; MultiCorrupt README)
ROBO3D_TITLES = {"fog": "Fog", "wet_ground": "Wet Ground", "snow": "Snow", "motion_blur": "Motion Blur",
                 "beam_missing": "Beam Missing", "crosstalk": "Cross-Talk", "incomplete_echo": "Incomplete Echo",
                 "cross_sensor": "Cross-Sensor"}
MULTICORRUPT_TITLES = {"beams_reducing": "Beams Red.", "brightness": "Brightness", "darkness": "Darkness",
                       "fog": "Fog", "missing_camera": "Missing Cam.", "motion_blur": "Motion Blur",
                       "points_reducing": "Points Red.", "snow": "Snow", "spatial_misalignment": "Spatial Mis.",
                       "temporal_misalignment": "Temporal Mis."}
FINGERPRINT_KEYS = ("samples", "points_in", "points_out", "points_removed", "points_added", "points_moved",
                    "intensity_changed", "cameras_dropped", "images_changed", "calibration_changed")


# ---- fingerprints -----------------------------------------------------------------------------------------------
def _row_hash(points: np.ndarray) -> np.ndarray:
    """One uint64 per row of x, y, z, intensity (float32 bits mixed); equal rows hash equal."""
    bits = np.ascontiguousarray(np.asarray(points, np.float32)[:, :4]).view(np.uint32).astype(np.uint64)
    h = np.zeros(len(bits), dtype=np.uint64)
    for k, m in enumerate((0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5)):
        h ^= (bits[:, k] + np.uint64(k)) * np.uint64(m)
        h = (h << np.uint64(13)) | (h >> np.uint64(51))
    return h


def fingerprint(before: Sample, after: Sample) -> dict[str, int]:
    """What a perturbation changed in one sample: point rows removed / added (a moved row counts in both, and
    in ``points_moved`` when the row count is unchanged), intensities, cameras dropped, images, calibration."""
    p0, p1 = np.asarray(before["points"]), np.asarray(after["points"])
    fp = dict.fromkeys(FINGERPRINT_KEYS, 0)
    fp["samples"], fp["points_in"], fp["points_out"] = 1, len(p0), len(p1)
    if p0 is not p1:
        h0, h1 = _row_hash(p0), _row_hash(p1)
        fp["points_removed"] = int((~np.isin(h0, h1)).sum())
        fp["points_added"] = int((~np.isin(h1, h0)).sum())
        if p0.shape == p1.shape:
            fp["points_moved"] = int((p0[:, :3] != p1[:, :3]).any(axis=1).sum())
            fp["intensity_changed"] = int((p0[:, 3] != p1[:, 3]).sum())
    v0 = np.asarray(before.get("camera_valid", []), dtype=bool)
    v1 = np.asarray(after.get("camera_valid", []), dtype=bool)
    if v1.size:
        fp["cameras_dropped"] = int((~v1).sum() - ((~v0).sum() if v0.size else 0))
    i0, i1 = before.get("images"), after.get("images")
    if i0 is not None and i1 is not None and i0 is not i1:
        i0, i1 = np.asarray(i0), np.asarray(i1)
        fp["images_changed"] = int(sum(not np.array_equal(a, b) for a, b in zip(i0, i1, strict=True)))
    for key in ("lidar2img", "lidar2cam"):
        if key in before and key in after and before[key] is not after[key]:
            if not np.array_equal(np.asarray(before[key]), np.asarray(after[key])):
                fp["calibration_changed"] = 1
                break
    return fp


def changed_nothing(fp: dict[str, int]) -> bool:
    return not any(fp.get(k, 0) for k in FINGERPRINT_KEYS[3:])


@dataclass
class Recorded(Perturbation):
    """A protocol perturbation: seeded by ``stream`` (level-independent) and, when ``record_dir`` is set,
    appending each sample's fingerprint to ``record_dir/<pid>.jsonl`` (works from DataLoader workers)."""

    stream: str = ""
    record_dir: str | None = None
    source: Any = field(default=None, repr=False)  # the dataset, for perturbations that read other frames

    def rng(self, index: int) -> np.random.Generator:
        import zlib

        return np.random.default_rng([self.seed, zlib.crc32((self.stream or self.name).encode()), int(index)])

    def apply(self, sample: Sample, index: int) -> Sample:
        return self.fn(sample, self.rng(index))

    def __call__(self, sample: Sample, index: int) -> Sample:
        out = self.apply(sample, index)
        if self.record_dir is not None:
            fp = fingerprint(sample, out)
            os.makedirs(self.record_dir, exist_ok=True)
            with open(os.path.join(self.record_dir, f"{os.getpid()}.jsonl"), "a") as fh:
                fh.write(json.dumps({"index": int(index), **fp}) + "\n")
        return out


def collect_fingerprint(record_dir: str | Path) -> dict[str, int]:
    """Sum the per-sample fingerprints written under ``record_dir`` (one row per sample index)."""
    rows: dict[int, dict[str, int]] = {}
    for path in sorted(Path(record_dir).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[int(row.pop("index"))] = row
    total = dict.fromkeys(FINGERPRINT_KEYS, 0)
    for row in rows.values():
        for k in FINGERPRINT_KEYS:
            total[k] += int(row.get(k, 0))
    return total


# ---- plans ------------------------------------------------------------------------------------------------------
def _robo3d_fn(name: str, severity: int, layout: robo3d.BeamLayout) -> Callable[[Sample, np.random.Generator], Sample]:
    def fn(s: Sample, rng: np.random.Generator) -> Sample:
        pts = robo3d.corrupt_robo3d(np.asarray(s["points"]), name, severity, rng, boxes=s.get("gt_boxes"),
                                    labels=s.get("gt_labels"), layout=layout)
        return sensors.with_points(s, pts)
    return fn


@dataclass
class TemporalMisalignment(Recorded):
    """MultiCorrupt temporal misalignment: each camera (and, separately, the whole LiDAR frame) shows the
    previous frame of the same scene with the level's probability (img_converter.py:84-98,
    lidar_converter.py:196-200). Needs ``source``: the dataset (``load_points`` / ``load_cameras`` by index).
    The converters take the previous entry of the info list whatever its scene (from the 2nd entry for cameras,
    the 3rd for the LiDAR); we only take a previous frame of the same scene, and then from the 2nd frame for both."""

    severity: int = 1

    def apply(self, sample: Sample, index: int) -> Sample:
        if self.source is None:
            raise ValueError("temporal_misalignment needs the dataset: set perturbation.source")
        rng = self.rng(index)
        p = multicorrupt.TEMPORAL_MISALIGNMENT[self.severity]["probability"]
        n_cam = sensors._num_cams(sample)
        u_cam, u_lidar = rng.random(n_cam), rng.random()
        records = getattr(self.source, "records", None)
        same_scene = index >= 1 and records is not None and \
            records[index - 1]["scene_name"] == records[index]["scene_name"]
        out = dict(sample)
        if not same_scene:
            return out
        stale = np.nonzero(u_cam < p)[0]
        if len(stale) and sample.get("images") is not None:
            prev = self.source.load_cameras(index - 1)
            images = np.array(sample["images"], copy=True)
            images[stale] = prev["images"][stale]
            out["images"] = images
        if u_lidar < p:  # the previous LiDAR frame as recorded (its own frame: no ego-motion compensation)
            out = sensors.with_points(out, self.source.load_points(index - 1))
        return out


def protocol_plan(protocol: str, seed: int = 0, corruptions: Sequence[str] | None = None,
                  severities: Sequence[int] | None = None,
                  layout: robo3d.BeamLayout = robo3d.HDL32E) -> list[Perturbation]:
    """The perturbations of ``protocol``: Robo3D's 8 or MultiCorrupt's 10 corruptions x 3 levels, or
    ``calico-physics`` (the project's own physical set, 5 levels, :mod:`calico.robustness.corruptions`)."""
    if protocol == "calico-physics":
        from calico.robustness.suite import corruption

        names = list(corruptions or CORRUPTIONS)
        out: list[Perturbation] = []
        for c in names:
            for s in severities or SEVERITIES:
                p = corruption(c, s, seed)  # same name, hence the same seeds, as `--suite corruptions`
                out.append(Recorded(p.name, "calico-physics", p.fn, p.params, seed))
        return out
    levels = list(severities or (1, 2, 3))
    bad = [s for s in levels if s not in (1, 2, 3)]
    if bad:
        raise ValueError(f"{protocol} has levels 1..3 (light, moderate, heavy), got {bad}")
    if protocol in ("robo3d", "paper"):
        names = list(corruptions or (robo3d.ROBO3D_CORRUPTIONS if protocol == "robo3d" else PAPER_CORRUPTIONS))
        unknown = sorted(set(names) - set(robo3d.ROBO3D_CORRUPTIONS))
        if unknown:
            raise ValueError(f"unknown Robo3D corruptions {unknown}; choose from {list(robo3d.ROBO3D_CORRUPTIONS)}")
        return [Recorded(f"robo3d/{c}/{s}", "robo3d", _robo3d_fn(c, s, layout),
                         {"corruption": c, "severity": s, "level": robo3d.LEVELS[s], **robo3d.PARAMETERS[c][s]},
                         seed, stream=f"robo3d/{c}") for c in names for s in levels]
    if protocol == "multicorrupt":
        names = list(corruptions or multicorrupt.PROTOCOL_CORRUPTIONS)
        known = set(multicorrupt.SAMPLE_CORRUPTIONS) | {"temporal_misalignment"}
        unknown = sorted(set(names) - known)
        if unknown:
            raise ValueError(f"unknown MultiCorrupt corruptions {unknown}; choose from {sorted(known)}")
        plan: list[Perturbation] = []
        for c in names:
            for s in levels:
                params = {"corruption": c, "severity": s, **multicorrupt.PARAMETERS.get(c, {}).get(s, {})}
                if c == "temporal_misalignment":
                    plan.append(TemporalMisalignment(f"multicorrupt/{c}/{s}", "multicorrupt", lambda x, r: x, params,
                                                     seed, stream=f"multicorrupt/{c}", severity=s))
                    continue
                plan.append(Recorded(f"multicorrupt/{c}/{s}", "multicorrupt",
                                     lambda x, r, c=c, s=s: multicorrupt.corrupt_sample(x, c, s, r, layout), params,
                                     seed, stream=f"multicorrupt/{c}"))
        return plan
    raise ValueError(f"unknown protocol {protocol!r}; choose from {list(PROTOCOLS)}")


# ---- running and tables -----------------------------------------------------------------------------------------
class NothingChanged(RuntimeError):
    """A corrupted evaluation whose corruption changed nothing: it would silently score the clean data."""


def run_protocol(protocol: str, plan: Sequence[Perturbation],
                 evaluate: Callable[[Perturbation | None, Path], dict[str, float]], out_dir: str | Path,
                 source: Any = None, keys: Sequence[str] = ("NDS", "mAP")) -> dict[str, Any]:
    """Clean + every perturbation; ``<out>/<corruption>_<level>/corruption.json`` each. Raises
    :class:`NothingChanged` when a corruption left every sample as it was."""
    out_dir = Path(out_dir)
    clean = evaluate(None, out_dir / "clean")
    runs: dict[str, Any] = {}
    for pert in tqdm(plan, desc=protocol):
        folder = out_dir / pert.name.split("/", 1)[-1].replace("/", "_")
        record = folder / "fingerprint"
        if isinstance(pert, Recorded):
            for old in record.glob("*.jsonl") if record.is_dir() else []:
                old.unlink()
            pert.record_dir = str(record)
            if source is not None:
                pert.source = source
        metrics = evaluate(pert, folder)
        fp = collect_fingerprint(record) if isinstance(pert, Recorded) else None
        entry = {"protocol": protocol, "name": pert.name, "params": pert.params, "metrics": metrics,
                 "fingerprint": fp}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "corruption.json").write_text(json.dumps(entry, indent=2, default=float))
        if fp is not None and fp["samples"] and changed_nothing(fp):
            raise NothingChanged(f"{pert.name} changed nothing in {fp['samples']} samples (fingerprint {fp}); "
                                 f"its evaluation would equal the clean one -- check the data (images loaded? "
                                 f"boxes of the affected classes present?) or pick more samples")
        runs[pert.name] = entry
    return summarise_protocol(protocol, clean, runs, keys)


def summarise_protocol(protocol: str, clean: dict[str, float], runs: dict[str, dict],
                       keys: Sequence[str] = ("NDS", "mAP")) -> dict[str, Any]:
    """Scores per corruption and level, RR / mRR (Robo3D) or RA / mRA (MultiCorrupt) for each metric key."""
    scores: dict[str, dict[str, Any]] = {}
    for run in runs.values():
        c = scores.setdefault(run["params"]["corruption"], {"severities": [], **{k: [] for k in keys}})
        c["severities"].append(run["params"]["severity"])
        for k in keys:
            c[k].append(float(run["metrics"].get(k, float("nan"))))
    res: dict[str, Any] = {"protocol": protocol, "clean": clean, "keys": list(keys), "scores": scores,
                           "runs": runs, "metrics": {}}
    for k in keys:
        per = {c: v[k] for c, v in scores.items()}
        if not per or not clean.get(k):
            continue
        try:
            if protocol == "multicorrupt":
                res["metrics"][k] = multicorrupt_summary(per, clean[k])
            else:
                res["metrics"][k] = robo3d_summary(per, clean[k])
        except ValueError as exc:
            res["metrics"][k] = {"error": str(exc)}
    return res


def add_baseline(results: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """Robo3D: CE / mCE against ``baseline`` (the random-init model = 100 %); MultiCorrupt: RRA / mRRA against
    the reference model ``baseline``. Same protocol, corruptions and levels required."""
    if baseline.get("protocol") != results["protocol"]:
        raise ValueError(f"baseline protocol {baseline.get('protocol')!r} != {results['protocol']!r}")
    for k in results["keys"]:
        mine = {c: v[k] for c, v in results["scores"].items()}
        theirs = {c: v[k] for c, v in baseline["scores"].items() if c in mine}
        if set(theirs) != set(mine):
            raise ValueError(f"baseline lacks corruptions {sorted(set(mine) - set(theirs))}")
        for c in mine:
            if baseline["scores"][c]["severities"] != results["scores"][c]["severities"]:
                raise ValueError(f"{c}: levels differ from the baseline's")
        if results["protocol"] == "multicorrupt":
            results["metrics"][k] = multicorrupt_summary(mine, results["clean"][k], reference=theirs)
        else:
            results["metrics"][k] = robo3d_summary(mine, results["clean"][k], baseline=theirs)
    results["baseline"] = baseline.get("label", "")
    return results


def protocol_tables(results: dict[str, Any], label: str = "") -> str:
    """Markdown in the benchmark's own layout: Robo3D's (mCE, mRR, clean, one column per corruption = the mean
    over the levels, in %) plus its CE and RR tables; MultiCorrupt's RA table (and RRA with a reference)."""
    label = label or results.get("label", "model")
    lines: list[str] = []
    for k in results["keys"]:
        m = results["metrics"].get(k, {})
        scores = results["scores"]
        clean = results["clean"].get(k, float("nan"))
        if results["protocol"] == "multicorrupt":
            names = [c for c in MULTICORRUPT_TITLES if c in scores] + [c for c in scores if c not in MULTICORRUPT_TITLES]
            titles = [MULTICORRUPT_TITLES.get(c, c) for c in names]
            lines += [f"### MultiCorrupt: Resistance Ability (RA) computed with {k}", "",
                      "| Model | Clean | mRA | " + " | ".join(titles) + " |", "|:--|" + ":--|" * (len(names) + 2),
                      f"| {label} | {clean:.3f} | {m.get('mRA', float('nan')):.3f} | " +
                      " | ".join(f"{m.get('RA', {}).get(c, float('nan')):.3f}" for c in names) + " |", ""]
            if "RRA" in m:
                lines += [f"### MultiCorrupt: Relative Resistance Ability (RRA, %) computed with {k} against "
                          f"{results.get('baseline', 'the reference')}", "",
                          "| Model | Clean | mRRA | " + " | ".join(titles) + " |", "|:--|" + ":--|" * (len(names) + 2),
                          f"| {label} | {clean:.3f} | {100 * m['mRRA']:.3f} | " +
                          " | ".join(f"{100 * m['RRA'][c]:.3f}" for c in names) + " |", ""]
        else:
            titles_map = ROBO3D_TITLES if results["protocol"] in ("robo3d", "paper") else {}
            names = [c for c in titles_map if c in scores] + [c for c in scores if c not in titles_map]
            titles = [titles_map.get(c, c) for c in names]
            mce = f"{100 * m['mCE']:.2f}" if "mCE" in m else "-"
            mrr = f"{100 * m['mRR']:.2f}" if "mRR" in m else "-"
            lines += [f"### {results['protocol']}: {k} (%)", "",
                      "| Model | mCE (%) | mRR (%) | Clean | " + " | ".join(titles) + " |",
                      "| -: | :-: | :-: | :-: | " + " | ".join(":-:" for _ in names) + " |",
                      f"| {label} | {mce} | {mrr} | {100 * clean:.2f} | " +
                      " | ".join(f"{100 * float(np.mean(scores[c][k])):.2f}" for c in names) + " |", ""]
            for what in ("CE", "RR"):
                if what in m:
                    lines += [f"#### Benchmark: {what} (%), {k}", "",
                              f"| Model | m{what} (%) | " + " | ".join(titles) + " |",
                              "| -: | :-: | " + " | ".join(":-:" for _ in names) + " |",
                              f"| {label} | {100 * m['m' + what]:.2f} | " +
                              " | ".join(f"{100 * m[what][c]:.2f}" for c in names) + " |", ""]
        levels = sorted({lv for v in scores.values() for lv in v["severities"]})
        lines += [f"per level ({k}):", "", "| corruption | " + " | ".join(f"s{lv}" for lv in levels) + " |",
                  "|---|" + "---:|" * len(levels)]
        for c, v in scores.items():
            at = dict(zip(v["severities"], v[k], strict=True))
            lines.append(f"| {c} | " + " | ".join(f"{at[lv]:.4f}" if lv in at else "" for lv in levels) + " |")
        lines.append("")
    return "\n".join(lines)
