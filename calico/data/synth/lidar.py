"""An HDL-32E-like spinning LiDAR: 32 beams from -30.67 to +10.67 deg, 1,080 azimuth steps, 70 m range.

Each scan is ray cast at one instant (the devkit's clouds are ego-motion compensated to one timestamp,
so a frozen world per scan matches the data format). Points are in the LIDAR_TOP frame as nuScenes
stores them: float32 x, y, z, intensity (0..255), ring (0 = lowest beam), ordered azimuth-major with the
32 rings of each firing together, like the raw scan order.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .render import Hits, cast, lidar_rects
from .rig import LIDAR_AZIMUTHS, LIDAR_BEAMS, LIDAR_MAX_RANGE, Sensor, lidar_elevations, lidar_ray_grid
from .world import GROUND_MATERIALS, SceneWorld

EGO = -3  # object id of the car's own roof returns
# The roof (a mount plate) below the sensor: beams steeper than about -25 deg hit it within 1 m, mimicking
# the self-returns of real nuScenes scans that loaders crop with a radius around the sensor.
ROOF_DEPTH, ROOF_RADIUS, ROOF_REFLECTIVITY = 0.35, 0.75, 0.3
RANGE_NOISE = 0.012  # m (1 sigma)
DROPOUT = 0.01


@lru_cache(maxsize=1)
def _grid() -> np.ndarray:
    return lidar_ray_grid()


def scan(world: SceneWorld, t: float, ego_rot: np.ndarray, ego_t: np.ndarray, lidar: Sensor,
         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One LiDAR sweep at time ``t``: points (N, 5) float32 in the sensor frame and the object id per point
    (>= 0 objects, -2 ground, -3 the ego's roof)."""
    dirs = _grid()
    rot = ego_rot @ lidar.rotation
    origin = ego_t + ego_rot @ lidar.translation
    elev = lidar_elevations()
    hits: Hits = cast(world, t, origin, rot, dirs, lambda c, s: lidar_rects(c, s, elev, LIDAR_AZIMUTHS),
                      LIDAR_MAX_RANGE)
    d = dirs.reshape(-1, 3)
    rng_t, obj = hits.t.copy(), hits.obj.copy()
    refl = np.zeros(len(d))
    cos_inc = np.abs(np.einsum("ij,ij->i", hits.normal, d @ rot.T))
    mats = hits.mat
    ground_refl = np.array([m[1] for m in GROUND_MATERIALS])
    obj_refl = np.array([m[1] for m in world.materials] or [0.0])
    is_g = (mats >= 0) & (mats < len(GROUND_MATERIALS))
    refl[is_g] = ground_refl[mats[is_g]]
    is_o = mats >= len(GROUND_MATERIALS)
    refl[is_o] = obj_refl[mats[is_o] - len(GROUND_MATERIALS)]

    with np.errstate(divide="ignore"):
        t_roof = np.where(d[:, 2] < 0, ROOF_DEPTH / -d[:, 2], np.inf)
    roof = (t_roof * np.hypot(d[:, 0], d[:, 1]) <= ROOF_RADIUS) & (t_roof < rng_t)
    rng_t[roof], obj[roof], refl[roof], cos_inc[roof] = t_roof[roof], EGO, ROOF_REFLECTIVITY, -d[roof, 2]

    valid = np.isfinite(rng_t) & (rng.random(len(d)) >= DROPOUT)
    rng_t = np.where(valid, rng_t, 0.0) + rng.normal(0.0, RANGE_NOISE, len(d))
    intensity = np.round(np.clip(255.0 * refl**2 * (0.3 + 0.7 * cos_inc) + rng.normal(0, 1.0, len(d)), 0, 255))
    ring = np.repeat(np.arange(LIDAR_BEAMS), LIDAR_AZIMUTHS)
    pts = np.column_stack([d * rng_t[:, None], intensity, ring])
    order = np.arange(len(d)).reshape(LIDAR_BEAMS, LIDAR_AZIMUTHS).T.ravel()  # azimuth-major firing order
    order = order[valid[order]]
    return pts[order].astype(np.float32), obj[order]
