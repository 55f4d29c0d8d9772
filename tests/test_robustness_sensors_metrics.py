"""Missing sensors, calibration errors, and the robustness metrics (hand-checked)."""

from __future__ import annotations

import numpy as np
import pytest

from calico.robustness import metrics as M
from calico.robustness import sensors as SE
from calico.robustness.corruptions import ring_elevations


def sample(n_cam: int = 6, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    k = np.array([[500.0, 0, 352], [0, 500.0, 128], [0, 0, 1]])
    l2c = np.stack([SE.random_rigid(rng.uniform(0, 180), rng.uniform(0, 2), rng) for _ in range(n_cam)])
    k4 = np.tile(np.eye(4), (n_cam, 1, 1))
    k4[:, :3, :3] = k
    elev = ring_elevations()
    ring = np.repeat(np.arange(32), 100)
    az = np.tile(np.linspace(-np.pi, np.pi, 100, endpoint=False), 32)
    pts = np.stack([10 * np.cos(elev[ring]) * np.cos(az), 10 * np.cos(elev[ring]) * np.sin(az),
                    10 * np.sin(elev[ring]), np.ones(ring.size), np.zeros(ring.size)], 1).astype(np.float32)
    return {"points": pts, "regions": np.zeros(len(pts), np.int64),
            "images": rng.integers(1, 255, (n_cam, 8, 16, 3), dtype=np.uint8),
            "intrinsics": np.tile(k, (n_cam, 1, 1)).astype(np.float32),
            "lidar2cam": l2c.astype(np.float32), "cam2lidar": np.linalg.inv(l2c).astype(np.float32),
            "lidar2img": (k4 @ l2c).astype(np.float32), "token": "t"}


def test_drop_all_and_random_cameras():
    s = sample()
    out = SE.drop_cameras(s, "all")
    assert (out["images"] == 0).all() and not out["camera_valid"].any()
    assert (s["images"] > 0).all()  # input untouched
    out = SE.drop_random_cameras(s, 2, np.random.default_rng(0))
    assert out["camera_valid"].sum() == 4
    assert (out["images"][~out["camera_valid"]] == 0).all() and (out["images"][out["camera_valid"]] > 0).all()
    again = SE.drop_random_cameras(s, 2, np.random.default_rng(0))
    np.testing.assert_array_equal(out["camera_valid"], again["camera_valid"])
    with pytest.raises(ValueError, match="out of range"):
        SE.drop_cameras(s, [6])


def test_drop_lidar_beams_and_lidar():
    s = sample()
    out = SE.drop_lidar_beams(s, 8, np.random.default_rng(0))
    assert len(out["points"]) == 8 * 100 and "regions" not in out
    assert SE.drop_lidar(s)["points"].shape == (0, 5)


def test_calibration_perturbation_consistent():
    s = sample()
    k4 = np.tile(np.eye(4), (6, 1, 1))
    k4[:, :3, :3] = s["intrinsics"]
    out = SE.perturb_calibration(s, 2.0, 0.1, np.random.default_rng(0))
    l2c = out["lidar2cam"].astype(np.float64)
    np.testing.assert_allclose(out["lidar2img"], k4 @ l2c, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(out["cam2lidar"] @ out["lidar2cam"], np.tile(np.eye(4), (6, 1, 1)), atol=1e-4)
    # the change is exactly 2 deg and 0.1 m per camera
    delta = l2c @ np.linalg.inv(s["lidar2cam"].astype(np.float64))
    angles = np.degrees(np.arccos(np.clip((np.trace(delta[:, :3, :3], axis1=1, axis2=2) - 1) / 2, -1, 1)))
    np.testing.assert_allclose(angles, 2.0, atol=1e-2)
    np.testing.assert_allclose(np.linalg.norm(delta[:, :3, 3], axis=1), 0.1, atol=1e-4)
    assert not np.allclose(out["lidar2cam"], s["lidar2cam"])


def test_zero_calibration_perturbation_is_identity():
    s = sample()
    out = SE.perturb_calibration(s, 0.0, 0.0, np.random.default_rng(0))
    for key in ("lidar2cam", "cam2lidar", "lidar2img"):
        np.testing.assert_allclose(out[key], s[key], rtol=1e-5, atol=1e-4)


def test_corruption_error_hand_checked():
    # model NDS 0.5, 0.4, 0.3 -> errors 0.5 + 0.6 + 0.7 = 1.8; baseline 0.4, 0.3, 0.2 -> 0.6 + 0.7 + 0.8 = 2.1
    assert M.corruption_error([0.5, 0.4, 0.3], [0.4, 0.3, 0.2]) == pytest.approx(1.8 / 2.1)
    # the baseline against itself is 100 %
    assert M.corruption_error([0.4, 0.3], [0.4, 0.3]) == pytest.approx(1.0)
    mce, ce = M.mean_corruption_error({"fog": [0.5, 0.4, 0.3], "snow": [0.2, 0.2, 0.2]},
                                      {"fog": [0.4, 0.3, 0.2], "snow": [0.4, 0.4, 0.4]})
    assert ce["snow"] == pytest.approx(2.4 / 1.8)
    assert mce == pytest.approx((1.8 / 2.1 + 2.4 / 1.8) / 2)
    with pytest.raises(ValueError, match="corruptions differ"):
        M.mean_corruption_error({"fog": [0.5]}, {"snow": [0.5]})
    with pytest.raises(ValueError, match="undefined"):
        M.corruption_error([0.5], [1.0])


def test_asr_and_drop():
    assert M.attack_success_rate([True, False, False, False]) == 0.25
    with pytest.raises(ValueError):
        M.attack_success_rate([])
    d = M.metric_drop(0.6, 0.45)
    assert d["drop"] == pytest.approx(0.15) and d["relative_drop"] == pytest.approx(0.25)
