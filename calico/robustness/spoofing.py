"""Black-box LiDAR spoofing (Sun et al., USENIX Security 2020): inject a fake car trace ahead of the ego.

The attacker fires 60, 100 or 200 points shaped like the visible face of a real car, 10 m ahead of the
ego vehicle in free space. The attack succeeds on a frame when the detector then reports a car within
2 m (BEV) of the spoofed car's centre above its score threshold; ASR is the success rate over frames.

Geometry: the spoofed car's box centre (``spot``) is placed ``distance`` m ahead of the ego origin along
the ego frame's +x (forward) axis, on the ego ground plane z = 0, then mapped into the LiDAR frame with
``lidar2ego`` (nuScenes LIDAR_TOP has +y forward; we never assume it). If the car footprint there
(plus a margin) holds non-ground points, the spot shifts sideways by 1, -1, 2, -2, ... m.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from calico.errors import DataError
from calico.robustness.make_spoof_template import TEMPLATE_PATH
from calico.robustness.metrics import attack_success_rate

TRACE_SIZES = (60, 100, 200)
MAX_SWEEPS = 20  # every_sweep: nuScenes' loaders stack at most 10 sweeps; more distinct dt values is not sweeps
GROUND_CLEARANCE = 0.3  # m above the local ground: lower points are road surface, not obstacles


@lru_cache(maxsize=1)
def load_template() -> tuple[np.ndarray, np.ndarray]:
    """(points (N, 4) box-frame x, y, z-from-bottom, intensity; lwh (3,)) of the real car template,
    falling back to :func:`synthetic_car_template` when the .npz is absent (it is built by
    ``python -m calico.robustness.make_spoof_template``)."""
    if TEMPLATE_PATH.is_file():
        return read_template(TEMPLATE_PATH)
    return synthetic_car_template()


def read_template(path: str | Path, min_points: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A template written by ``make_spoof_template`` (e.g. a car of the evaluated dataset's own LiDAR, so the
    trace is in the detector's domain, as Sun et al.'s traces were); DataError naming the file when it is
    unreadable, malformed or holds fewer than ``min_points`` points."""
    try:
        with np.load(path) as data:
            points, lwh = data["points"].astype(np.float32), data["lwh"].astype(np.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: not a spoofing template (.npz with 'points' and 'lwh'): {exc}") from exc
    if points.ndim != 2 or points.shape[1] != 4 or lwh.shape != (3,) or not np.isfinite(points).all():
        raise DataError(f"{path}: 'points' must be finite (N, 4) and 'lwh' (3,), got {points.shape} and {lwh.shape}")
    if len(points) < min_points:
        raise DataError(f"{path}: the template holds {len(points)} points, fewer than the largest trace "
                        f"({min_points}); build it from a car with more points")
    return points, lwh


def synthetic_car_template(lwh: tuple[float, float, float] = (4.6, 1.8, 1.6), distance: float = 10.0
                           ) -> tuple[np.ndarray, np.ndarray]:
    """The rear face of a box car (bumper 0.3 m up to the roof) and its roof edge, sampled on the
    HDL-32E grid (1.33 deg x 0.33 deg) as seen from ``distance`` m behind it."""
    length, width, height = lwh
    dz = distance * np.tan(np.deg2rad(41.34 / 31))
    dy = distance * np.tan(np.deg2rad(360.0 / 1080))
    ys = np.arange(-width / 2, width / 2 + 1e-6, dy)
    rear = [(-length / 2, y, z, 20.0) for z in np.arange(0.3, height, dz) for y in ys]
    roof = [(-length / 2 + 0.3, y, height, 10.0) for y in ys]
    return np.array(rear + roof, dtype=np.float32), np.array(lwh, dtype=np.float32)


def forward_axis(lidar2ego: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit BEV vectors (forward, left) of the ego vehicle expressed in the LiDAR frame."""
    rot = np.asarray(lidar2ego, dtype=np.float64)[:3, :3]
    fwd, left = rot.T @ np.array([1.0, 0.0, 0.0]), rot.T @ np.array([0.0, 1.0, 0.0])
    fwd, left = fwd[:2] / np.linalg.norm(fwd[:2]), left[:2] / np.linalg.norm(left[:2])
    return fwd, left


def _footprint_hits(points: np.ndarray, centre: np.ndarray, fwd: np.ndarray, half: np.ndarray,
                    ground_z: float) -> int:
    rel = points[:, :2] - centre[:2]
    along, across = rel @ fwd, rel @ np.array([-fwd[1], fwd[0]])
    inside = (np.abs(along) <= half[0]) & (np.abs(across) <= half[1])
    return int((inside & (points[:, 2] > ground_z + GROUND_CLEARANCE)).sum())


def place_spot(points: np.ndarray, lidar2ego: np.ndarray, distance: float = 10.0, margin: float = 0.5,
               max_shift: float = 6.0, lwh: np.ndarray | None = None) -> dict[str, Any]:
    """Choose the spoofed car's centre: ``distance`` m ahead in the ego frame, shifted sideways until
    its footprint (+ ``margin``) is free of non-ground points. Returns {spot (3,), yaw, shift, free}:
    ``spot`` in the LiDAR frame at the car's vertical centre, ``yaw`` the heading (LiDAR frame) of a car
    driving ahead, ``free`` False when no shift within ``max_shift`` found free space (spot unshifted)."""
    lidar2ego = np.asarray(lidar2ego, dtype=np.float64)
    if lidar2ego.shape != (4, 4):
        raise ValueError(f"lidar2ego must be 4x4, got {lidar2ego.shape}")
    lwh = load_template()[1] if lwh is None else np.asarray(lwh)
    ego2lidar = np.linalg.inv(lidar2ego)
    fwd, _ = forward_axis(lidar2ego)
    half = np.array([lwh[0] / 2 + margin, lwh[1] / 2 + margin])
    shifts = [0.0] + [s * k for k in np.arange(1.0, max_shift + 1e-6) for s in (1.0, -1.0)]
    chosen = None
    for shift in shifts:
        ground = ego2lidar @ np.array([distance, shift, 0.0, 1.0])
        near = np.linalg.norm(points[:, :2] - ground[:2], axis=1) < 4.0
        ground_z = float(np.percentile(points[near, 2], 10)) if near.sum() >= 10 else float(ground[2])
        if _footprint_hits(points, ground, fwd, half, ground_z) == 0:
            chosen = (ground, ground_z, shift, True)
            break
    if chosen is None:
        ground = ego2lidar @ np.array([distance, 0.0, 0.0, 1.0])
        chosen = (ground, float(ground[2]), 0.0, False)
    ground, ground_z, shift, free = chosen
    spot = np.array([ground[0], ground[1], ground_z + lwh[2] / 2], dtype=np.float64)
    return {"spot": spot, "ground_z": ground_z, "yaw": float(np.arctan2(fwd[1], fwd[0])),
            "shift": float(shift), "free": bool(free)}


def spoof(points: np.ndarray, n_points: int, rng: np.random.Generator, lidar2ego: np.ndarray,
          distance: float = 10.0, template: tuple[np.ndarray, np.ndarray] | None = None,
          every_sweep: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Inject ``n_points`` points of the car template, its visible face towards the sensor, with the fake
    car centred ``distance`` m ahead of the ego vehicle in free space (see :func:`place_spot`).

    Returns (points with the trace appended, (P + n, 5) float32 with dt = 0, the keyframe scan's; spot (3,)
    the fake car's centre in the LiDAR frame). The trace is a random subset of the template's points.

    ``every_sweep``: the paper's digital attack (after Sun et al., on single-scan KITTI) spoofs the keyframe
    scan only, so a multi-sweep detector sees the fake car in one of its sweeps. With ``True`` a spoofer
    that keeps firing is modelled: a trace of ``n_points`` (its own random subset) is added for every sweep
    time (each distinct ``dt`` in ``points``) at the same place in the keyframe frame, i.e. a static fake
    car (sweeps are motion-compensated into that frame). Rows: P + n_points * sweeps.
    """
    if not isinstance(points, np.ndarray) or points.ndim != 2 or points.shape[1] != 5:
        raise ValueError(f"points must be a (P, 5) array, got {getattr(points, 'shape', type(points))}")
    tpl, lwh = template if template is not None else load_template()
    if not 0 < n_points <= len(tpl):
        raise ValueError(f"n_points must be in 1..{len(tpl)} (template size), got {n_points}")
    place = place_spot(points, lidar2ego, distance, lwh=lwh)
    c, s = np.cos(place["yaw"]), np.sin(place["yaw"])
    imax = 255.0 if points[:, 3].max(initial=0.0) > 1.5 else 1.0
    dts = np.unique(points[:, 4]) if every_sweep and len(points) else np.zeros(1, np.float32)
    if len(dts) > MAX_SWEEPS:  # dt is one value per sweep in the loader; per-point times would mean one trace a point
        raise ValueError(f"every_sweep: the cloud has {len(dts)} distinct dt values, more than {MAX_SWEEPS} sweeps")
    traces = []
    for dt in dts:
        trace = tpl[np.sort(rng.choice(len(tpl), size=n_points, replace=False))]
        injected = np.zeros((n_points, 5), dtype=np.float32)
        injected[:, 0] = place["spot"][0] + c * trace[:, 0] - s * trace[:, 1]
        injected[:, 1] = place["spot"][1] + s * trace[:, 0] + c * trace[:, 1]
        injected[:, 2] = place["ground_z"] + trace[:, 2]
        injected[:, 3] = np.clip(trace[:, 3], 0.0, imax)
        injected[:, 4] = dt
        traces.append(injected)
    return np.concatenate([points.astype(np.float32), *traces]), place["spot"]


def spot_score(detections: Mapping[str, Any], spot: np.ndarray, class_id_car: int = 0,
               radius: float = 2.0) -> float:
    """The highest score of a class-``class_id_car`` detection whose BEV centre lies within ``radius`` m of
    ``spot`` (0 when there is none). ``detections``: {"boxes" (N, >=2) LiDAR frame, "scores" (N,),
    "labels" (N,)}, numpy or torch."""
    boxes, scores, labels = (np.asarray(_to_numpy(detections[k])) for k in ("boxes", "scores", "labels"))
    if len(boxes) == 0:
        return 0.0
    dist = np.linalg.norm(boxes[:, :2] - np.asarray(spot)[None, :2], axis=1)
    near = (labels == class_id_car) & (dist <= radius)
    return float(scores[near].max()) if near.any() else 0.0


def attack_success(detections: Mapping[str, Any], spot: np.ndarray, class_id_car: int = 0,
                   score_thr: float = 0.3, radius: float = 2.0) -> bool:
    """True when a detection of class ``class_id_car`` with score >= ``score_thr`` has its BEV centre
    within ``radius`` m of ``spot`` (:func:`spot_score` >= ``score_thr``)."""
    return succeeded(spot_score(detections, spot, class_id_car, radius), score_thr)


def succeeded(score: float, score_thr: float = 0.3) -> bool:
    """Whether a :func:`spot_score` counts as a reported car: at least ``score_thr`` and above 0 (0 means no
    detection there, whatever the threshold)."""
    return score > 0.0 and score >= score_thr


def asr(successes: list[bool]) -> float:
    """Attack success rate over frames (see :func:`calico.robustness.metrics.attack_success_rate`)."""
    return attack_success_rate(successes)


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)
