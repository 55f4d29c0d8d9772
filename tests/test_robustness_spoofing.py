"""Spoofing: the fake car lands where asked, 10 m ahead of the ego, in free space; success and ASR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from calico.robustness import spoofing as S

SCENE = next((p / "shared/data/nuscenes-scene-0916" for p in Path(__file__).resolve().parents[2:4]
              if (p / "shared/data/nuscenes-scene-0916").is_dir()),
             Path(__file__).resolve().parents[2] / "shared/data/nuscenes-scene-0916")


def nuscenes_lidar2ego() -> np.ndarray:
    """LIDAR_TOP calibration of scene-0916 (quaternion w, x, y, z; translation): +y forward."""
    t = np.eye(4)
    q = [0.7077955119163518, -0.006492242056004365, 0.010646214713995808, -0.7063073142877817]
    t[:3, :3] = Rotation.from_quat([q[1], q[2], q[3], q[0]]).as_matrix()
    t[:3, 3] = [0.943713, 0.0, 1.84023]
    return t


def ground_cloud(extra: np.ndarray | None = None) -> np.ndarray:
    """Flat road 1.84 m below the sensor, optionally with obstacle points."""
    rng = np.random.default_rng(5)
    xy = rng.uniform(-30, 30, (4000, 2))
    pts = np.concatenate([xy, np.full((4000, 1), -1.84), rng.uniform(0, 50, (4000, 1)), np.zeros((4000, 1))], 1)
    if extra is not None:
        pts = np.concatenate([pts, extra])
    return pts.astype(np.float32)


def to_ego(t: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    return (t[:3, :3] @ np.asarray(xyz, dtype=np.float64).T).T + t[:3, 3]


@pytest.mark.parametrize("n", S.TRACE_SIZES)
def test_spoofed_points_land_where_asked(n):
    t = nuscenes_lidar2ego()
    pts = ground_cloud()
    out, spot = S.spoof(pts, n, np.random.default_rng(0), t)
    assert out.shape == (len(pts) + n, 5) and out.dtype == np.float32
    np.testing.assert_array_equal(out[: len(pts)], pts)
    # the spot is 10 m ahead of the ego origin, on its centre line, half a car above the ground
    ego_spot = to_ego(t, spot)
    assert abs(ego_spot[0] - 10.0) < 0.05 and abs(ego_spot[1]) < 0.05
    injected = out[len(pts):]
    ego_pts = to_ego(t, injected[:, :3])
    _, lwh = S.load_template()
    # every injected point lies inside the fake car's box (centre spot, heading = ego forward)
    assert (np.abs(ego_pts[:, 0] - ego_spot[0]) <= lwh[0] / 2 + 0.1).all()
    assert (np.abs(ego_pts[:, 1] - ego_spot[1]) <= lwh[1] / 2 + 0.1).all()
    assert (ego_pts[:, 2] > -0.2).all() and (ego_pts[:, 2] < lwh[2] + 0.2).all()
    # the visible face points towards the sensor: the trace sits on the near half of the box
    assert np.median(ego_pts[:, 0]) < ego_spot[0] - 0.5
    # BEV centre of the trace footprint lies within 0.5 m of the spot laterally
    assert abs(0.5 * (ego_pts[:, 1].min() + ego_pts[:, 1].max()) - ego_spot[1]) < 0.5


def test_spot_shifts_sideways_when_occupied():
    t = nuscenes_lidar2ego()
    # a parked car (points up to 1.5 m high) sitting right on the 10 m spot: lidar frame +y is forward
    rng = np.random.default_rng(1)
    obstacle = np.zeros((300, 5), np.float32)
    obstacle[:, 0] = rng.uniform(-1, 1, 300)
    obstacle[:, 1] = rng.uniform(7.0, 11.0, 300)
    obstacle[:, 2] = rng.uniform(-1.3, -0.3, 300)
    info = S.place_spot(ground_cloud(obstacle), t)
    assert info["free"] and info["shift"] != 0.0
    _, spot = S.spoof(ground_cloud(obstacle), 100, np.random.default_rng(0), t)
    assert np.min(np.abs(obstacle[:, 0] - spot[0])) > 0.8  # the fake car does not overlap the real one


def test_spoof_is_deterministic_and_validates():
    t = nuscenes_lidar2ego()
    a, _ = S.spoof(ground_cloud(), 60, np.random.default_rng(3), t)
    b, _ = S.spoof(ground_cloud(), 60, np.random.default_rng(3), t)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="n_points"):
        S.spoof(ground_cloud(), 0, np.random.default_rng(0), t)
    with pytest.raises(ValueError, match="4x4"):
        S.place_spot(ground_cloud(), np.eye(3))


def test_synthetic_template_is_a_rear_face():
    tpl, lwh = S.synthetic_car_template()
    assert len(tpl) >= 200 and np.isclose(tpl[:, 0].min(), -lwh[0] / 2)
    out, spot = S.spoof(ground_cloud(), 200, np.random.default_rng(0), np.eye(4), template=(tpl, lwh))
    # identity lidar2ego: forward is +x
    assert abs(spot[0] - 10.0) < 1e-6 and abs(spot[1]) < 1e-6


def test_attack_success_and_asr():
    spot = np.array([0.0, 10.0, -1.0])
    dets = {"boxes": np.array([[0.5, 11.5, -1.0], [0.0, 10.0, -1.0], [0.0, 10.2, -1.0]]),
            "scores": np.array([0.9, 0.2, 0.9]), "labels": np.array([0, 0, 8])}
    assert S.attack_success(dets, spot, class_id_car=0, score_thr=0.3)  # first box: 1.58 m away
    assert not S.attack_success(dets, spot, class_id_car=0, score_thr=0.3, radius=1.5)
    assert not S.attack_success({"boxes": np.zeros((0, 9)), "scores": np.zeros(0), "labels": np.zeros(0)}, spot)
    assert S.asr([True, False, False, True]) == 0.5


def test_real_template_matches_real_car():
    tpl, lwh = S.load_template()
    if not S.TEMPLATE_PATH.is_file():
        pytest.skip("real template not built")
    assert len(tpl) > 200 and 3.5 < lwh[0] < 5.5
    # the points hug the near (-x) face: most within 0.6 m of the rear bumper plane
    assert (tpl[:, 0] < -lwh[0] / 2 + 0.6).mean() > 0.6
    if not SCENE.is_dir():
        pytest.skip(f"real nuScenes slice not found at {SCENE}")
    from calico.robustness.make_spoof_template import build_template
    rebuilt = build_template(str(SCENE))
    np.testing.assert_allclose(rebuilt["points"], tpl, atol=1e-5)


def test_spot_score_and_attack_success_by_hand():
    # cars at 1 m (score 0.2) and 3 m (score 0.9) from the spot, a pedestrian on it (0.95)
    dets = {"boxes": np.array([[11.0, 0, 0], [13.0, 0, 0], [10.0, 0, 0]]), "scores": np.array([0.2, 0.9, 0.95]),
            "labels": np.array([0, 0, 8])}
    spot = np.array([10.0, 0.0, 0.0])
    assert S.spot_score(dets, spot, class_id_car=0, radius=2.0) == 0.2
    assert S.spot_score(dets, spot, class_id_car=0, radius=3.0) == 0.9
    assert not S.attack_success(dets, spot, score_thr=0.3) and S.attack_success(dets, spot, score_thr=0.2)
    none = {"boxes": np.zeros((0, 9)), "scores": np.zeros(0), "labels": np.zeros(0, np.int64)}
    # no detection is no success, even at threshold 0
    assert S.spot_score(none, spot) == 0.0 and not S.attack_success(none, spot, score_thr=0.0)


def test_spoof_every_sweep_adds_one_trace_per_sweep_time():
    t = np.eye(4)
    pts = ground_cloud()
    pts = np.concatenate([pts, pts, pts])
    pts[:, 4] = np.repeat([0.0, 0.05, 0.1], len(pts) // 3)
    one, spot1 = S.spoof(pts, 60, np.random.default_rng(5), t)
    every, spot3 = S.spoof(pts, 60, np.random.default_rng(5), t, every_sweep=True)
    np.testing.assert_array_equal(spot1, spot3)
    assert len(one) == len(pts) + 60 and len(every) == len(pts) + 180
    added = every[len(pts):]
    assert sorted(np.unique(added[:, 4]).tolist()) == [0.0, np.float32(0.05), np.float32(0.1)]
    # the keyframe's trace is the single-scan attack's (same draws first); the others are fresh subsets
    np.testing.assert_array_equal(added[:60], one[len(pts):])
    assert not np.array_equal(added[60:120, :3], added[:60, :3])
    many = pts.copy()
    many[:, 4] = np.arange(len(many)) * 1e-4  # per-point times are not sweeps
    with pytest.raises(ValueError, match="distinct dt values"):
        S.spoof(many, 60, np.random.default_rng(5), t, every_sweep=True)
    # every trace lies on the same fake car
    for k in range(3):
        np.testing.assert_allclose(added[60 * k:60 * (k + 1), :2].mean(0), added[:60, :2].mean(0), atol=0.6)


def test_read_template_round_trip_and_one_line_errors(tmp_path):
    from calico.errors import DataError

    tpl, lwh = S.synthetic_car_template()
    good = tmp_path / "car.npz"
    np.savez_compressed(good, points=tpl, lwh=lwh)
    pts, size = S.read_template(good, min_points=len(tpl))
    np.testing.assert_array_equal(pts, tpl)
    np.testing.assert_array_equal(size, lwh)
    out, _ = S.spoof(ground_cloud(), 60, np.random.default_rng(0), np.eye(4), template=(pts, size))
    assert len(out) == 4060
    with pytest.raises(DataError, match="fewer than the largest trace"):
        S.read_template(good, min_points=len(tpl) + 1)
    bad = tmp_path / "bad.npz"
    np.savez_compressed(bad, points=tpl[:, :3], lwh=lwh)
    with pytest.raises(DataError, match=r"bad.npz: 'points' must be finite \(N, 4\)"):
        S.read_template(bad)
    with pytest.raises(DataError, match="missing.npz: not a spoofing template"):
        S.read_template(tmp_path / "missing.npz")
