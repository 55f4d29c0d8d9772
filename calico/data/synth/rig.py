"""The sensor rig of the synthetic car, modelled on nuScenes' (one HDL-32E-like LiDAR, six cameras).

Frames follow nuScenes: ego (x forward, y left, z up, origin on the ground under the rear axle),
LIDAR_TOP (x right, y forward, z up), cameras (OpenCV: x right, y down, z forward).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# nuScenes 1600x900 intrinsics (fx, cx, cy), scaled to the configured image size at generation time.
_NUSC_W, _NUSC_H = 1600.0, 900.0
# name: (yaw about ego z in degrees, translation in the ego frame, fx at 1600x900)
CAMERA_SPECS: dict[str, tuple[float, tuple[float, float, float], float]] = {
    "CAM_FRONT": (0.0, (1.70, 0.016, 1.51), 1266.4),
    "CAM_FRONT_RIGHT": (-55.0, (1.55, -0.49, 1.50), 1260.5),
    "CAM_BACK_RIGHT": (-110.0, (1.04, -0.48, 1.56), 1256.7),
    "CAM_BACK": (180.0, (0.03, 0.0, 1.57), 809.2),  # nuScenes' rear camera has the wider field of view
    "CAM_BACK_LEFT": (110.0, (1.03, 0.48, 1.56), 1256.7),
    "CAM_FRONT_LEFT": (55.0, (1.52, 0.49, 1.51), 1272.6),
}
CAMERA_NAMES = tuple(CAMERA_SPECS)

LIDAR_TRANSLATION = (0.94, 0.0, 1.84)
LIDAR_BEAMS = 32
LIDAR_ELEV_DEG = (-30.67, 10.67)  # HDL-32E: beams linearly spaced between these elevations
LIDAR_AZIMUTHS = 1080
LIDAR_MAX_RANGE = 70.0


def rot_z(yaw: float) -> np.ndarray:
    """3x3 rotation about +z."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def quat_from_matrix(r: np.ndarray) -> list[float]:
    """Rotation matrix -> nuScenes quaternion [w, x, y, z] (w >= 0)."""
    from pyquaternion import Quaternion

    q = Quaternion(matrix=r, atol=1e-7, rtol=1e-7)
    q = q if q.w >= 0 else -q
    return [float(q.w), float(q.x), float(q.y), float(q.z)]


@dataclass
class Sensor:
    """A calibrated sensor: pose in the ego frame and, for cameras, the intrinsics."""

    name: str
    modality: str
    rotation: np.ndarray  # 3x3 sensor -> ego
    translation: np.ndarray  # (3,) sensor origin in the ego frame
    intrinsic: np.ndarray | None = None  # 3x3
    width: int = 0
    height: int = 0


# Camera axes (x right, y down, z forward) expressed in a forward-looking ego frame (x fwd, y left, z up).
_CAM_AXES = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def build_rig(image_size: tuple[int, int]) -> dict[str, Sensor]:
    """LIDAR_TOP and the six cameras; intrinsics scaled from nuScenes' 1600x900 to ``image_size`` (H, W)."""
    h, w = int(image_size[0]), int(image_size[1])
    if h < 8 or w < 8:
        raise ValueError(f"image_size {image_size} is too small (need at least 8x8 pixels)")
    sx, sy = w / _NUSC_W, h / _NUSC_H
    rig = {
        "LIDAR_TOP": Sensor("LIDAR_TOP", "lidar", rot_z(-np.pi / 2), np.array(LIDAR_TRANSLATION)),
    }
    for name, (yaw, trans, fx) in CAMERA_SPECS.items():
        k = np.array([[fx * sx, 0.0, (_NUSC_W / 2 + 16) * sx], [0.0, fx * sy, (_NUSC_H / 2 + 41) * sy], [0, 0, 1.0]])
        rig[name] = Sensor(name, "camera", rot_z(np.deg2rad(yaw)) @ _CAM_AXES, np.array(trans), k, w, h)
    return rig


def lidar_elevations() -> np.ndarray:
    """(32,) beam elevations in radians, ring 0 = lowest beam."""
    return np.deg2rad(np.linspace(LIDAR_ELEV_DEG[0], LIDAR_ELEV_DEG[1], LIDAR_BEAMS))


def lidar_ray_grid() -> np.ndarray:
    """(32, 1080, 3) unit ray directions in the LIDAR_TOP frame; column j has azimuth 2*pi*j/1080 from +x."""
    el = lidar_elevations()[:, None]
    az = (2 * np.pi / LIDAR_AZIMUTHS) * np.arange(LIDAR_AZIMUTHS)[None, :]
    return np.stack(np.broadcast_arrays(np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)), -1)


def camera_ray_grid(sensor: Sensor) -> np.ndarray:
    """(H, W, 3) unit ray directions through pixel centres in the camera frame."""
    v, u = np.mgrid[0 : sensor.height, 0 : sensor.width].astype(np.float64) + 0.5
    k = sensor.intrinsic
    d = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], -1)
    return d / np.linalg.norm(d, axis=-1, keepdims=True)
