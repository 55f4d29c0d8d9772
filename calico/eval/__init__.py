"""Evaluation: nuScenes detection metrics by the devkit's own code, BEV map IoU, submission-format output.

``run_evaluation`` (model over a split → files + flat metrics), ``evaluate_detections`` (submission dicts →
devkit metrics on official, custom or explicit splits), ``lidar_boxes_to_nusc`` (LiDAR-frame boxes → global
submission dicts), ``SegmentationMeter`` (dataset-level IoU at the best threshold per class).
"""

from calico.eval.boxes import default_attribute, lidar_boxes_to_nusc
from calico.eval.detection import evaluate_detections, flatten_summary, split_sample_tokens
from calico.eval.runner import run_evaluation
from calico.eval.segmentation import SegmentationMeter

__all__ = ["SegmentationMeter", "default_attribute", "evaluate_detections", "flatten_summary",
           "lidar_boxes_to_nusc", "run_evaluation", "split_sample_tokens"]
