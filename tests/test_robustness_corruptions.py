"""LiDAR corruptions: each changes the cloud as designed, monotonically in severity, deterministically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calico.robustness import corruptions as C

# the repo sits next to shared/ (CI, /work/main); a worktree under /work/wt/NAME sits one level deeper
SCENE = next((p / "shared/data/nuscenes-scene-0916" for p in Path(__file__).resolve().parents[2:4]
              if (p / "shared/data/nuscenes-scene-0916").is_dir()),
             Path(__file__).resolve().parents[2] / "shared/data/nuscenes-scene-0916")


def scan(n_az: int = 360, seed: int = 12345) -> tuple[np.ndarray, np.ndarray]:
    """A 32-ring scan of ground and walls: ranges 3..70 m, intensities 0..100, dt = 0."""
    rng = np.random.default_rng(seed)
    elev = C.ring_elevations()
    ring = np.repeat(np.arange(32), n_az)
    az = np.tile(np.linspace(-np.pi, np.pi, n_az, endpoint=False), 32)
    r = rng.uniform(3.0, 70.0, ring.size)
    e = elev[ring]
    pts = np.stack([r * np.cos(e) * np.cos(az), r * np.cos(e) * np.sin(az), r * np.sin(e),
                    rng.uniform(0, 100, ring.size), np.zeros(ring.size)], axis=1).astype(np.float32)
    return pts, ring


def ranges(p: np.ndarray) -> np.ndarray:
    return np.linalg.norm(p[:, :3], axis=1)


@pytest.mark.parametrize("name", sorted(C.CORRUPTIONS))
def test_contract_determinism_and_no_nans(name):
    pts, ring = scan()
    before = pts.copy()
    for s in C.SEVERITIES:
        a = C.corrupt(pts, name, s, np.random.default_rng(7))
        b = C.corrupt(pts, name, s, np.random.default_rng(7))
        c = C.corrupt(pts, name, s, np.random.default_rng(8))
        assert a.dtype == np.float32 and a.ndim == 2 and a.shape[1] == 5
        assert np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)
        assert a.shape != pts.shape or not np.array_equal(a, pts), f"{name} s{s} left the cloud unchanged"
        if name != "beam_loss" or s > 0:
            assert a.shape != c.shape or not np.array_equal(a, c), "different seeds must differ"
    np.testing.assert_array_equal(pts, before)  # input untouched


def test_fog_far_retention_decreases_and_scatter_grows():
    pts, ring = scan()
    far = (ranges(pts) > 30).sum()
    kept, near = [], []
    for s in C.SEVERITIES:
        out = C.fog(pts, s, np.random.default_rng(0), ring=ring)
        kept.append((ranges(out) > 30).sum() / far)
        near.append((ranges(out) < 10).sum())
    assert all(a >= b for a, b in zip(kept, kept[1:])) and kept[0] > kept[-1] + 0.3, kept
    assert all(a <= b for a, b in zip(near, near[1:])) and near[-1] > near[0], near


def test_fog_attenuation_formula():
    # one point at r = 20 m, I = 100 on a 0..255 scale, visibility 200 m -> beta = 0.015
    pts = np.array([[20.0, 0, 0, 100.0, 0], [0, 2.0, 0, 255.0, 0]], dtype=np.float32)
    out = C.fog(pts, 1, np.random.default_rng(0))
    far = out[np.argmax(ranges(out))]
    np.testing.assert_allclose(far[3], 100.0 * np.exp(-2 * 0.015 * 20.0), rtol=1e-5)
    # a dark return at 40 m under visibility 65 m: (0 + 2 I_n) exp(-2 * 3/65 * 40) < I_n -> dropped
    dark = np.array([[40.0, 0, 0, 0.0, 0], [0, 0, 0, 255.0, 0]], dtype=np.float32)
    dark[1, :3] = [0, 3.0, 0]
    out = C.fog(dark, 5, np.random.default_rng(0))
    assert (ranges(out) > 39).sum() == 0


def test_snow_adds_more_scatter_with_severity():
    pts, ring = scan()
    near = [(ranges(C.snow(pts, s, np.random.default_rng(1), ring=ring)) < C.SNOW_FLAKE_RANGE).sum()
            for s in C.SEVERITIES]
    base = (ranges(pts) < C.SNOW_FLAKE_RANGE).sum()
    assert base < near[0] and all(a < b for a, b in zip(near, near[1:])), (base, near)


def test_snow_flakes_fill_empty_beams():
    pts, ring = scan()
    keep = ring < 16  # upper half of the rings returned nothing (sky)
    out = C.snow(pts[keep], 5, np.random.default_rng(0), ring=ring[keep])
    up = C.ring_from_elevation(out) >= 17
    assert up.sum() > 100 and ranges(out[up]).max() <= C.SNOW_FLAKE_RANGE + 1e-3


def test_motion_blur_displacement_grows():
    pts, ring = scan()
    disp = [np.linalg.norm(C.motion_blur(pts, s, np.random.default_rng(3))[:, :3] - pts[:, :3], axis=1).mean()
            for s in C.SEVERITIES]
    assert all(a < b for a, b in zip(disp, disp[1:])), disp
    assert 0.005 < disp[0] < 0.5 and disp[-1] < 2.0, disp


def test_beam_loss_keeps_fewer_rings():
    pts, ring = scan()
    kept = [len(np.unique(C.ring_from_elevation(C.beam_loss(pts, s, np.random.default_rng(2), ring=ring))))
            for s in C.SEVERITIES]
    assert kept == [32 - k for k in C.BEAM_LOSS_RINGS]


def test_crosstalk_moves_a_fraction_along_the_beam():
    pts, _ = scan()
    out = C.crosstalk(pts, 5, np.random.default_rng(0))
    moved = np.abs(ranges(out) - ranges(pts)) > 1e-3
    assert 0.03 < moved.mean() < 0.07
    # moved points stay on their beam: same direction
    d0 = pts[moved, :3] / ranges(pts[moved])[:, None]
    d1 = out[moved, :3] / ranges(out[moved])[:, None]
    np.testing.assert_allclose(d0, d1, atol=1e-5)


def test_ring_from_elevation_matches_grid():
    pts, ring = scan()
    np.testing.assert_array_equal(C.ring_from_elevation(pts), ring)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="severity"):
        C.fog(scan()[0], 6, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\(P, 5\)"):
        C.fog(np.zeros((4, 4), np.float32), 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown corruption"):
        C.corrupt(scan()[0], "rain", 1, np.random.default_rng(0))


def test_real_scan_fog_and_ring_recovery():
    files = sorted((SCENE / "samples" / "LIDAR_TOP").glob("*.pcd.bin")) if SCENE.is_dir() else []
    if not files:
        pytest.skip(f"real nuScenes slice not found at {SCENE}")
    raw = np.fromfile(files[0], dtype=np.float32).reshape(-1, 5)
    far_enough = ranges(raw) > 3.0
    assert (C.ring_from_elevation(raw)[far_enough] == raw[far_enough, 4]).mean() > 0.95
    pts = raw.copy()
    pts[:, 4] = 0.0
    far = [(ranges(C.fog(pts, s, np.random.default_rng(0))) > 30).sum() for s in C.SEVERITIES]
    assert all(a >= b for a, b in zip(far, far[1:])) and far[-1] < 0.5 * far[0]
