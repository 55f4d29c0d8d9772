"""Per-point ground truth of the synthetic LiDAR: what each ray hit (written by ``generate(labels=True)``).

``<dataroot>/labels/<lidar file path without .pcd.bin>.npy`` holds one int32 per point of the ``.pcd.bin``
(same order): the object id (>= 0, objects and clutter such as buildings and trees), ``GROUND`` (-2, the
terrain surface incl. kerbs and raised areas) or ``EGO_ROOF`` (-3, the car's own roof).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calico.errors import DataError

from .lidar import EGO as EGO_ROOF
from .render import GROUND

__all__ = ["EGO_ROOF", "GROUND", "labels_path", "ground_truth_labels", "write_labels"]


def labels_path(dataroot: str | Path, lidar_path: str) -> Path:
    """Where the labels of the LiDAR file ``lidar_path`` (relative to ``dataroot``) live."""
    rel = lidar_path[: -len(".pcd.bin")] if lidar_path.endswith(".pcd.bin") else lidar_path
    return Path(dataroot) / "labels" / f"{rel}.npy"


def write_labels(dataroot: str | Path, lidar_path: str, obj: np.ndarray) -> None:
    path = labels_path(dataroot, lidar_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(obj, dtype=np.int32))


def ground_truth_labels(dataroot: str | Path, lidar_path: str) -> np.ndarray:
    """int32 (N,) hit kind per point of ``lidar_path``; DataError when the world was written without labels."""
    path = labels_path(dataroot, lidar_path)
    if not path.is_file():
        raise DataError("no per-point labels: regenerate the world with `calico synth --labels`", str(path))
    lab = np.load(path)
    n = (Path(dataroot) / lidar_path).stat().st_size // (5 * 4)
    if lab.ndim != 1 or len(lab) != n:
        raise DataError(f"{len(lab)} labels for {n} points in {lidar_path}", str(path))
    return lab
