"""Camera images by ray casting: material colours, procedural textures, Lambertian sun shading, sky.

The same world geometry as the LiDAR is used, so a LiDAR point projected with the calibration lands on
the object it hit. ``render`` also returns the object-id buffer (tests and visibility use it).
"""

from __future__ import annotations

import numpy as np

from .render import SKY, Hits, camera_rects, cast
from .rig import Sensor, camera_ray_grid
from .world import GROUND_MATERIALS, SceneWorld

SUN = np.array([0.4, 0.3, 0.85]) / np.linalg.norm([0.4, 0.3, 0.85])
HORIZON, ZENITH = np.array([205.0, 215.0, 228.0]), np.array([95.0, 140.0, 205.0])
GLASS = np.array([45.0, 60.0, 80.0])
MAX_RANGE = 150.0
_GRIDS: dict = {}


def _hash(p: np.ndarray, scale: float) -> np.ndarray:
    """Deterministic value noise in [0, 1) from quantised positions."""
    q = np.floor(p * scale)
    return np.mod(np.sin(q[:, 0] * 12.9898 + q[:, 1] * 78.233 + q[:, 2] * 37.719) * 43758.5453, 1.0)


def cast_camera(world: SceneWorld, t: float, ego_rot: np.ndarray, ego_t: np.ndarray, cam: Sensor) -> Hits:
    """The camera's per-pixel ray hits (distance, object id, material, point, normal), rows x cols flattened."""
    key = (cam.name, cam.height, cam.width, tuple(cam.intrinsic.ravel()))
    if key not in _GRIDS:
        _GRIDS[key] = camera_ray_grid(cam)
    rot = ego_rot @ cam.rotation
    origin = ego_t + ego_rot @ cam.translation
    return cast(world, t, origin, rot, _GRIDS[key],
                lambda c, s: camera_rects(c, s, cam.intrinsic, cam.height, cam.width), MAX_RANGE, count_unoccluded=True)


def render(world: SceneWorld, t: float, ego_rot: np.ndarray, ego_t: np.ndarray,
           cam: Sensor) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    """Image (H, W, 3) uint8, object ids (H, W) int32 (-1 sky, -2 ground) and unoccluded pixel counts."""
    hits = cast_camera(world, t, ego_rot, ego_t, cam)
    d = _GRIDS[(cam.name, cam.height, cam.width, tuple(cam.intrinsic.ravel()))].reshape(-1, 3) @ (ego_rot @ cam.rotation).T
    hit = hits.obj != SKY
    img = np.empty((len(d), 3))
    a = np.clip(d[~hit, 2] * 2.5, 0.0, 1.0)[:, None]
    img[~hit] = HORIZON * (1 - a) + ZENITH * a
    p, mat, nrm = hits.point[hit], hits.mat[hit], hits.normal[hit]
    n_ground = len(GROUND_MATERIALS)
    palette = np.array([m[0] for m in GROUND_MATERIALS] + [m[0] for m in world.materials], dtype=np.float64)
    textures = np.array([0] * n_ground + [m[2] for m in world.materials])
    col = palette[mat]
    tex = textures[mat]
    col *= (0.9 + 0.2 * _hash(p, 6.0))[:, None]
    if (tex > 0).any():
        poses = world.object_poses(t)
        oid = hits.obj[hit]
        base_z = np.where(oid >= 0, poses[np.maximum(oid, 0), 2], 0.0)
        z_rel = p[:, 2] - base_z
        vertical = np.abs(nrm[:, 2]) < 0.5
        win = (tex == 1) & vertical & (np.mod(z_rel / 3.2, 1) > 0.35) & (np.mod(z_rel / 3.2, 1) < 0.8) & \
            (np.mod((p[:, 0] + p[:, 1]) / 2.8, 1) > 0.25) & (np.mod((p[:, 0] + p[:, 1]) / 2.8, 1) < 0.75)
        col[win] = GLASS * (0.8 + 0.4 * _hash(p[win], 0.35))[:, None]
        stripe = (tex == 2) & (np.mod((p[:, 0] + p[:, 1] + p[:, 2]) / 0.6, 1) < 0.5)
        col[stripe] = (200.0, 30.0, 30.0)
        leafy = tex == 3
        col[leafy] *= (0.7 + 0.6 * _hash(p[leafy], 4.0))[:, None]
        bus_win = (tex == 4) & vertical & (z_rel > 1.7) & (z_rel < 2.9)
        col[bus_win] = GLASS
    shade = 0.55 + 0.45 * np.clip(nrm @ SUN, 0.0, 1.0)
    col *= shade[:, None]
    fog = 1.0 - np.exp(-hits.t[hit] / 400.0)
    img[hit] = col * (1 - fog[:, None]) + HORIZON * fog[:, None]
    image = np.clip(img, 0, 255).astype(np.uint8).reshape(cam.height, cam.width, 3)
    return image, hits.obj.reshape(cam.height, cam.width), hits.unoccluded
