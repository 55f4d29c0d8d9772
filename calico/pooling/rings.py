"""The LiDAR's ring spacing, from the config or estimated from the cloud, and ring-scaled heights for DBSCAN.

A spinning LiDAR's rings meet an object ``r * tan(spacing)`` apart vertically at BEV range ``r``: 0.93 m at
40 m for the 32-beam HDL-32E of nuScenes (1.33 degrees), 0.12 m for the 0.167-degree central beams of a
Pandar64. Beyond ``eps`` one object's rings are separate DBSCAN clusters (thin slices; the upper ones are then
dropped as floating), so the pooling scales heights down where rings lie far apart (``ring_scaled``). The
spacing is a property of the sensor, not of nuScenes: ``pooling.ring_spacing_deg`` sets it, and 0 estimates it
from each cloud (``estimate_ring_spacing``: the first peak of the autocorrelation of the elevation histogram).
"""

from __future__ import annotations

import numpy as np

_SAMPLE = 4096  # points used
_BIN_DEG = 0.02  # elevation histogram bin; finer than any ring spacing in use
_PROMINENCE = 0.3  # of the normalised autocorrelation: HDL-32E keyframes ~0.7-0.9, uniform noise < 0.2
_ELEV = (-12.0, 4.0)  # degrees: the beams that see objects at range (and the road near the car)


def estimate_ring_spacing(xyz: np.ndarray, min_range: float = 5.0, lags: tuple[float, float] = (0.1, 3.0)) -> float:
    """Vertical angle (degrees) between adjacent rings near the horizon, from the elevation angles of the points
    beyond ``min_range`` (the sensor at the origin); 0.0 when the histogram shows no periodic structure
    (too few points, or elevations smeared): the scaling is then off.

    Measured: 1.34 on scene-0916 and synthetic keyframes (HDL-32E: 1.33). PandaSet 002: 0.0 (a faint peak at
    0.16, the Pandar64's 0.167-degree central beams, under the prominence bar): off, which is what 0.167 would
    give too (its rings lie < 0.45 m apart out to 150 m).
    """
    xyz = xyz[:: max(1, len(xyz) // _SAMPLE)]  # a strided sample keeps every ring and costs little next to DBSCAN
    r = np.hypot(xyz[:, 0], xyz[:, 1])
    m = r > min_range
    if m.sum() < 1000:
        return 0.0
    e = np.degrees(np.arctan2(xyz[m, 2], r[m]))
    nbin = int(round((_ELEV[1] - _ELEV[0]) / _BIN_DEG))
    b = ((e - _ELEV[0]) / _BIN_DEG).astype(np.int64)
    h = np.bincount(b[(b >= 0) & (b < nbin)], minlength=nbin).astype(np.float64)
    h = h - h.mean()
    n = len(h)
    f = np.fft.rfft(h, 2 * n)
    ac = np.fft.irfft(f * np.conj(f), 2 * n)[:n]
    if ac[0] <= 0:
        return 0.0
    ac = ac / ac[0]
    a, b = int(round(lags[0] / _BIN_DEG)), int(round(lags[1] / _BIN_DEG))
    # the first local maximum well above the trough before it: the ring spacing (later peaks are its multiples;
    # a smooth or noisy histogram shows no such peak)
    # (vectorised: it runs once per cloud, and a Python loop over up to 150 lags is per-cloud interpreter overhead)
    trough = np.minimum.accumulate(ac[:b])
    mid = ac[1:b]
    peak = (mid >= ac[:b - 1]) & (mid >= ac[2:b + 1]) & (mid >= trough[1:b] + _PROMINENCE)
    peak[:max(0, a - 1)] = False
    if not peak.any():
        return 0.0
    lag = int(np.argmax(peak)) + 1
    w = lag + int(np.argmax(ac[lag:min(b, lag + lag // 4 + 2)]))  # the top of a bumpy peak (1/4 of the lag on)
    return w * _BIN_DEG


def ring_scaled(xyz: np.ndarray, ground_h: np.ndarray, gap: float, ring_deg: float) -> np.ndarray:
    """``xyz`` with heights above the ground scaled by ``gap / (r * tan(ring_deg))`` where that is < 1, i.e.
    where adjacent rings lie more than ``gap`` apart; near the sensor nothing changes. ``ring_deg <= 0``:
    ``xyz`` unchanged. DBSCAN stays exact on the coordinates it is given; the filters measure the true ones."""
    if ring_deg <= 0 or len(xyz) == 0:
        return xyz
    r = np.hypot(xyz[:, 0], xyz[:, 1])
    s = np.minimum(1.0, gap / np.maximum(r * np.tan(np.radians(ring_deg)), 1e-9))
    out = xyz.copy()
    out[:, 2] = ground_h + (xyz[:, 2] - ground_h) * s
    return out
