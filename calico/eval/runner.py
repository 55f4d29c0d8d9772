"""Run a model over a split and score it: nuScenes detection metrics (devkit) and BEV map IoU.

Writes to ``out_dir``: ``results_nusc.json`` (submission format), ``metrics_summary.json`` and
``metrics_details.json`` (devkit formats), ``seg_metrics.json``, ``metrics.json`` (the flat dict returned)
and ``metrics.md`` (the human-readable table, also printed).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from calico.config import Config
from calico.data.batch import move_to
from calico.data.splits import has_annotations
from calico.errors import DataError
from calico.eval.boxes import lidar_boxes_to_nusc
from calico.eval.detection import detection_table, evaluate_detections, flatten_summary, write_submission
from calico.eval.segmentation import DEFAULT_THRESHOLDS, SegmentationMeter

log = logging.getLogger(__name__)
MAX_BOXES_PER_SAMPLE = 500  # the nuScenes benchmark's limit (detection_cvpr_2019 max_boxes_per_sample)



def _model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def submission_meta(cfg: Config) -> dict[str, Any]:
    """The ``meta`` block of ``results_nusc.json`` for this config's modality."""
    modality = cfg.model.modality.upper()
    return {"use_camera": "C" in modality, "use_lidar": "L" in modality, "use_radar": False,
            "use_map": False, "use_external": False}


def _numpy(x: Any) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def top_k(det: dict[str, Any], k: int = MAX_BOXES_PER_SAMPLE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` best-scoring boxes of one decoded sample, as numpy (torch or numpy in)."""
    boxes, scores = _numpy(det["boxes"]).reshape(-1, 9), _numpy(det["scores"]).reshape(-1)
    labels = _numpy(det["labels"]).reshape(-1).astype(np.int64)
    if len(scores) > k:
        order = np.argsort(-scores, kind="stable")[:k]
        boxes, scores, labels = boxes[order], scores[order], labels[order]
    return boxes, scores, labels


def _seg_table(seg: dict[str, Any]) -> str:
    if not seg.get("available"):
        return f"BEV segmentation: not evaluated ({seg.get('reason', 'no ground truth')})"
    lines = ["| map class | IoU | best threshold |", "|---|---|---|"]
    for name, t in seg["best_threshold"].items():
        iou = seg[name]
        lines.append(f"| {name} | {iou:.4f} | {t if t is not None else '-'} |")
    lines.append(f"| **mIoU** | {seg['mIoU']:.4f} | |")
    return "\n".join(lines)


def run_evaluation(
    model: torch.nn.Module,
    cfg: Config,
    split: str | None,
    out_dir: str | Path,
    max_samples: int | None = None,
    *,
    dataset: Any = None,
    transform: Any = None,
    nusc: Any = None,
    batch_size: int | None = None,
    seg_thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS,
    plots: bool = False,
    progress: bool = True,
) -> dict[str, float]:
    """Evaluate ``model`` on ``split`` of ``cfg.data`` (the first ``max_samples`` samples if given).

    ``dataset`` (a ``NuScenesDataset``-like object with ``records``) and ``nusc`` (a devkit ``NuScenes``) can be
    handed in to reuse loaded ones (robustness runs, tests). ``transform`` (``(sample, index) -> sample``) is set
    as the dataset's transform for this run only: the robustness suite's perturbations go through here. Detection is scored when ``cfg.model.with_det``,
    segmentation when the model returns ``out["seg"]`` and the samples carry ``map_masks``.
    Returns a flat dict: ``NDS, mAP, mATE..mAAE, AP/<class>, NDS_present, mAP_present`` (detection) and
    ``mIoU, IoU/<map class>`` (segmentation), plus ``num_samples``.
    """
    from calico.data.dataset import NuScenesDataset, collate

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ds = dataset if dataset is not None else NuScenesDataset(cfg, split=split)
    if transform is not None:
        previous = ds.transform
        ds.transform = transform
        try:
            return run_evaluation(model, cfg, split, out_dir, max_samples, dataset=ds, nusc=nusc,
                                  batch_size=batch_size, seg_thresholds=seg_thresholds, plots=plots,
                                  progress=progress)
        finally:
            ds.transform = previous
    n = len(ds) if max_samples is None else min(len(ds), int(max_samples))
    if n <= 0:
        raise ValueError(f"nothing to evaluate: split {split!r} has {len(ds)} samples, max_samples={max_samples}")
    records = {ds.records[i]["token"]: ds.records[i] for i in range(n)}
    loader = DataLoader(Subset(ds, range(n)), batch_size=batch_size or cfg.finetune.batch_size, shuffle=False,
                        num_workers=cfg.data.num_workers, collate_fn=collate)

    device = _model_device(model)
    want_det = bool(cfg.model.with_det)
    results: dict[str, list[dict[str, Any]]] = {}
    meter = SegmentationMeter(thresholds=seg_thresholds)
    seg_reason = "the model has no segmentation head" if not cfg.model.with_seg else "the model returned no 'seg'"
    truncated = 0
    model.eval()
    with torch.no_grad():
        for batch in tqdm(loader, desc=f"evaluate {split or 'all'}", unit="batch", disable=not progress):
            batch = move_to(batch, device)
            pred = model(batch)
            if want_det:
                for token, det in zip(batch["tokens"], model.decode(pred), strict=True):
                    truncated += max(0, len(det["scores"]) - MAX_BOXES_PER_SAMPLE)
                    boxes, scores, labels = top_k(det)
                    results[token] = lidar_boxes_to_nusc(boxes, scores, labels, records[token])
            seg_logits = pred.get("seg") if isinstance(pred, dict) else None
            if seg_logits is not None:
                if "map_masks" in batch:
                    meter.update(torch.sigmoid(seg_logits.float()), batch["map_masks"])
                else:
                    seg_reason = "the samples carry no map ground truth (map_masks)"
    if truncated:
        log.warning("kept the %d best boxes per sample (benchmark limit); dropped %d", MAX_BOXES_PER_SAMPLE,
                    truncated)

    flat: dict[str, float] = {"num_samples": float(n)}
    sections: list[str] = [f"# Evaluation: split {split!r}, {n} samples", ""]
    if not has_annotations(cfg.data.version):  # v1.0-test: nothing to score against
        if want_det:
            write_submission(results, list(records), out, submission_meta(cfg))
            note = f"no metrics; the submission file is {out / 'results_nusc.json'}"
        else:
            note = "the model has no detection head: nothing to submit"
        text = "\n".join(sections + [f"{cfg.data.version} has no annotations: {note}", ""])
        (out / "metrics.json").write_text(json.dumps(flat, indent=2))
        (out / "metrics.md").write_text(text)
        print(text)
        return flat
    if want_det:
        if nusc is None:
            from calico.data.prepare import open_nuscenes

            nusc = open_nuscenes(cfg.data.dataroot, cfg.data.version)
        summary = evaluate_detections(nusc, results, list(records), out, meta=submission_meta(cfg), plots=plots)
        flat.update(flatten_summary(summary))
        sections += ["## Detection (nuScenes devkit, detection_cvpr_2019)", "", detection_table(summary), ""]

    if meter.samples:
        seg: dict[str, Any] = {"available": True, "thresholds": list(seg_thresholds), "samples": meter.samples,
                               **meter.compute()}
        flat["mIoU"] = seg["mIoU"]
        flat.update({f"IoU/{c}": seg[c] for c in meter.classes})
    else:
        seg = {"available": False, "reason": seg_reason}
    # NaN is not JSON; a class absent from both prediction and ground truth is written as null
    (out / "seg_metrics.json").write_text(json.dumps(_jsonable(seg), indent=2))
    sections += ["## BEV map segmentation (IoU at the best threshold per class)", "", _seg_table(seg), ""]

    (out / "metrics.json").write_text(json.dumps(_jsonable(flat), indent=2))
    text = "\n".join(sections)
    (out / "metrics.md").write_text(text)
    print(text)
    return flat


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    return obj


def try_evaluation(model: torch.nn.Module, cfg: Config, split: str, out_dir: Path) -> dict | None:
    """``run_evaluation`` on ``split`` if that split exists; None otherwise."""
    from calico.data.dataset import NuScenesDataset

    try:
        dataset = NuScenesDataset(cfg, split=split)
    except DataError as exc:
        print(f"evaluation skipped: no usable {split!r} split ({exc})")
        return None
    model.eval()
    with torch.no_grad():
        metrics = run_evaluation(model, cfg, split, out_dir, dataset=dataset)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    print(f"evaluation on {split!r}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                                                    if k in ("NDS", "mAP", "mIoU")))
    return metrics
