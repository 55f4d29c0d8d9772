"""Model boxes (keyframe LiDAR frame) → nuScenes submission boxes (global frame).

The model predicts ``(x, y, z, w, l, h, yaw, vx, vy)`` in the keyframe LiDAR frame (docs/ARCHITECTURE.md);
the nuScenes detection benchmark scores boxes in the global frame with a ``wxyz`` quaternion. The index record
carries ``lidar2ego`` and ``ego2global`` (4x4), so the transform is two matrix products.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyquaternion import Quaternion

from calico.config import CLASSES

# Speed (m/s) above which a vehicle / pedestrian / cycle counts as moving. 0.2 m/s is the value the common
# nuScenes detectors (CenterPoint, mmdet3d, BEVFusion) use when they assign default attributes.
MOVING_SPEED = 0.2

_VEHICLES = frozenset({"car", "truck", "bus", "trailer", "construction_vehicle"})
_CYCLES = frozenset({"bicycle", "motorcycle"})


def default_attribute(name: str, speed: float) -> str:
    """The attribute a detector without an attribute head submits for class ``name`` at ``speed`` m/s."""
    moving = bool(np.isfinite(speed) and speed > MOVING_SPEED)
    if name in _VEHICLES:
        return "vehicle.moving" if moving else "vehicle.parked"
    if name == "pedestrian":
        return "pedestrian.moving" if moving else "pedestrian.standing"
    if name in _CYCLES:
        return "cycle.with_rider" if moving else "cycle.without_rider"
    return ""  # barrier, traffic_cone: the benchmark ignores their attributes


def _as_numpy(x: Any, dtype: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _matrix(record: dict[str, Any], key: str) -> np.ndarray:
    if key not in record:
        raise KeyError(f"index record {record.get('token', '?')!r} has no {key!r} (needed to go to global)")
    m = np.asarray(record[key], dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"index record {record.get('token', '?')!r}: {key} must be 4x4, got {m.shape}")
    return m


def lidar_boxes_to_nusc(
    boxes: Any,
    scores: Any,
    labels: Any,
    record: dict[str, Any],
    attributes: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Convert LiDAR-frame boxes of one sample to nuScenes submission dicts (global frame).

    ``boxes`` (K, 9) ``x, y, z, w, l, h, yaw, vx, vy``; ``scores`` (K,); ``labels`` (K,) indexing
    ``calico.config.CLASSES``; ``record`` an index record with ``token``, ``lidar2ego`` and ``ego2global``.
    ``attributes`` overrides the per-class default attributes (e.g. with the ground truth's, in tests).
    Non-finite velocities (the devkit's "unknown") are submitted as 0.
    """
    boxes = _as_numpy(boxes, np.float64).reshape(-1, 9) if np.size(boxes) else np.zeros((0, 9))
    scores = _as_numpy(scores, np.float64).reshape(-1)
    labels = _as_numpy(labels, np.int64).reshape(-1)
    if not (len(boxes) == len(scores) == len(labels)):
        raise ValueError(f"boxes/scores/labels lengths differ: {len(boxes)}/{len(scores)}/{len(labels)}")
    if attributes is not None and len(attributes) != len(boxes):
        raise ValueError(f"{len(attributes)} attributes for {len(boxes)} boxes")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise ValueError(f"labels must index calico.config.CLASSES (0..{len(CLASSES) - 1}), got {labels.max()}")
    lidar2global = _matrix(record, "ego2global") @ _matrix(record, "lidar2ego")
    rot = lidar2global[:3, :3]
    token = record["token"]

    centers = boxes[:, :3] @ rot.T + lidar2global[:3, 3]
    vel = np.nan_to_num(boxes[:, 7:9], nan=0.0, posinf=0.0, neginf=0.0)
    vel3 = np.concatenate([vel, np.zeros((len(vel), 1))], axis=1) @ rot.T  # the model predicts no vz
    out: list[dict[str, Any]] = []
    for i in range(len(boxes)):
        yaw = boxes[i, 6]
        c, s = np.cos(yaw), np.sin(yaw)
        box_rot = rot @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        # rtol loosened: calibration rotations in the tables are only float-precise orthonormal
        quat = Quaternion(matrix=box_rot, rtol=1e-5, atol=1e-6).normalised
        name = CLASSES[int(labels[i])]
        attr = attributes[i] if attributes is not None else default_attribute(name, float(np.hypot(*vel3[i, :2])))
        out.append({
            "sample_token": token,
            "translation": [float(v) for v in centers[i]],
            "size": [float(v) for v in boxes[i, 3:6]],
            "rotation": [float(v) for v in quat.elements],  # w, x, y, z
            "velocity": [float(vel3[i, 0]), float(vel3[i, 1])],
            "detection_name": name,
            "detection_score": float(scores[i]),
            "attribute_name": attr,
        })
    return out
