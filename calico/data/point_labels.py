"""Per-point ground truth for pooling evaluation: where it lives and what its values mean.

Both sources write one int32 per point of a keyframe ``.pcd.bin`` (same order) to
``<dataroot>/labels/<lidar file path without .pcd.bin>.npy`` (``calico.data.synth.labels.labels_path``).

* Converted real data (``calico convert pandaset``) also writes ``labels/format.json`` (``CLASS_FORMAT``):
  values ``0..9`` index ``calico.config.CLASSES`` (a point of an object of that detection class),
  ``BACKGROUND`` (-1: buildings, vegetation, poles, signs, noise), ``GROUND`` (-2: road, sidewalk, markings,
  terrain), ``OTHER_OBJECT`` (-4: a movable object outside the 10 classes, e.g. an emergency vehicle, a rolling
  bin, an animal).
* The synthetic world (``calico synth --labels``, no ``format.json``): the id of the primitive the ray hit
  (>= 0: labelled objects *and* clutter such as buildings and trees), -2 ground, -3 the ego roof. Its object
  points are the hits with an id that lie inside a ground-truth box (clutter carries no box).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

BACKGROUND, GROUND, EGO_ROOF, OTHER_OBJECT = -1, -2, -3, -4
CLASS_FORMAT = "calico-point-classes-v1"


def format_path(dataroot: str | Path) -> Path:
    return Path(dataroot) / "labels" / "format.json"


def write_format(dataroot: str | Path, source: str) -> None:
    from calico.config import CLASSES

    path = format_path(dataroot)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "format": CLASS_FORMAT, "source": source, "classes": list(CLASSES),
        "codes": {"background": BACKGROUND, "ground": GROUND, "ego": EGO_ROOF, "other_object": OTHER_OBJECT},
    }, indent=1))


def label_format(dataroot: str | Path) -> str:
    """``CLASS_FORMAT`` for converted data, ``"synth"`` otherwise."""
    path = format_path(dataroot)
    if not path.is_file():
        return "synth"
    from calico.errors import DataError

    try:
        fmt = json.loads(path.read_text()).get("format")
    except (ValueError, OSError) as exc:
        raise DataError(f"unreadable label format file ({exc})", str(path)) from exc
    if fmt != CLASS_FORMAT:
        raise DataError(f"unknown label format {fmt!r} (expected {CLASS_FORMAT!r})", str(path))
    return fmt


def has_point_labels(dataroot: str | Path, lidar_path: str) -> bool:
    from calico.data.synth.labels import labels_path

    return labels_path(dataroot, lidar_path).is_file()


def object_points(labels: np.ndarray, fmt: str, in_box: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: the point belongs to an object of one of the 10 detection classes.

    ``in_box`` (N,) bool (inside some ground-truth box) is needed for the synthetic format only."""
    if fmt == CLASS_FORMAT:
        return labels >= 0
    if in_box is None:
        raise ValueError("synthetic labels need the points-in-box mask to tell objects from clutter")
    return (labels >= 0) & in_box
