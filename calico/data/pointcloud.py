"""Reading and validating nuScenes ``.pcd.bin`` LiDAR files."""

from __future__ import annotations

import os

import numpy as np

from calico.errors import DataError

PCD_COLUMNS = 5  # x, y, z, intensity, ring (float32 each)
PCD_RECORD_BYTES = 4 * PCD_COLUMNS


def check_pcd_bin(path: str) -> str | None:
    """Return a description of what is wrong with a ``.pcd.bin`` file, or None when it looks valid."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return "file does not exist"
    except OSError as exc:
        return f"cannot stat file ({exc.strerror})"
    if size == 0:
        return "empty file (0 bytes)"
    if size % PCD_RECORD_BYTES:
        return (f"size {size} bytes is not a multiple of {PCD_RECORD_BYTES} "
                f"({PCD_COLUMNS} float32 columns): truncated or not a nuScenes .pcd.bin")
    return None


def load_pcd_bin(path: str, nonfinite: str = "error") -> np.ndarray:
    """Load a ``.pcd.bin`` as float32 (N, 5) ``x, y, z, intensity, ring``.

    ``nonfinite``: what to do with NaN/Inf rows: ``"error"`` raises, ``"drop"`` removes them.
    """
    problem = check_pcd_bin(path)
    if problem:
        raise DataError(problem, path)
    try:
        pts = np.fromfile(path, dtype=np.float32).reshape(-1, PCD_COLUMNS)
    except OSError as exc:
        raise DataError(f"cannot read file ({exc})", path) from exc
    finite = np.isfinite(pts[:, :4]).all(axis=1)
    if not finite.all():
        bad = int((~finite).sum())
        if nonfinite == "drop":
            pts = pts[finite]
        else:
            raise DataError(f"{bad} of {len(pts)} points have NaN/Inf coordinates or intensity "
                            "(set data.nonfinite_points=drop to discard them)", path)
    if len(pts) == 0:
        raise DataError("point cloud has no (finite) points", path)
    return pts


def crop_ego(points: np.ndarray, radius: float) -> np.ndarray:
    """Drop the ego vehicle's self-returns: points within ``radius`` metres (in xy) of the sensor."""
    if radius <= 0:
        return points
    keep = np.einsum("ij,ij->i", points[:, :2], points[:, :2]) >= radius * radius
    return points[keep]
