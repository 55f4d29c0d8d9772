"""Shared helpers for the eval tests: the real scene and devkit-built LiDAR-frame ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pyquaternion import Quaternion

from calico.config import CLASSES

# The repo sits next to shared/ (/work/main, CI); a worktree under /work/wt/<name> sits one level deeper.
_CANDIDATES = [Path(__file__).resolve().parents[i] / "shared/data/nuscenes-scene-0916" for i in (2, 3)]
SCENE = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])


def nusc_or_skip():
    """The devkit's NuScenes on the real scene, or skip when the scene is absent."""
    if not (SCENE / "v1.0-mini").is_dir():
        pytest.skip(f"real nuScenes scene not found at {SCENE}")
    from nuscenes import NuScenes

    return NuScenes(version="v1.0-mini", dataroot=str(SCENE), verbose=False)


def _pose(rec: dict) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = Quaternion(rec["rotation"]).rotation_matrix
    m[:3, 3] = rec["translation"]
    return m


def lidar_frame_record(nusc, sample_token: str) -> dict:
    """A minimal index record (token, lidar2ego, ego2global, gt_*) with LiDAR-frame GT boxes built by the
    devkit, standing in for ``calico prepare``'s record: boxes with lidar+radar points only, since the
    benchmark drops empty ground truth."""
    from nuscenes.eval.detection.utils import category_to_detection_name

    sample = nusc.get("sample", sample_token)
    sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    pose = nusc.get("ego_pose", sd["ego_pose_token"])
    boxes, labels, attrs = [], [], []
    for ann_token in sample["anns"]:
        ann = nusc.get("sample_annotation", ann_token)
        name = category_to_detection_name(ann["category_name"])
        if name is None or ann["num_lidar_pts"] + ann["num_radar_pts"] == 0:
            continue
        box = nusc.get_box(ann_token)
        box.velocity = nusc.box_velocity(ann_token)
        # global -> ego -> lidar, as NuScenes.get_sample_data does (Box.rotate also turns the velocity)
        box.translate(-np.array(pose["translation"]))
        box.rotate(Quaternion(pose["rotation"]).inverse)
        box.translate(-np.array(cs["translation"]))
        box.rotate(Quaternion(cs["rotation"]).inverse)
        yaw = box.orientation.yaw_pitch_roll[0]
        boxes.append([*box.center, *box.wlh, yaw, *box.velocity[:2]])
        labels.append(CLASSES.index(name))
        attrs.append(nusc.get("attribute", ann["attribute_tokens"][0])["name"] if ann["attribute_tokens"] else "")
    return {
        "token": sample_token,
        "lidar2ego": _pose(cs),
        "ego2global": _pose(pose),
        "gt_boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 9),
        "gt_labels": np.asarray(labels, dtype=np.int64),
        "gt_attrs": attrs,
    }
