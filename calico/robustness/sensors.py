"""Missing sensors and calibration errors, applied to a sample dict (docs/ARCHITECTURE.md contract).

Every function returns a new dict (arrays that change are copies; the input sample is not modified).
Missing cameras are zeroed and flagged in ``camera_valid`` (Ncam,) bool -- a key this module adds; models
that ignore it still see black images, the "sensor returns nothing" case.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from calico.robustness.corruptions import drop_rings

Sample = dict[str, Any]

# keys whose rows follow the points: they stop being valid once points are dropped or added
POINT_ALIGNED_KEYS = ("regions",)


def _num_cams(sample: Sample) -> int:
    for key in ("lidar2cam", "intrinsics", "images"):
        if key in sample:
            return int(np.asarray(sample[key]).shape[0])
    raise ValueError("sample has no camera entries (lidar2cam, intrinsics or images)")


def drop_cameras(sample: Sample, cams: Sequence[int] | str = "all") -> Sample:
    """Remove cameras ``cams`` (indices into the sample's camera axis, or "all"): zero images, flag missing."""
    n = _num_cams(sample)
    if isinstance(cams, str):
        if cams != "all":
            raise ValueError(f"cams must be a list of indices or 'all', got {cams!r}")
        idx = np.arange(n)
    else:
        idx = np.asarray(list(cams), dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"camera indices {idx.tolist()} out of range for {n} cameras")
    out = dict(sample)
    valid = np.asarray(sample.get("camera_valid", np.ones(n, dtype=bool)), dtype=bool).copy()
    valid[idx] = False
    out["camera_valid"] = valid
    if "images" in sample and sample["images"] is not None:
        images = np.array(sample["images"], copy=True)
        images[idx] = 0
        out["images"] = images
    return out


def drop_random_cameras(sample: Sample, k: int, rng: np.random.Generator) -> Sample:
    """Remove ``k`` cameras chosen uniformly at random."""
    n = _num_cams(sample)
    if not 0 <= k <= n:
        raise ValueError(f"k must be in 0..{n}, got {k}")
    return drop_cameras(sample, sorted(rng.choice(n, size=k, replace=False).tolist()))


def with_points(sample: Sample, points: np.ndarray) -> Sample:
    """A shallow copy with new ``points``; per-point keys (regions, ...) go when the point count changes."""
    out = dict(sample)
    out["points"] = points
    if len(points) != len(sample["points"]):
        for key in POINT_ALIGNED_KEYS:
            out.pop(key, None)
    return out


def drop_lidar_beams(sample: Sample, keep_rings: int, rng: np.random.Generator, uniform: bool = True) -> Sample:
    """Keep ``keep_rings`` of the 32 LiDAR rings (32 -> 16 -> 8 -> 4 emulates cheaper sensors)."""
    return with_points(sample, drop_rings(np.asarray(sample["points"]), keep_rings, rng, uniform=uniform))


def drop_lidar(sample: Sample) -> Sample:
    """Remove the LiDAR entirely: an empty (0, 5) point cloud."""
    return with_points(sample, np.zeros((0, 5), dtype=np.float32))


def random_rigid(rot_deg: float, trans_m: float, rng: np.random.Generator) -> np.ndarray:
    """4x4 rigid transform: rotation by exactly ``rot_deg`` about a uniformly random axis, translation of
    norm exactly ``trans_m`` in a uniformly random direction."""
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    t = np.eye(4)
    t[:3, :3] = Rotation.from_rotvec(axis * np.deg2rad(rot_deg)).as_matrix()
    t[:3, 3] = direction * trans_m
    return t


def perturb_calibration(sample: Sample, rot_deg: float, trans_m: float, rng: np.random.Generator,
                        shared: bool = False) -> Sample:
    """Camera extrinsic errors: lidar2cam' = dT @ lidar2cam with dT from :func:`random_rigid` (one per
    camera, or one for the whole rig when ``shared``), applied in the camera frame.

    ``cam2lidar`` becomes inv(lidar2cam') and ``lidar2img`` becomes A @ lidar2cam', where
    A = lidar2img @ cam2lidar is the sample's own image projection (K padded to 4x4, plus any image-side
    transform the loader folded in), so the three stay consistent. The images and points are untouched:
    the model is told a wrong calibration, as after a mounting drift.
    """
    if "lidar2cam" not in sample:
        raise ValueError("sample has no lidar2cam: nothing to perturb")
    l2c = np.asarray(sample["lidar2cam"], dtype=np.float64)
    n = l2c.shape[0]
    if "lidar2img" in sample:
        proj = np.asarray(sample["lidar2img"], dtype=np.float64) @ np.linalg.inv(l2c)
    else:
        proj = np.tile(np.eye(4), (n, 1, 1))
        proj[:, :3, :3] = np.asarray(sample["intrinsics"], dtype=np.float64)
    deltas = [random_rigid(rot_deg, trans_m, rng)] * n if shared else [random_rigid(rot_deg, trans_m, rng) for _ in range(n)]
    new_l2c = np.stack(deltas) @ l2c
    dtype = np.asarray(sample["lidar2cam"]).dtype
    out = dict(sample)
    out["lidar2cam"] = new_l2c.astype(dtype)
    out["cam2lidar"] = np.linalg.inv(new_l2c).astype(dtype)
    out["lidar2img"] = (proj @ new_l2c).astype(dtype)
    return out
