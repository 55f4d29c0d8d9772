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
* **Camera fog / snow** follow ``img.py:104-203`` / ``img.py:271-298``; pixel distances of the fog are counted in
  full-resolution pixels, and the snow layer is drawn at full resolution (an integer multiple of ours) and
  area-averaged down (the layer is additive, so this is what corrupting the full image and resizing would give,
  up to the final clip). The plasma fractal is drawn at our resolution (its finest octaves are lost).
  ``fog``, ``snow`` and ``motion_blur`` corrupt both sensors, as the protocol does; ``lidar_*`` / ``camera_*``
  name one side.
* **Spatial misalignment** rotates and shifts the *LiDAR points* (``lidar.py:47-115``: 1/2/3 deg about x, y and z,
  then +2 m along x, with probability 0.2/0.4/0.6 per file) -- the boxes stay, as in the protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage

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
                                rng.random(len(pts), dtype=np.float32), ring, layout.num_beams)


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
    rings = robo3d._rings(pts, ring, layout) if name in ("beams_reducing", "snow") else np.zeros(len(pts), np.int64)
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


def line_blur(img: np.ndarray, taps: list[tuple[float, int, int]]) -> np.ndarray:
    """sum_i w_i img[y - dy_i, x - dx_i] with edge replication (np.roll + edge fill, img.py:36-52), as slices of one
    edge-padded copy."""
    h, w = img.shape[:2]
    r = max(max(abs(dy), abs(dx)) for _, dy, dx in taps)
    pad = ((r, r), (r, r)) + ((0, 0),) * (img.ndim - 2)
    padded = np.pad(img.astype(np.float32, copy=False), pad, mode="edge")
    acc = np.zeros(img.shape, dtype=np.float32)
    for wgt, dy, dx in taps:
        acc += np.float32(wgt) * padded[r - dy:r - dy + h, r - dx:r - dx + w]
    return acc


def camera_motion_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """One blur direction U(-45, 45) deg per image; the weighted sum of shifted copies of the protocol."""
    sigma = CAMERA_MOTION_BLUR[_sev(severity)]["sigma"]
    scale = images.shape[2] / NUSCENES_IMAGE_WIDTH
    radius = max(1, int(round(CAMERA_MOTION_BLUR_RADIUS * scale)))
    out = np.empty_like(images)
    for c in range(len(images)):
        angle = rng.uniform(-45, 45)
        acc = line_blur(images[c], motion_blur_taps(max(sigma * 100 * scale, 1e-3), radius, angle))
        out[c] = np.clip(acc, 0, 255).astype(np.uint8)
    return out


# img.py:153-203: fog = plasma-fractal haze (strength 2 / 3 / 4, attenuation 0.8, back-scatter 0.5), then a
# distance-to-road-rectangle haze exp(-beta d) towards A = 0.5 with beta 0.0005 / 0.001 / 0.002 per pixel.
CAMERA_FOG = {1: {"strength": 2.0, "beta": 0.0005}, 2: {"strength": 3.0, "beta": 0.001},
              3: {"strength": 4.0, "beta": 0.002}}
CAMERA_FOG_CONST = {"attenuation": 0.8, "backscatter": 0.5, "airlight": 0.5, "decay": 1.7, "decay_maps": 3.0,
                    "rect": (0.65, 0.1, 0.99, 0.85)}  # rect: y1, x1, y2, x2 as fractions of the image
# img.py:271-298: (mean, zoom, threshold, blur radius px, blur sigma px, blend) of the snow layer per level.
CAMERA_SNOW = {1: {"loc": 0.3, "zoom": 5, "threshold": 0.9, "radius": 7, "sigma": 7, "blend": 0.9},
               2: {"loc": 0.4, "zoom": 4, "threshold": 0.85, "radius": 8, "sigma": 8, "blend": 0.85},
               3: {"loc": 0.5, "zoom": 3, "threshold": 0.8, "radius": 10, "sigma": 10, "blend": 0.8}}


def plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """A (size, size) diamond-square height map in [0, 1] (``size`` a power of two): each octave sets the new
    square centres, then the edge midpoints, to the mean of their four neighbours plus U(-w, w) * w, and w shrinks
    by ``decay`` per octave (the perturbation of img.py:104-147)."""
    if size & (size - 1):
        raise ValueError(f"size must be a power of two, got {size}")
    m = np.zeros((size, size))
    step, w = size, 100.0
    while step >= 2:
        h = step // 2
        corners = m[0::step, 0::step]
        sq = corners + np.roll(corners, -1, axis=0)
        sq = sq + np.roll(sq, -1, axis=1)
        m[h::step, h::step] = sq / 4 + w * rng.uniform(-w, w, sq.shape)
        centre = m[h::step, h::step]
        left = m[0::step, 0::step]
        # midpoints of horizontal edges (rows 0::step, cols h::step) and of vertical edges (rows h::step, cols 0::step)
        horiz = centre + np.roll(centre, 1, axis=0) + left + np.roll(left, -1, axis=1)
        m[0::step, h::step] = horiz / 4 + w * rng.uniform(-w, w, horiz.shape)
        vert = centre + np.roll(centre, 1, axis=1) + left + np.roll(left, -1, axis=0)
        m[h::step, 0::step] = vert / 4 + w * rng.uniform(-w, w, vert.shape)
        step, w = h, w / decay
    m -= m.min()
    return m / (m.max() or 1.0)


def camera_fog(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Plasma-fractal haze, then haze growing with the pixel distance to the road rectangle (in full-resolution
    pixels: ours scale by 1600 / W)."""
    p, k = CAMERA_FOG[_sev(severity)], CAMERA_FOG_CONST
    n, h, w = images.shape[:3]
    full = NUSCENES_IMAGE_WIDTH / w  # full-resolution pixels per pixel of ours
    size = 1 << int(np.ceil(np.log2(max(h, w))))
    y1, x1, y2, x2 = (f * d for f, d in zip(k["rect"], (h, w, h, w), strict=True))
    jj, ll = np.arange(h)[:, None], np.arange(w)[None, :]
    d_rect = np.sqrt(np.maximum(0, np.maximum(jj - y2, y1 - jj)) ** 2 + np.maximum(0, np.maximum(ll - x2, x1 - ll)) ** 2)
    out = np.empty_like(images)
    for c in range(n):
        x = images[c].astype(np.float64) / 255.0
        top = x.max()
        fog = plasma_fractal(size, k["decay"], rng)[:h, :w]
        fog *= 1 - k["attenuation"] * plasma_fractal(size, k["decay_maps"], rng)[:h, :w]
        fog *= 1 + k["backscatter"] * plasma_fractal(size, k["decay_maps"], rng)[:h, :w]
        x = np.clip((x + p["strength"] * fog[..., None]) * top / (top + p["strength"]), 0, 1)
        x = np.uint8(x * 255) / 255.0  # the protocol's intermediate 0..255 image (img.py:181-186)
        d = (2.0 * d_rect * (1 + rng.random((h, w)) / 4)) * full + np.sqrt(max(h, w) * full)
        td = np.exp(-p["beta"] * d)[..., None]
        out[c] = np.clip((x * td + k["airlight"] * (1 - td)) * 255, 0, 255).astype(np.uint8)
    return out


def camera_snow(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Zoomed, thresholded, motion-blurred Gaussian snow layer drawn at full resolution (an integer multiple of
    ours) and area-averaged down, added twice (and rotated 180 deg) to the whitened, dimmed image."""
    p = CAMERA_SNOW[_sev(severity)]
    n, h, w = images.shape[:3]
    f = max(1, int(round(NUSCENES_IMAGE_WIDTH / w)))
    H, W = h * f, w * f
    out = np.empty_like(images)
    for c in range(n):
        layer = rng.normal(p["loc"], 0.3, (H, W)).astype(np.float32)
        ch, cw = int(np.ceil(H / p["zoom"])), int(np.ceil(W / p["zoom"]))
        top, left = (H - ch) // 2, (W - cw) // 2
        layer = ndimage.zoom(layer[top:top + ch, left:left + cw], p["zoom"], order=1)[:H, :W]
        layer[layer < p["threshold"]] = 0
        layer = np.clip(layer, 0, 1)
        acc = line_blur(layer, motion_blur_taps(p["sigma"], p["radius"], rng.uniform(-135, -45)))
        layer = np.round(acc * 255) / 255.0
        layer = layer.reshape(h, f, w, f).mean(axis=(1, 3))[..., None]  # area average to our resolution
        x = images[c].astype(np.float64) / 255.0
        gray = (x @ np.array([0.299, 0.587, 0.114]))[..., None]
        x = p["blend"] * x + (1 - p["blend"]) * np.maximum(x, gray * 1.5 + 0.5)
        out[c] = (np.clip(x * 0.9 + layer + layer[::-1, ::-1], 0, 1) * 255).astype(np.uint8)
    return out


def missing_camera_mask(num_cams: int, severity: int, rng: np.random.Generator) -> np.ndarray:
    """(Ncam,) bool, True = camera black; one uniform per camera, so heavier levels drop a superset."""
    return rng.random(num_cams) < MISSING_CAMERA[_sev(severity)]["probability"]


CAMERA_CORRUPTIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "brightness": brightness, "darkness": darkness, "camera_motion_blur": camera_motion_blur,
    "camera_fog": camera_fog, "camera_snow": camera_snow,
}
# motion blur is camera + LiDAR in the protocol (img_converter.py:113-114 and lidar_converter.py:121-127);
# "lidar_motion_blur" / "camera_motion_blur" apply one side only
SAMPLE_CORRUPTIONS = ("beams_reducing", "points_reducing", "motion_blur", "lidar_motion_blur", "camera_motion_blur",
                      "fog", "lidar_fog", "camera_fog", "snow", "lidar_snow", "camera_snow", "spatial_misalignment",
                      "brightness", "darkness", "missing_camera")
# corruptions of both sensors in the protocol (the converters' img_converter.py and lidar_converter.py share the
# name): LiDAR first, then the cameras, one random stream
BOTH_SENSORS = {"motion_blur": ("lidar_motion_blur", "camera_motion_blur"), "fog": ("lidar_fog", "camera_fog"),
                "snow": ("lidar_snow", "camera_snow")}
# the protocol's ten, in its README's order
PROTOCOL_CORRUPTIONS = ("beams_reducing", "brightness", "darkness", "fog", "missing_camera", "motion_blur",
                        "points_reducing", "snow", "spatial_misalignment", "temporal_misalignment")


# the recorded parameters of the two-sensor corruptions
PARAMETERS["motion_blur"] = {s: {**LIDAR_MOTION_BLUR[s], "camera_sigma": CAMERA_MOTION_BLUR[s]["sigma"]}
                             for s in SEVERITIES}
PARAMETERS["fog"] = {s: {**LIDAR_FOG[s], **{f"camera_{k}": v for k, v in CAMERA_FOG[s].items()}} for s in SEVERITIES}
PARAMETERS["snow"] = {s: {**LIDAR_SNOW[s], **{f"camera_{k}": v for k, v in CAMERA_SNOW[s].items()}}
                      for s in SEVERITIES}


def corrupt_sample(sample: Sample, name: str, severity: int, rng: np.random.Generator,
                   layout: robo3d.BeamLayout = robo3d.HDL32E) -> Sample:
    """Apply MultiCorrupt corruption ``name`` to a sample dict (a new dict; the input is not modified)."""
    from calico.robustness import sensors

    _sev(severity)
    if name in BOTH_SENSORS:
        lidar_name, camera_name = BOTH_SENSORS[name]
        out = corrupt_sample(sample, lidar_name, severity, rng, layout)
        return corrupt_sample(out, camera_name, severity, rng, layout) if sample.get("images") is not None else out
    if name.startswith("lidar_") and name[6:] in LIDAR_CORRUPTIONS:
        name = name[6:]
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
