"""Small rigid-transform helpers shared by the data layer (4x4 homogeneous matrices, float64)."""

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
