"""The world of one scene: ground (slope, roughness, kerbs, materials), objects and their motion.

Everything here is in the scene-local frame (x along the main road, z up); ``SceneWorld.to_global``
places the scene in the map. Objects move at constant velocity, so the position at any sweep or camera
time is exact and the devkit's centred-difference ``box_velocity`` recovers the true velocity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .objects import MATERIALS, build_clutter, build_shape
from .rig import rot_z


def _cat(a: np.ndarray | None, b: np.ndarray) -> np.ndarray:
    return b if a is None else np.concatenate([a, b])

# Ground material codes of the raster (camera colour and LiDAR reflectivity in GROUND_MATERIALS).
GRASS, ROAD, WHITE, YELLOW, SIDEWALK, PARKING, DIRT = range(7)
GROUND_MATERIALS: list[tuple[tuple[int, int, int], float]] = [
    ((95, 120, 70), 0.15), ((70, 70, 74), 0.12), ((235, 235, 230), 0.85), ((225, 185, 40), 0.7),
    ((170, 168, 160), 0.3), ((85, 85, 88), 0.12), ((140, 115, 85), 0.2),
]
KERB = 0.15  # m, sidewalks are raised by this much
RASTER_RES = 0.1  # m per cell of the ground material raster


@dataclass
class WorldObject:
    """An object with constant-velocity motion; ``name`` is a detection class or None for clutter."""

    name: str | None
    wlh: tuple[float, float, float]
    xy0: np.ndarray  # position at t = 0 (scene-local)
    vel: np.ndarray  # (2,) m/s
    yaw: float
    prims: tuple[int, int]  # slice into the world's primitive arrays
    rider: bool = False
    parked: bool = False  # off-road (car park / lot / sidewalk) when static

    def xy(self, t: float) -> np.ndarray:
        return self.xy0 + self.vel * t


@dataclass
class SceneWorld:
    """Ground model, material raster, map rectangles/lines and all objects of one scene."""

    slope: tuple[float, float]
    extent: tuple[float, float, float, float]  # x0, x1, y0, y1 of the raster
    raster: np.ndarray  # (ny, nx) uint8 ground material codes
    raised: np.ndarray  # (ny, nx) bool: sidewalk (kerb-raised)
    layers: dict[str, list]  # map layer -> rectangles (x0, y0, x1, y1) or polylines [(x, y), ...]
    objects: list[WorldObject] = field(default_factory=list)
    prim_kind: np.ndarray | None = None
    prim_local: np.ndarray | None = None  # (P, 4) x, y, z centre, yaw in the object frame
    prim_half: np.ndarray | None = None  # (P, 3)
    prim_mat: np.ndarray | None = None  # (P,) index into ``materials``
    prim_obj: np.ndarray | None = None  # (P,) object index
    materials: list[tuple[tuple[int, int, int], float, int]] = field(default_factory=list)
    ego_lane_y: float = -1.75
    ego_speed: float = 5.0
    ego_x0: float = 0.0
    rotation: float = 0.0  # scene yaw in the global map
    offset: tuple[float, float] = (0.0, 0.0)  # scene origin in the global map

    # -- ground -----------------------------------------------------------------------------------
    def plane_height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.slope[0] * x + self.slope[1] * y

    def roughness(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """A few cm of smooth bumps (a fixed sum of sines, so LiDAR and camera see the same surface)."""
        return 0.012 * np.sin(0.9 * x + 0.3 * y) * np.sin(0.7 * y - 0.2 * x) + 0.006 * np.sin(2.3 * x + 1.7 * y)

    def cells(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x0, _, y0, _ = self.extent
        ix = np.floor((x - x0) / RASTER_RES).astype(np.int64)
        iy = np.floor((y - y0) / RASTER_RES).astype(np.int64)
        ok = (ix >= 0) & (iy >= 0) & (ix < self.raster.shape[1]) & (iy < self.raster.shape[0])
        return np.where(ok, iy, 0), np.where(ok, ix, 0), ok

    def material_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        iy, ix, ok = self.cells(x, y)
        return np.where(ok, self.raster[iy, ix], GRASS)

    def raised_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        iy, ix, ok = self.cells(x, y)
        return ok & self.raised[iy, ix]

    def ground_z(self, x, y) -> np.ndarray:
        """Surface height of the ground where objects stand (plane plus kerb, no roughness)."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        return self.plane_height(x, y) + KERB * self.raised_at(x, y)

    def normal(self) -> np.ndarray:
        n = np.array([-self.slope[0], -self.slope[1], 1.0])
        return n / np.linalg.norm(n)

    # -- objects ----------------------------------------------------------------------------------
    def add_object(self, name: str | None, prims: list, xy, yaw: float, wlh=(0.0, 0.0, 0.0), vel=(0.0, 0.0),
                   rider: bool = False, parked: bool = False) -> None:
        start = 0 if self.prim_kind is None else len(self.prim_kind)
        kinds, local, half, mats = [], [], [], []
        for kind, x, y, z, pyaw, hx, hy, hz, mat in prims:
            kinds.append(kind)
            local.append((x, y, z, pyaw))
            half.append((hx, hy, hz))
            mats.append(self._material(mat))
        idx = len(self.objects)
        self.prim_kind = _cat(self.prim_kind, np.array(kinds, dtype=np.int8))
        self.prim_local = _cat(self.prim_local, np.array(local, dtype=np.float64).reshape(-1, 4))
        self.prim_half = _cat(self.prim_half, np.array(half, dtype=np.float64).reshape(-1, 3))
        self.prim_mat = _cat(self.prim_mat, np.array(mats, dtype=np.int32))
        self.prim_obj = _cat(self.prim_obj, np.full(len(kinds), idx, dtype=np.int32))
        self.objects.append(WorldObject(name, tuple(float(v) for v in wlh), np.asarray(xy, dtype=np.float64),
                                        np.asarray(vel, dtype=np.float64), float(yaw), (start, start + len(kinds)),
                                        rider, parked))

    def _material(self, mat) -> int:
        if isinstance(mat, str):
            entry = MATERIALS[mat]
        elif isinstance(mat[0], str):  # ("building", rgb)
            entry = (mat[1], 0.35, 1)
        else:  # plain rgb paint (vehicle bodies, clothes)
            entry = (tuple(mat), 0.5, 0)
        if entry not in self.materials:
            self.materials.append(entry)
        return len(GROUND_MATERIALS) + self.materials.index(entry)

    def prim_groups(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per object, the indices of its box and of its cylinder primitives (cached)."""
        if getattr(self, "_groups", None) is None or len(self._groups[0]) != len(self.objects):
            boxes, cyls = [], []
            for o in self.objects:
                idx = np.arange(*o.prims)
                boxes.append(idx[self.prim_kind[idx] == 0])
                cyls.append(idx[self.prim_kind[idx] != 0])
            self._groups = (boxes, cyls)
        return self._groups

    def object_poses(self, t: float) -> np.ndarray:
        """(N, 4) x, y, z (ground under the object), yaw of every object at time ``t`` (s)."""
        xy = np.stack([o.xy0 + o.vel * t for o in self.objects])
        z = self.ground_z(xy[:, 0], xy[:, 1])
        yaw = np.array([o.yaw for o in self.objects])
        return np.column_stack([xy, z, yaw])

    def primitives(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """World-frame primitive centres (P,3), yaws (P,), half sizes (P,3) and kinds (P,) at time ``t``."""
        poses = self.object_poses(t)[self.prim_obj]
        cs, sn = np.cos(poses[:, 3]), np.sin(poses[:, 3])
        lx, ly = self.prim_local[:, 0], self.prim_local[:, 1]
        c = np.column_stack([poses[:, 0] + cs * lx - sn * ly, poses[:, 1] + sn * lx + cs * ly,
                             poses[:, 2] + self.prim_local[:, 2]])
        return c, poses[:, 3] + self.prim_local[:, 3], self.prim_half, self.prim_kind

    # -- ego ----------------------------------------------------------------------------------------
    def ego_pose(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Ego (rotation 3x3 ego->local, translation) at time ``t``: on the ground, pitched/rolled with it."""
        x = self.ego_x0 + self.ego_speed * t
        y = self.ego_lane_y
        up = self.normal()
        fwd = np.array([1.0, 0.0, self.slope[0]])
        fwd -= up * (fwd @ up)
        fwd /= np.linalg.norm(fwd)
        rot = np.column_stack([fwd, np.cross(up, fwd), up])
        return rot, np.array([x, y, float(self.plane_height(np.float64(x), np.float64(y)))])

    def to_global(self) -> tuple[np.ndarray, np.ndarray]:
        """(3x3, (3,)) transform scene-local -> global map coordinates."""
        return rot_z(self.rotation), np.array([self.offset[0], self.offset[1], 0.0])


def clutter(world: SceneWorld, kind: str, rng: np.random.Generator, xy, yaw: float = 0.0, **kw) -> None:
    """Add an unlabelled structure (building, tree, pole, hedge, wall) standing on the ground."""
    world.add_object(None, build_clutter(kind, rng, **kw), xy, yaw)


def thing(world: SceneWorld, name: str, rng: np.random.Generator, xy, yaw: float, wlh, vel=(0.0, 0.0),
          rider: bool = False, parked: bool = False) -> None:
    """Add a labelled object of detection class ``name``."""
    world.add_object(name, build_shape(name, wlh, rng, rider=rider), xy, yaw, wlh, vel, rider, parked)
