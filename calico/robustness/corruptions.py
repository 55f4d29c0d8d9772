"""Physically motivated LiDAR corruptions at five severities (fog, snow, motion blur, beam loss, crosstalk).

Every corruption has the signature ``f(points, severity, rng, ring=None) -> points``:

* ``points``: (P, 5) float32 ``x, y, z, intensity, dt`` in the LiDAR frame (sensor at the origin), the
  sample-dict contract of docs/ARCHITECTURE.md;
* ``severity``: 1 (light) .. 5 (heavy);
* ``rng``: a ``numpy.random.Generator`` -- the only source of randomness, so a seed fixes the output;
* ``ring``: optional (P,) laser index 0..31; when absent it is recovered from the elevation angle
  (:func:`ring_from_elevation`, 98.6 % exact on a real nuScenes keyframe, the rest off by one).

Returns a new (P', 5) float32 array; the input is never modified. Added points (fog back-scatter, snow
flakes) carry ``dt`` of the sweep they belong to.

Randomness is *coupled across severities*: every function draws the same random variates whatever the
severity and only the thresholds/scales depend on it, so for one seed a heavier severity corrupts a
superset of what a lighter one corrupts (what makes the severity monotonicity tests exact).

Aggregated sweeps: points of earlier sweeps were moved into the keyframe LiDAR frame, so their true
sensor origin is up to a few metres away; we still treat the origin as the sensor for every sweep (an
approximation that only matters for beam geometry of the older sweeps).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Velodyne HDL-32E (nuScenes LIDAR_TOP): 32 lasers evenly spread over [-30.67, +10.67] deg, ~1084
# firings per revolution at 20 Hz.
NUM_RINGS = 32
ELEV_MIN_DEG, ELEV_MAX_DEG = -30.67, 10.67
AZIMUTH_BINS = 1080
SWEEP_PERIOD = 0.05  # s, one revolution at 20 Hz
MIN_RANGE = 1.5  # m, added points start beyond the ego self-return crop
SEVERITIES = (1, 2, 3, 4, 5)

# Fog: meteorological visibility V (m) per severity; Koschmieder: beta = -ln(0.05)/V ~= 3/V.
FOG_VISIBILITY = (200.0, 150.0, 110.0, 85.0, 65.0)
FOG_SCATTER_FRACTION = (0.005, 0.01, 0.02, 0.04, 0.06)  # beams whose strongest echo is the fog itself
FOG_SCATTER_MEAN_RANGE = 3.0  # m, back-scatter peaks a few metres from the sensor
# Snow: flake hit rate per metre of beam (number density x effective cross-section) and extinction.
SNOW_HIT_RATE = (0.003, 0.006, 0.012, 0.02, 0.03)
SNOW_EXTINCTION = (0.002, 0.004, 0.007, 0.011, 0.016)
SNOW_FLAKE_RANGE = 12.0  # m, flakes farther than this echo too weakly to be detected
# Motion blur: one scale k multiplies every motion error so the displacement grows linearly with it.
BLUR_SCALE = (1.0, 2.0, 3.0, 4.0, 5.0)
BLUR_VEL_STD = 3.0  # m/s per unit k: uncompensated ego velocity error
BLUR_YAW_STD = np.deg2rad(10.0)  # rad/s per unit k: uncompensated yaw-rate error
BLUR_JITTER_STD = 0.04  # m per unit k: per-point jitter reached at the end of the sweep
BEAM_LOSS_RINGS = (3, 6, 11, 16, 21)  # of 32 rings lost
CROSSTALK_FRACTION = (0.01, 0.02, 0.03, 0.04, 0.05)
CROSSTALK_MAX_RANGE = 70.0  # m, the receiver's listening window
NOISE_FLOOR_FRACTION = 0.01  # detection floor as a fraction of the intensity scale


def _check(points: np.ndarray, severity: int) -> np.ndarray:
    if not isinstance(points, np.ndarray) or points.ndim != 2 or points.shape[1] != 5:
        shape = getattr(points, "shape", type(points).__name__)
        raise ValueError(f"points must be a (P, 5) array x,y,z,intensity,dt; got {shape}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    if not np.isfinite(points).all():
        raise ValueError("points contain NaN or inf")
    return points.astype(np.float32, copy=True)


def _ring_arg(points: np.ndarray, ring: np.ndarray | None) -> np.ndarray:
    if ring is None:
        return ring_from_elevation(points)
    ring = np.asarray(ring)
    if ring.shape != (len(points),):
        raise ValueError(f"ring must have shape ({len(points)},), got {ring.shape}")
    return ring.astype(np.int64)


def intensity_scale(points: np.ndarray) -> float:
    """255 for nuScenes-style 0..255 intensities, 1 for intensities already normalised to [0, 1]."""
    return 255.0 if len(points) and float(points[:, 3].max()) > 1.5 else 1.0


def ring_elevations() -> np.ndarray:
    """Elevation (rad) of each of the 32 rings, ring 0 lowest."""
    return np.deg2rad(np.linspace(ELEV_MIN_DEG, ELEV_MAX_DEG, NUM_RINGS))


def ring_from_elevation(points: np.ndarray, num_rings: int = NUM_RINGS, elev_min_deg: float = ELEV_MIN_DEG,
                        elev_max_deg: float = ELEV_MAX_DEG) -> np.ndarray:
    """Nearest of ``num_rings`` evenly spaced elevations in [elev_min, elev_max] deg, as int64 (default: the
    HDL-32E layout, 32 rings over [-30.67, 10.67] deg)."""
    elev = np.degrees(np.arctan2(points[:, 2], np.linalg.norm(points[:, :2], axis=1)))
    step = (elev_max_deg - elev_min_deg) / (num_rings - 1)
    return np.clip(np.rint((elev - elev_min_deg) / step), 0, num_rings - 1).astype(np.int64)


def _ranges(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(points[:, :3], axis=1)


def _attenuate(points: np.ndarray, beta: float, scale: float) -> np.ndarray:
    """Two-way Beer-Lambert attenuation; returns the boolean mask of returns still detected.

    I' = I * exp(-2 beta r). A clean return of intensity I is modelled as received with power
    proportional to I + 2 I_n above a noise floor I_n = 1 % of the intensity scale (so even I = 0 returns had a
    3 dB margin); it stays detected iff (I + 2 I_n) exp(-2 beta r) >= I_n, i.e. r <= ln(2 + I/I_n) / (2 beta).
    ``points[:, 3]`` is replaced by I' in place.
    """
    noise = NOISE_FLOOR_FRACTION * scale
    trans = np.exp(-2.0 * beta * _ranges(points))
    keep = (points[:, 3] + 2.0 * noise) * trans >= noise
    points[:, 3] *= trans
    return keep


def _along_beam(points: np.ndarray, new_range: np.ndarray) -> np.ndarray:
    """Move each point along its own beam (the ray from the sensor) to ``new_range``."""
    r = np.maximum(_ranges(points), 1e-6)
    out = points.copy()
    out[:, :3] *= (new_range / r)[:, None]
    return out


def fog(points: np.ndarray, severity: int, rng: np.random.Generator, ring: np.ndarray | None = None) -> np.ndarray:
    """Fog: range-dependent attenuation, weak returns dropped, back-scatter points near the sensor.

    * extinction beta = 3 / V (Koschmieder, 5 % contrast) with visibility V = 200, 150, 110, 85, 65 m;
    * every return is attenuated I' = I exp(-2 beta r) and dropped when it falls under the detection
      floor (see ``_attenuate``: kept iff r <= ln(2 + I/I_n) / (2 beta)), so far and dark returns go first;
    * a fraction f = 0.5, 1, 2, 4, 6 % of the beams returns the fog's own back-scatter instead: the point
      moves along its beam to r_s = 1.5 m + Exp(mean 3 m) (capped at its true range) with a dim intensity
      U(0, 2 I_n).
    """
    pts = _check(points, severity)
    scale = intensity_scale(pts)
    beta = 3.0 / FOG_VISIBILITY[severity - 1]
    u_scatter = rng.random(len(pts))
    r_scatter = MIN_RANGE + rng.exponential(FOG_SCATTER_MEAN_RANGE, len(pts))
    i_scatter = rng.random(len(pts)) * 2.0 * NOISE_FLOOR_FRACTION * scale
    scatter = u_scatter < FOG_SCATTER_FRACTION[severity - 1]
    keep = _attenuate(pts, beta, scale)
    moved = _along_beam(pts[scatter], np.minimum(r_scatter[scatter], _ranges(pts[scatter])))
    moved[:, 3] = i_scatter[scatter]
    return np.concatenate([pts[keep & ~scatter], moved]).astype(np.float32)


def _empty_beams(points: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Directions (unit vectors) of (ring, azimuth) firings that produced no return in ``points``."""
    az_bin = ((np.arctan2(points[:, 1], points[:, 0]) + np.pi) / (2 * np.pi) * AZIMUTH_BINS).astype(np.int64)
    occupied = np.zeros((NUM_RINGS, AZIMUTH_BINS), dtype=bool)
    occupied[ring, np.clip(az_bin, 0, AZIMUTH_BINS - 1)] = True
    rr, aa = np.nonzero(~occupied)
    elev = ring_elevations()[rr]
    az = (aa + 0.5) / AZIMUTH_BINS * 2 * np.pi - np.pi
    return np.stack([np.cos(elev) * np.cos(az), np.cos(elev) * np.sin(az), np.sin(elev)], axis=1)


def _sweep_groups(points: np.ndarray) -> list[np.ndarray]:
    """Indices of each sweep (points sharing one ``dt``); one group when dt is per point, not per sweep."""
    values, inverse = np.unique(points[:, 4], return_inverse=True)
    if len(values) > 20:
        return [np.arange(len(points))]
    return [np.nonzero(inverse == k)[0] for k in range(len(values))]


def snow(points: np.ndarray, severity: int, rng: np.random.Generator, ring: np.ndarray | None = None) -> np.ndarray:
    """Snow: flakes near the sensor that occlude beams (the beam echoes at the flake), plus attenuation.

    Flakes are random scatterers: along a beam, hits are a Poisson process of rate lambda = 0.003, 0.006,
    0.012, 0.02, 0.03 per metre (number density x effective cross-section), and only flakes within
    R = 12 m echo strongly enough to be detected. A beam whose true return lies at range r is occluded
    with probability 1 - exp(-lambda min(r, R)); the first flake sits at the truncated-exponential range
    r_f in [1.5 m, min(r, R)] and the point moves there along its beam with a dim intensity. Beams that
    had no return at all (sky, far) are found on the 32 x 1080 (ring, azimuth) firing grid of each sweep
    and hit flakes with probability 1 - exp(-lambda R): those add new points. Surviving returns are
    attenuated like fog with extinction 0.002 .. 0.016 /m (heavy snowfall).
    """
    pts = _check(points, severity)
    rings = _ring_arg(pts, ring)
    scale = intensity_scale(pts)
    lam = SNOW_HIT_RATE[severity - 1]
    out_parts, flakes = [], []
    for idx in _sweep_groups(pts):
        sweep = pts[idx]
        dirs = _empty_beams(sweep, rings[idx])
        empty = np.concatenate([dirs * SNOW_FLAKE_RANGE, np.zeros((len(dirs), 2))], axis=1).astype(np.float32)
        empty[:, 4] = sweep[0, 4] if len(sweep) else 0.0
        beams = np.concatenate([sweep, empty])
        real = np.arange(len(beams)) < len(sweep)
        reach = np.clip(np.where(real, _ranges(beams), SNOW_FLAKE_RANGE), 0.0, SNOW_FLAKE_RANGE)
        u_hit, u_pos = rng.random(len(beams)), rng.random(len(beams))
        i_flake = (0.5 + rng.random(len(beams))) * 2.0 * NOISE_FLOOR_FRACTION * scale
        span = np.maximum(reach - MIN_RANGE, 0.0)
        hit = (u_hit < 1.0 - np.exp(-lam * span)) & (span > 0)
        # inverse CDF of an exponential truncated to [0, span]: the first flake along the beam
        r_f = MIN_RANGE - np.log1p(-u_pos * (1.0 - np.exp(-lam * span))) / lam
        flake = _along_beam(beams[hit], np.minimum(r_f[hit], reach[hit]))
        flake[:, 3] = i_flake[hit]
        flakes.append(flake)
        out_parts.append(sweep[~hit[real]])
    rest = np.concatenate(out_parts) if out_parts else pts[:0]
    keep = _attenuate(rest, SNOW_EXTINCTION[severity - 1], scale)
    return np.concatenate([rest[keep], *flakes]).astype(np.float32)


def motion_blur(points: np.ndarray, severity: int, rng: np.random.Generator, ring: np.ndarray | None = None) -> np.ndarray:
    """Motion blur: ego motion left uncompensated during the 50 ms sweep.

    A spinning LiDAR fires azimuth phi at time t = ((phi + pi) mod 2 pi) / (2 pi) T within the sweep
    (T = 50 ms); with t_c = t - T/2 the time relative to the sweep middle, each point becomes
    p' = R_z(omega t_c) p + v t_c + sigma_j (t / T) n_i, with an ego velocity error v ~ N(0, (k 3 m/s)^2)
    per axis (z at a third), a yaw-rate error omega ~ N(0, (k 10 deg/s)^2) and per-point jitter
    n_i ~ N(0, I) of scale sigma_j = k 4 cm growing with the firing time; k = 1..5 is the severity.
    The point count is unchanged.
    """
    pts = _check(points, severity)
    k = BLUR_SCALE[severity - 1]
    v = rng.standard_normal(3) * np.array([1.0, 1.0, 1.0 / 3.0]) * BLUR_VEL_STD * k
    omega = rng.standard_normal() * BLUR_YAW_STD * k
    jitter = rng.standard_normal((len(pts), 3)) * BLUR_JITTER_STD * k
    phase = (np.arctan2(pts[:, 1], pts[:, 0]) + np.pi) / (2 * np.pi)
    t_c = (phase - 0.5) * SWEEP_PERIOD
    ang = omega * t_c
    c, s = np.cos(ang), np.sin(ang)
    x, y = pts[:, 0].astype(np.float64), pts[:, 1].astype(np.float64)
    xyz = np.stack([c * x - s * y, s * x + c * y, pts[:, 2]], axis=1)
    xyz += t_c[:, None] * v[None, :] + phase[:, None] * jitter
    pts[:, :3] = xyz
    return pts


def beam_loss(points: np.ndarray, severity: int, rng: np.random.Generator, ring: np.ndarray | None = None) -> np.ndarray:
    """Beam loss: 3, 6, 11, 16, 21 of the 32 lasers (dirty window, failing diodes) return nothing.

    The lost rings are the first ones of one random permutation of the 32, so heavier severities lose a
    superset of the rings lighter ones lose.
    """
    pts = _check(points, severity)
    rings = _ring_arg(pts, ring)
    lost = rng.permutation(NUM_RINGS)[: BEAM_LOSS_RINGS[severity - 1]]
    return pts[~np.isin(rings, lost)]


def drop_rings(points: np.ndarray, keep_rings: int, rng: np.random.Generator, ring: np.ndarray | None = None,
               uniform: bool = True) -> np.ndarray:
    """Keep only ``keep_rings`` of the 32 lasers: every (32 / keep)-th ring when ``uniform`` (a cheaper
    sensor), else a random subset. Used by the sensor-dropout suite."""
    if not 0 <= keep_rings <= NUM_RINGS:
        raise ValueError(f"keep_rings must be in 0..{NUM_RINGS}, got {keep_rings}")
    pts = _check(points, 1)
    rings = _ring_arg(pts, ring)
    if uniform:
        kept = np.unique(np.floor(np.arange(keep_rings) * NUM_RINGS / max(keep_rings, 1)).astype(np.int64))
    else:
        kept = rng.permutation(NUM_RINGS)[:keep_rings]
    return pts[np.isin(rings, kept)]


def crosstalk(points: np.ndarray, severity: int, rng: np.random.Generator, ring: np.ndarray | None = None) -> np.ndarray:
    """Crosstalk: another LiDAR's pulses are timed as echoes for a fraction 1 .. 5 % of the beams.

    The foreign pulse arrives uncorrelated with the true echo, so the measured time of flight -- hence
    the range -- is uniform over the listening window: the point moves along its beam to
    r' ~ U(1.5 m, 70 m), i.e. a random range offset r' - r. Intensity is kept.
    """
    pts = _check(points, severity)
    u = rng.random(len(pts))
    new_r = MIN_RANGE + rng.random(len(pts)) * (CROSSTALK_MAX_RANGE - MIN_RANGE)
    hit = u < CROSSTALK_FRACTION[severity - 1]
    pts[hit] = _along_beam(pts[hit], new_r[hit])
    return pts


CORRUPTIONS: dict[str, Callable[..., np.ndarray]] = {
    "fog": fog, "snow": snow, "motion_blur": motion_blur, "beam_loss": beam_loss, "crosstalk": crosstalk,
}
PAPER_CORRUPTIONS: tuple[str, ...] = ("snow", "fog", "motion_blur")  # the three of the paper's Fig. 3


def corrupt(points: np.ndarray, name: str, severity: int, rng: np.random.Generator,
            ring: np.ndarray | None = None, **kwargs: object) -> np.ndarray:
    """Apply corruption ``name``: a key of ``CORRUPTIONS`` (the project's physical set, severities 1..5),
    ``"robo3d/<name>"`` (Robo3D / nuScenes-C, severities 1..3, :mod:`calico.robustness.robo3d`; keyword
    arguments ``boxes``, ``labels``, ``layout``, ``keyframe_only`` go there) or ``"multicorrupt/<name>"``
    (MultiCorrupt's LiDAR corruptions, severities 1..3, :mod:`calico.robustness.multicorrupt`)."""
    if name.startswith("robo3d/"):
        from calico.robustness.robo3d import corrupt_robo3d

        return corrupt_robo3d(points, name.split("/", 1)[1], severity, rng, ring=ring, **kwargs)  # type: ignore[arg-type]
    if name.startswith("multicorrupt/"):
        from calico.robustness.multicorrupt import corrupt_lidar

        return corrupt_lidar(points, name.split("/", 1)[1], severity, rng, ring=ring, **kwargs)  # type: ignore[arg-type]
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose from {sorted(CORRUPTIONS)}")
    return CORRUPTIONS[name](points, severity, rng, ring=ring)
