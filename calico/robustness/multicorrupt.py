"""MultiCorrupt (Beemelmanns et al., IV 2024) camera and LiDAR corruptions, written from its converters.

Source read: ``github.com/ika-rwth-aachen/MultiCorrupt`` at commit 6cd6225, ``converter/lidar.py``,
``converter/img.py``, ``converter/lidar_converter.py``, ``converter/img_converter.py`` (cited as ``file:line``),
and its README's metric definitions (RA, mRA, RRA, mRRA; :mod:`calico.robustness.metrics`). No code copied.

LiDAR ones: ``corrupt(points, "multicorrupt/<name>", severity, rng)`` (via
:func:`calico.robustness.corruptions.corrupt`) for :data:`LIDAR_CORRUPTIONS`. Camera ones act on a sample dict
(``images`` (Ncam,H,W,3) uint8 and the calibration of docs/ARCHITECTURE.md): :func:`corrupt_sample` covers all
of :data:`SAMPLE_CORRUPTIONS`; temporal misalignment needs the previous frame and lives in
:mod:`calico.robustness.suite`.

Where ours differs, and how
---------------------------
* **Per sweep.** MultiCorrupt rewrites the keyframe *and every sweep file* with independent draws
  (``lidar_converter.py:98-172``); we apply the LiDAR corruptions to each sweep of the aggregated cloud (the
  points sharing one ``dt``) with its own draws, in the keyframe LiDAR frame (the protocol: each sweep's own
  sensor frame; the two differ by the ego motion between sweeps, centimetres for the small rotations used).
* **Rings** come from the elevation (our loader replaces nuScenes' ring column by ``dt``), beam count a parameter.
* **Image size.** The converters work on 1600 x 900 nuScenes images; our samples hold resized ones, so pixel
  sizes (the motion-blur kernel's radius and sigma) scale by ``W / 1600``.
* **LiDAR fog** is Robo3D's fog model (the same simulator and lookup tables, ``lidar.py:394-412``) at this
  protocol's (alpha, beta) per level; **LiDAR snow** is our snowfall approximation of
  :mod:`calico.robustness.robo3d` at this protocol's (snowfall rate, terminal velocity) per level.
* **Not done yet**: camera fog (plasma fractal + depth-less haze, ``img.py:104-203``) and camera snow
  (``img.py:271-298``); the ``fog`` and ``snow`` entries here corrupt the LiDAR only (the protocol corrupts both).
* **Spatial misalignment** rotates and shifts the *LiDAR points* (``lidar.py:47-115``: 1/2/3 deg about x, y and z,
  then +2 m along x, with probability 0.2/0.4/0.6 per file) -- the boxes stay, as in the protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from calico.robustness import robo3d

SEVERITIES = (1, 2, 3)
Sample = dict[str, Any]
NUSCENES_IMAGE_WIDTH = 1600  # px, what the converters' pixel sizes refer to

# ---- parameter tables (keyed by severity) ----------------------------------------------------------------
# lidar.py:118-130: beams kept.
BEAMS_REDUCING = {1: {"keep_beams": tuple(range(1, 32, 2))}, 2: {"keep_beams": (1, 5, 9, 13, 17, 21, 25, 29)},
                  3: {"keep_beams": (1, 9, 17, 25)}}
# lidar.py:136-157: percentage of points removed (a random permutation, the first ones kept).
POINTS_REDUCING = {1: {"drop_percent": 70}, 2: {"drop_percent": 80}, 3: {"drop_percent": 90}}
# lidar.py:24-43: global N(0, s^2) shift per axis, then jitter N(0, (k s)^2) per point clipped to +-3 s,
# k = 0.15 / 0.2 / 0.12 for x / y / z.
LIDAR_MOTION_BLUR = {1: {"trans_std": 0.06}, 2: {"trans_std": 0.1}, 3: {"trans_std": 0.13}}
LIDAR_MOTION_JITTER = (0.15, 0.2, 0.12)
# lidar.py:394-398: (alpha, beta) of the fog simulator per level (noise 10 m, lidar_converter.py:159).
LIDAR_FOG = {1: {"alpha": 0.02, "beta": 0.008}, 2: {"alpha": 0.03, "beta": 0.008}, 3: {"alpha": 0.06, "beta": 0.05}}
# lidar.py:1266: (snowfall rate mm/h, terminal velocity m/s) per level.
LIDAR_SNOW = {1: {"snowfall_rate": 0.5, "terminal_velocity": 1.2}, 2: {"snowfall_rate": 2.5, "terminal_velocity": 1.6},
              3: {"snowfall_rate": 1.5, "terminal_velocity": 0.4}}
# lidar.py:58-105: probability of the misalignment per file, rotation (deg, about x, y and z), shift (m along +x).
SPATIAL_MISALIGNMENT = {1: {"probability": 0.2, "rotation_deg": 1.0}, 2: {"probability": 0.4, "rotation_deg": 2.0},
                        3: {"probability": 0.6, "rotation_deg": 3.0}}
SPATIAL_SHIFT = (2.0, 0.0, 0.0)
# img.py:13-24: + s on the HSV value channel.
BRIGHTNESS = {1: {"shift": 0.5}, 2: {"shift": 0.6}, 3: {"shift": 0.7}}
# img.py:82-100: rescale to [0, s] with gamma 2, then Poisson (rate 10 x [25, 12, 5]) and Gaussian (0.1 x [.08, .18,
# .26]) noise.
DARKNESS = {1: {"scale": 0.60, "poisson": 250, "gauss": 0.008}, 2: {"scale": 0.40, "poisson": 120, "gauss": 0.018},
            3: {"scale": 0.30, "poisson": 50, "gauss": 0.026}}
# img.py:27-77: kernel radius 15 px, Gaussian weights of sigma 100 s px along a line at angle U(-45, 45) deg.
CAMERA_MOTION_BLUR = {1: {"sigma": 0.06}, 2: {"sigma": 0.1}, 3: {"sigma": 0.13}}
CAMERA_MOTION_BLUR_RADIUS = 15
# img_converter.py:119-124: each camera black with this probability.
MISSING_CAMERA = {1: {"probability": 0.2}, 2: {"probability": 0.4}, 3: {"probability": 0.6}}
# img_converter.py:84-98 (each camera) and lidar_converter.py:196-200 (the whole LiDAR frame): the previous frame's
# data with this probability.
TEMPORAL_MISALIGNMENT = {1: {"probability": 0.2}, 2: {"probability": 0.4}, 3: {"probability": 0.6}}

PARAMETERS = {"beams_reducing": BEAMS_REDUCING, "points_reducing": POINTS_REDUCING, "motion_blur": LIDAR_MOTION_BLUR,
              "fog": LIDAR_FOG, "snow": LIDAR_SNOW, "spatial_misalignment": SPATIAL_MISALIGNMENT,
              "brightness": BRIGHTNESS, "darkness": DARKNESS, "camera_motion_blur": CAMERA_MOTION_BLUR,
              "missing_camera": MISSING_CAMERA, "temporal_misalignment": TEMPORAL_MISALIGNMENT}


def _sev(severity: int) -> int:
    if severity not in SEVERITIES:
        raise ValueError(f"MultiCorrupt severity must be one of {SEVERITIES}, got {severity!r}")
    return severity


def _sweeps(points: np.ndarray) -> list[np.ndarray | slice]:
    """Rows of each sweep (rows sharing one dt): slices when each sweep is one contiguous block (the loader's
    layout), else index arrays in increasing dt."""
    dt = points[:, 4]
    if not len(dt):
        return []
    starts = np.concatenate([[0], np.flatnonzero(dt[1:] != dt[:-1]) + 1])
    if len(np.unique(dt[starts])) == len(starts):
        ends = np.concatenate([starts[1:], [len(dt)]])
        return [slice(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]
    values, inverse = np.unique(dt, return_inverse=True)
    return [np.nonzero(inverse == k)[0] for k in range(len(values))]


# ---- LiDAR ------------------------------------------------------------------------------------------------------
def beams_reducing(pts: np.ndarray, severity: int, rng: np.random.Generator, ring: np.ndarray,
                   layout: robo3d.BeamLayout) -> np.ndarray:
    keep = np.asarray(BEAMS_REDUCING[severity]["keep_beams"])
    if layout.num_beams != 32:
        keep = np.unique(np.floor(keep * layout.num_beams / 32).astype(np.int64))
    return pts[np.isin(ring, keep)]


def points_reducing(pts: np.ndarray, severity: int, rng: np.random.Generator, ring: np.ndarray,
                    layout: robo3d.BeamLayout) -> np.ndarray:
    order = rng.permutation(len(pts))
    n_keep = int(round(len(pts) * (100 - POINTS_REDUCING[severity]["drop_percent"]) / 100))
    return pts[np.sort(order[:n_keep])]


def lidar_motion_blur(pts: np.ndarray, severity: int, rng: np.random.Generator, ring: np.ndarray,
                      layout: robo3d.BeamLayout) -> np.ndarray:
    s = LIDAR_MOTION_BLUR[severity]["trans_std"]
    shift, jit = rng.standard_normal(3), rng.standard_normal((len(pts), 3), dtype=np.float32)
    jit *= (s * np.asarray(LIDAR_MOTION_JITTER)).astype(np.float32)
    np.clip(jit, -3 * s, 3 * s, out=jit)
    jit += (shift * s).astype(np.float32)
    out = pts.copy()
    out[:, :3] += jit
    return out


def lidar_fog(pts: np.ndarray, severity: int, rng: np.random.Generator, ring: np.ndarray,
              layout: robo3d.BeamLayout) -> np.ndarray:
    p = LIDAR_FOG[severity]
    return robo3d.simulate_fog(pts, p["alpha"], p["beta"], rng.random(len(pts), dtype=np.float32))


def lidar_snow(pts: np.ndarray, severity: int, rng: np.random.Generator, ring: np.ndarray,
               layout: robo3d.BeamLayout) -> np.ndarray:
    p = LIDAR_SNOW[severity]
    return robo3d.simulate_snow(pts, p["snowfall_rate"], p["terminal_velocity"], rng.random(len(pts), dtype=np.float32),
                                rng.random(len(pts), dtype=np.float32))


def misalignment_matrix(rotation_deg: float) -> np.ndarray:
    """The protocol's rotation: R_x(t) R_y(t) R_z(t), each written as the transpose of the usual right-handed one."""
    t = np.radians(rotation_deg)
    c, s = np.cos(t), np.sin(t)
    rx = np.array([[1, 0, 0], [0, c, s], [0, -s, c]])
    ry = np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])
    rz = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])
    return rx @ ry @ rz


def spatial_misalignment(pts: np.ndarray, severity: int, rng: np.random.Generator, ring: np.ndarray,
                         layout: robo3d.BeamLayout) -> np.ndarray:
    p = SPATIAL_MISALIGNMENT[severity]
    if rng.random() >= p["probability"]:
        return pts.copy()
    out = pts.copy()
    out[:, :3] = (pts[:, :3].astype(np.float64) @ misalignment_matrix(p["rotation_deg"]).T
                  + np.asarray(SPATIAL_SHIFT)).astype(np.float32)
    return out


LIDAR_CORRUPTIONS: dict[str, Callable[..., np.ndarray]] = {
    "beams_reducing": beams_reducing, "points_reducing": points_reducing, "motion_blur": lidar_motion_blur,
    "fog": lidar_fog, "snow": lidar_snow, "spatial_misalignment": spatial_misalignment,
}


def corrupt_lidar(points: np.ndarray, name: str, severity: int, rng: np.random.Generator, *,
                  ring: np.ndarray | None = None, layout: robo3d.BeamLayout = robo3d.HDL32E,
                  **_: object) -> np.ndarray:
    """MultiCorrupt LiDAR corruption ``name`` on every sweep of ``points`` (independent draws per sweep)."""
    if name not in LIDAR_CORRUPTIONS:
        raise ValueError(f"unknown MultiCorrupt LiDAR corruption {name!r}; choose from {sorted(LIDAR_CORRUPTIONS)}")
    _sev(severity)
    pts = robo3d._check(np.asarray(points), severity)
    rings = robo3d._rings(pts, ring, layout) if name == "beams_reducing" else np.zeros(len(pts), np.int64)
    fn = LIDAR_CORRUPTIONS[name]
    parts = [fn(pts[idx], severity, rng, rings[idx], layout) for idx in _sweeps(pts)]
    return np.concatenate(parts).astype(np.float32) if parts else pts


# ---- cameras ----------------------------------------------------------------------------------------------------
def brightness(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """HSV value + s, hue and saturation kept: RGB scales by V'/V (a black pixel becomes grey V')."""
    x = images.astype(np.float32) / 255.0
    v = x.max(axis=-1, keepdims=True)
    v_new = np.clip(v + BRIGHTNESS[_sev(severity)]["shift"], 0.0, 1.0)
    out = np.where(v > 0, x * v_new / np.where(v > 0, v, 1.0), v_new)
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def darkness(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Per image: rescale to [0, s] with gamma 2, then Poisson-Gaussian sensor noise."""
    p = DARKNESS[_sev(severity)]
    out = np.empty_like(images)
    for c in range(len(images)):
        x = images[c].astype(np.float32) / 255.0
        lo, hi = x.min(), x.max()
        y = ((x - lo) / (hi - lo if hi > lo else 1.0)) ** 2 * p["scale"]
        y = np.uint8(np.clip(y, 0, 1) * 255) / 255.0  # the protocol rounds to an image here (img.py:98-99)
        y = np.clip(rng.poisson(y * p["poisson"]) / p["poisson"], 0, 1)
        y = np.clip(y + rng.normal(scale=p["gauss"], size=y.shape), 0, 1)
        out[c] = (y * 255).astype(np.uint8)
    return out


def motion_blur_taps(sigma_px: float, radius: int, angle_deg: float) -> list[tuple[float, int, int]]:
    """The line kernel of img.py:54-69: (weight, dy, dx) taps, i = 0..2r, Gaussian weights of sigma ``sigma_px``."""
    width = 2 * radius + 1
    w = np.exp(-(np.arange(width) ** 2) / (2 * sigma_px ** 2))
    w /= w.sum()
    py, px = width * np.sin(np.deg2rad(angle_deg)), width * np.cos(np.deg2rad(angle_deg))
    hyp = np.hypot(py, px)
    dy = -np.ceil(np.arange(width) * py / hyp - 0.5).astype(int)
    dx = -np.ceil(np.arange(width) * px / hyp - 0.5).astype(int)
    return [(float(w[i]), int(dy[i]), int(dx[i])) for i in range(width)]


def _shifted(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """out[y, x] = img[y - dy, x - dx] with edge replication (np.roll + edge fill, img.py:36-52)."""
    h, w = img.shape[:2]
    ys = np.clip(np.arange(h) - dy, 0, h - 1)
    xs = np.clip(np.arange(w) - dx, 0, w - 1)
    return img[ys][:, xs]


def camera_motion_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """One blur direction U(-45, 45) deg per image; the weighted sum of shifted copies of the protocol."""
    sigma = CAMERA_MOTION_BLUR[_sev(severity)]["sigma"]
    scale = images.shape[2] / NUSCENES_IMAGE_WIDTH
    radius = max(1, int(round(CAMERA_MOTION_BLUR_RADIUS * scale)))
    out = np.empty_like(images)
    for c in range(len(images)):
        angle = rng.uniform(-45, 45)
        img = images[c].astype(np.float32)
        acc = np.zeros_like(img)
        for w, dy, dx in motion_blur_taps(max(sigma * 100 * scale, 1e-3), radius, angle):
            acc += w * _shifted(img, dy, dx)
        out[c] = np.clip(acc, 0, 255).astype(np.uint8)
    return out


def missing_camera_mask(num_cams: int, severity: int, rng: np.random.Generator) -> np.ndarray:
    """(Ncam,) bool, True = camera black; one uniform per camera, so heavier levels drop a superset."""
    return rng.random(num_cams) < MISSING_CAMERA[_sev(severity)]["probability"]


CAMERA_CORRUPTIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "brightness": brightness, "darkness": darkness, "camera_motion_blur": camera_motion_blur,
}
# motion blur is camera + LiDAR in the protocol (img_converter.py:113-114 and lidar_converter.py:121-127);
# "lidar_motion_blur" / "camera_motion_blur" apply one side only
SAMPLE_CORRUPTIONS = ("beams_reducing", "points_reducing", "motion_blur", "lidar_motion_blur", "camera_motion_blur",
                      "fog", "snow", "spatial_misalignment", "brightness", "darkness", "missing_camera")
# the protocol's ten, in its README's order
PROTOCOL_CORRUPTIONS = ("beams_reducing", "brightness", "darkness", "fog", "missing_camera", "motion_blur",
                        "points_reducing", "snow", "spatial_misalignment", "temporal_misalignment")


def corrupt_sample(sample: Sample, name: str, severity: int, rng: np.random.Generator,
                   layout: robo3d.BeamLayout = robo3d.HDL32E) -> Sample:
    """Apply MultiCorrupt corruption ``name`` to a sample dict (a new dict; the input is not modified)."""
    from calico.robustness import sensors

    _sev(severity)
    if name == "motion_blur":  # both sensors, LiDAR first
        out = corrupt_sample(sample, "lidar_motion_blur", severity, rng, layout)
        return corrupt_sample(out, "camera_motion_blur", severity, rng, layout) if sample.get("images") is not None \
            else out
    if name == "lidar_motion_blur":
        name = "motion_blur"
    if name in LIDAR_CORRUPTIONS:
        return sensors.with_points(sample, corrupt_lidar(np.asarray(sample["points"]), name, severity, rng,
                                                         layout=layout))
    if name == "missing_camera":
        n = sensors._num_cams(sample)
        return sensors.drop_cameras(sample, np.nonzero(missing_camera_mask(n, severity, rng))[0].tolist())
    if name in CAMERA_CORRUPTIONS:
        if sample.get("images") is None:
            raise ValueError(f"multicorrupt/{name} needs the sample's images (the dataset was built without images)")
        out = dict(sample)
        out["images"] = CAMERA_CORRUPTIONS[name](np.asarray(sample["images"]), severity, rng)
        return out
    raise ValueError(f"unknown MultiCorrupt corruption {name!r}; choose from {list(SAMPLE_CORRUPTIONS)} "
                     "(temporal_misalignment: calico.robustness.suite)")
