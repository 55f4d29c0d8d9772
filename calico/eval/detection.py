"""nuScenes detection metrics computed by the devkit's own code, on official, custom or explicit splits.

``DetectionEval`` insists on official split names and an existing results file; we need custom versions
(the synthetic world) and custom splits (``data.splits_file``, default ``<dataroot>/<version>/splits.json``,
with keyframe slices ``scene[start:stop]``) and an explicit list of
sample tokens (``--max-samples``), so this module resolves the sample tokens itself and then runs exactly
the ``DetectionEval.evaluate`` path: ``load_gt_of_sample_tokens`` → ``add_center_dist`` →
``filter_eval_boxes`` → ``accumulate`` / ``calc_ap`` / ``calc_tp`` → ``DetectionMetrics``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nuscenes import NuScenes
from nuscenes.eval.common.config import config_factory
from nuscenes.eval.common.data_classes import EvalBoxes
from nuscenes.eval.common.loaders import (
    add_center_dist,
    filter_eval_boxes,
    load_gt_of_sample_tokens,
)
from nuscenes.eval.detection.data_classes import DetectionBox, DetectionConfig
from nuscenes.eval.detection.evaluate import DetectionEval

from calico.data.splits import select_keyframes, split_scene_names
from calico.errors import DataError

DEFAULT_META = {"use_camera": True, "use_lidar": True, "use_radar": False, "use_map": False, "use_external": False}
TP_NAMES = {"trans_err": "mATE", "scale_err": "mASE", "orient_err": "mAOE", "vel_err": "mAVE", "attr_err": "mAAE"}


def scene_sample_tokens(nusc: NuScenes) -> dict[str, list[str]]:
    """``{scene name: sample tokens}`` in time order, walked from ``first_sample_token`` by ``next``."""
    out: dict[str, list[str]] = {}
    for scene in nusc.scene:
        tokens, token = [], scene["first_sample_token"]
        while token:
            tokens.append(token)
            token = nusc.get("sample", token)["next"]
        out[scene["name"]] = tokens
    return out


def split_sample_tokens(nusc: NuScenes, split: str | Sequence[str], splits_file: str | None = None) -> list[str]:
    """Sample tokens of ``split``: a list of tokens, a name in the splits file (``splits_file``, default
    ``<dataroot>/<version>/splits.json``; members are scenes or ``scene[start:stop]`` keyframe slices), or an
    official nuScenes split name (``train``, ``val``, ``mini_val``, ...).

    The dataset's own splits file wins over an official name of the same spelling: the synthetic world
    declares its own ``train``/``val``, which have nothing to do with the official scene lists (the devkit's
    ``load_gt`` would also assert the version name, which custom versions do not match).
    """
    if not isinstance(split, str):
        tokens = list(split)
        known = {s["token"] for s in nusc.sample}
        missing = [t for t in tokens if t not in known]
        if missing:
            raise DataError(f"{len(missing)} sample tokens are not in {nusc.version} (first: {missing[0]!r})",
                            nusc.dataroot)
        return tokens
    # Same rule as the data layer (splits file first, then official names; slices over the keyframes in time
    # order, calico.data.splits.select_keyframes), so the evaluated ground truth covers exactly the samples
    # NuScenesDataset(cfg, split) yields.
    members = split_scene_names(nusc.dataroot, nusc.version, split, splits_file)
    tokens = select_keyframes(members, scene_sample_tokens(nusc))
    if not tokens:
        raise DataError(f"split {split!r} has no samples in version {nusc.version}", nusc.dataroot)
    return tokens


def load_gt(nusc: NuScenes, sample_tokens: Sequence[str]) -> EvalBoxes:
    """Ground-truth ``EvalBoxes`` of the given samples, built by the devkit exactly as ``load_gt`` does."""
    return load_gt_of_sample_tokens(nusc, list(sample_tokens), DetectionBox, verbose=False)


def _filter(nusc: NuScenes, boxes: EvalBoxes, cfg: DetectionConfig) -> EvalBoxes:
    boxes = add_center_dist(nusc, boxes)
    if not any(len(b) for b in boxes.boxes.values()):
        return boxes  # the devkit's filter asserts on a set with no box at all (e.g. an untrained model)
    return filter_eval_boxes(nusc, boxes, cfg.class_range, verbose=False)


class _SplitDetectionEval(DetectionEval):
    """``DetectionEval`` with boxes handed in instead of loaded from an official split (evaluate/render reused)."""

    def __init__(self, nusc: NuScenes, config: DetectionConfig, gt: EvalBoxes, pred: EvalBoxes,
                 meta: dict[str, Any], output_dir: str) -> None:
        # Deliberately not calling super().__init__: it loads from files by official split name.
        self.nusc, self.cfg, self.meta, self.verbose = nusc, config, meta, False
        self.output_dir = output_dir
        self.plot_dir = os.path.join(output_dir, "plots")
        self.eval_set = "custom"
        self.gt_boxes = _filter(nusc, gt, config)
        self.pred_boxes = _filter(nusc, pred, config)
        self.sample_tokens = self.gt_boxes.sample_tokens


def restrict_config(cfg: DetectionConfig, classes: Sequence[str]) -> DetectionConfig:
    """``cfg`` scoring only ``classes`` (the devkit averages mAP and TP errors over ``cfg.class_names``)."""
    d = cfg.serialize()
    unknown = [c for c in classes if c not in d["class_range"]]
    if unknown:
        raise ValueError(f"unknown detection classes {unknown}; known: {list(d['class_range'])}")
    sub = DetectionConfig.deserialize(d)
    # DetectionConfig asserts all 10 classes in class_range; evaluate() and DetectionMetrics iterate
    # ``class_names`` only, so narrowing that attribute narrows the scoring and nothing else.
    sub.class_names = [c for c in d["class_range"] if c in set(classes)]
    return sub


def write_submission(results: dict[str, list[dict[str, Any]]], sample_tokens: Sequence[str], out_dir: str | Path,
                     meta: dict[str, Any] | None = None, max_boxes: int = 500) -> tuple[dict[str, list], dict]:
    """Write ``results_nusc.json`` (the devkit's submission format, every sample present) and return
    ``(results per sample, meta)``; all a split without annotations (v1.0-test) gets."""
    tokens = list(dict.fromkeys(sample_tokens))
    extra = sorted(set(results) - set(tokens))
    if extra:
        raise ValueError(f"predictions for {len(extra)} samples outside the evaluated split (first: {extra[0]!r})")
    full = {t: list(results.get(t, [])) for t in tokens}
    for t, boxes in full.items():
        if len(boxes) > max_boxes:
            raise ValueError(f"sample {t}: {len(boxes)} boxes > the benchmark's limit {max_boxes}")
    meta = dict(DEFAULT_META if meta is None else meta)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results_nusc.json").write_text(json.dumps({"meta": meta, "results": full}))
    return full, meta


def evaluate_detections(
    nusc: NuScenes,
    results: dict[str, list[dict[str, Any]]],
    sample_tokens: Sequence[str],
    out_dir: str | Path,
    meta: dict[str, Any] | None = None,
    config_name: str = "detection_cvpr_2019",
    classes: Sequence[str] | None = None,
    plots: bool = False,
) -> dict[str, Any]:
    """Score submission-format ``results`` on ``sample_tokens``; write ``results_nusc.json``,
    ``metrics_summary.json`` and ``metrics_details.json`` (devkit formats) to ``out_dir``.

    Samples without predictions count as empty (the devkit requires every sample to be present).
    ``classes`` restricts the scored classes (default: the benchmark's 10). Returns the devkit's
    ``metrics_summary`` dict (``mean_ap``, ``nd_score``, ``tp_errors``, ``mean_dist_aps``, ...) plus
    ``classes_with_gt``: the scored classes that have ground truth after the devkit's filters (the devkit
    gives the others AP 0 and TP errors 1, which caps mAP on small splits).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config_factory(config_name)
    if classes is not None:
        cfg = restrict_config(cfg, classes)
    full, meta = write_submission(results, sample_tokens, out, meta, cfg.max_boxes_per_sample)
    tokens = list(full)

    pred = EvalBoxes.deserialize(full, DetectionBox)
    gt = load_gt(nusc, tokens)
    ev = _SplitDetectionEval(nusc, cfg, gt, pred, meta, str(out))
    metrics, md_list = ev.evaluate()
    if plots:
        os.makedirs(ev.plot_dir, exist_ok=True)
        ev.render(metrics, md_list)
    # Round-trip through JSON so the returned dict is exactly the file (float keys become "0.5", no defaultdict).
    summary = json.loads(json.dumps(metrics.serialize()))
    summary["meta"] = meta
    (out / "metrics_summary.json").write_text(json.dumps(summary, indent=2))
    (out / "metrics_details.json").write_text(json.dumps(md_list.serialize(), indent=2))

    # Extras (not in the devkit file): which classes the split can score at all, and the devkit's metrics
    # over those alone, so a small split without, say, trailers still shows how well the rest is detected.
    present = {b.detection_name for b in ev.gt_boxes.all}
    summary["classes_with_gt"] = [c for c in cfg.class_names if c in present]
    if summary["classes_with_gt"] and len(summary["classes_with_gt"]) < len(cfg.class_names):
        ev.cfg = restrict_config(cfg, summary["classes_with_gt"])
        sub, _ = ev.evaluate()
        summary["present_classes"] = json.loads(json.dumps(
            {k: v for k, v in sub.serialize().items() if k != "cfg"}))
        (out / "metrics_present_classes.json").write_text(json.dumps(summary["present_classes"], indent=2))
    return summary


def flatten_summary(summary: dict[str, Any]) -> dict[str, float]:
    """``{"NDS", "mAP", "mATE".."mAAE", "AP/<class>"..., "NDS_present", "mAP_present"}`` from the summary
    ``evaluate_detections`` returns (``*_present``: over the classes with ground truth only)."""
    flat = {"NDS": float(summary["nd_score"]), "mAP": float(summary["mean_ap"])}
    for key, name in TP_NAMES.items():
        flat[name] = float(summary["tp_errors"][key])
    for cls, ap in summary["mean_dist_aps"].items():
        flat[f"AP/{cls}"] = float(ap)
    sub = summary.get("present_classes")
    if sub is None and "classes_with_gt" in summary:
        sub = summary  # every scored class has ground truth: the two views coincide
    if sub is not None:
        flat["NDS_present"] = float(sub["nd_score"])
        flat["mAP_present"] = float(sub["mean_ap"])
    return flat


def detection_table(summary: dict[str, Any]) -> str:
    """A markdown table of the headline and per-class detection metrics."""
    flat = flatten_summary(summary)
    head = " | ".join(f"{k} {flat[k]:.4f}" for k in ("NDS", "mAP", *TP_NAMES.values()))
    lines = [head]
    if "NDS_present" in flat:
        lines.append(f"over the {len(summary['classes_with_gt'])} classes with ground truth: "
                     f"NDS {flat['NDS_present']:.4f} | mAP {flat['mAP_present']:.4f}")
    lines += [ "", "| class | AP | ATE | ASE | AOE | AVE | AAE |", "|---|---|---|---|---|---|---|"]
    for cls, ap in summary["mean_dist_aps"].items():
        tp = summary["label_tp_errors"][cls]
        errs = " | ".join(f"{tp[k]:.3f}" for k in TP_NAMES)
        lines.append(f"| {cls} | {ap:.3f} | {errs} |")
    return "\n".join(lines)
