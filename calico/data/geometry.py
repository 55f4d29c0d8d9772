"""Geometry shared by every layer: 4x4 rigid transforms (float64) and boxes ``x, y, z, w, l, h, yaw, ...``
(nuScenes ``wlh`` sizes, yaw of the length axis about +z): BEV outlines and points-in-box tests."""

from __future__ import annotations

import numpy as np
from pyquaternion import Quaternion


def transform_matrix(translation, rotation_wxyz) -> np.ndarray:
    """4x4 matrix of a nuScenes pose record (translation xyz, rotation quaternion w,x,y,z)."""
    m = np.eye(4)
    m[:3, :3] = Quaternion(rotation_wxyz).rotation_matrix
    m[:3, 3] = np.asarray(translation, dtype=np.float64)
    return m


def invert(m: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform (cheaper and better conditioned than np.linalg.inv)."""
    out = np.eye(4)
    r = m[:3, :3]
    out[:3, :3] = r.T
    out[:3, 3] = -r.T @ m[:3, 3]
    return out


def apply(m: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to (N, 3) points."""
    return xyz @ m[:3, :3].T + m[:3, 3]


def yaw_of(rot: np.ndarray) -> float:
    """Heading (rad) of a rotation's x axis projected on the xy plane."""
    return float(np.arctan2(rot[1, 0], rot[0, 0]))


def points_in_boxes(xyz: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, B) bool: point n inside box b; boxes (B, >=7) ``x, y, z, w, l, h, yaw`` (nuScenes ``wlh``)."""
    if len(boxes) == 0 or len(xyz) == 0:
        return np.zeros((len(xyz), len(boxes)), dtype=bool)
    d = xyz[:, None, :3] - boxes[None, :, :3]
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    along = d[..., 0] * c + d[..., 1] * s  # along the box's length axis (yaw direction)
    across = -d[..., 0] * s + d[..., 1] * c
    return ((np.abs(along) <= boxes[:, 4] / 2) & (np.abs(across) <= boxes[:, 3] / 2)
            & (np.abs(d[..., 2]) <= boxes[:, 5] / 2))


def box_corners(box: np.ndarray) -> np.ndarray:
    """(5, 2) closed BEV outline of a box ``x, y, z, w, l, h, yaw``."""
    x, y, w, length, yaw = box[0], box[1], box[3], box[4], box[6]
    c, s = np.cos(yaw), np.sin(yaw)
    local = np.array([[length, w], [length, -w], [-length, -w], [-length, w], [length, w]]) / 2
    return local @ np.array([[c, s], [-s, c]]) + [x, y]
