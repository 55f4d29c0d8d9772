"""Robo3D and MultiCorrupt: parameter tables as published, determinism, level coupling, metrics by hand,
the protocol runner's fingerprints and its no-silent-clean check, a missing camera through the fusion model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calico.robustness import corruptions as C
from calico.robustness import metrics as M
from calico.robustness import multicorrupt as MC
from calico.robustness import protocols as P
from calico.robustness import robo3d as R


def scan(n_az: int = 360, seed: int = 3, sweeps: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A 32-ring scan (ranges 3..70 m, ground rings hit z = -1.8 m, intensities 0..100), ``sweeps`` copies
    with dt = 0, 0.05, ..."""
    rng = np.random.default_rng(seed)
    elev = C.ring_elevations()
    ring = np.repeat(np.arange(32), n_az)
    az = np.tile(np.linspace(-np.pi, np.pi, n_az, endpoint=False), 32)
    e = elev[ring]
    r = rng.uniform(3.0, 70.0, ring.size)
    ground = e < np.deg2rad(-2)
    r[ground] = np.minimum(1.8 / np.sin(-e[ground]), 70.0)
    pts = np.stack([r * np.cos(e) * np.cos(az), r * np.cos(e) * np.sin(az), r * np.sin(e),
                    rng.uniform(0, 100, ring.size), np.zeros(ring.size)], axis=1).astype(np.float32)
    parts = []
    for k in range(sweeps):
        p = pts.copy()
        p[:, 4] = 0.05 * k
        parts.append(p)
    return np.concatenate(parts), np.tile(ring, sweeps)


BOXES = np.array([[10, 0, -1, 2, 4.5, 1.6, 0.3, 0, 0], [0, 15, -1, 2.5, 10, 3, 1.0, 0, 0],
                  [-12, -5, -1, 0.8, 0.8, 1.8, 0.0, 0, 0]], dtype=np.float32)
LABELS = np.array([0, 1, 8])  # car, truck, pedestrian


def rows(points: np.ndarray) -> set[tuple]:
    return set(map(tuple, np.round(points[:, :4], 4).tolist()))


def xyz_rows(points: np.ndarray) -> set[tuple]:
    return set(map(tuple, points[:, :3].tolist()))


# ---- the published parameter tables, read once from the generation scripts ----------------------------------
def test_robo3d_tables_match_the_generation_scripts():
    assert {s: v["beta"] for s, v in R.FOG.items()} == {1: 0.008, 2: 0.05, 3: 0.2}
    assert R.FOG_ALPHAS == (0.0, 0.005, 0.01, 0.02, 0.03, 0.06)
    assert {s: (v["water_height"], v["noise_floor"]) for s, v in R.WET_GROUND.items()} == \
        {1: (0.0002, 0.2), 2: (0.0010, 0.3), 3: (0.0012, 0.7)}
    assert {s: (v["snowfall_rate"], v["terminal_velocity"]) for s, v in R.SNOW.items()} == \
        {1: (0.5, 2.0), 2: (1.0, 1.6), 3: (2.5, 1.6)}
    assert {s: v["num_beam_to_drop"] for s, v in R.BEAM_MISSING.items()} == {1: 8, 2: 16, 3: 24}
    assert {s: v["drop_ratio"] for s, v in R.INCOMPLETE_ECHO.items()} == {1: 0.75, 2: 0.85, 3: 0.95}
    assert R.CROSS_SENSOR[1]["drop_beams"] == (1, 5, 9, 13, 17, 21, 25, 29)
    assert R.CROSS_SENSOR[2]["drop_beams"] == tuple(range(1, 32, 2))
    assert R.CROSS_SENSOR[3]["drop_beams"] == (1, 2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15, 16, 18, 19, 20, 22, 23, 24,
                                               26, 27, 28, 30, 31)
    assert R.CROSSTALK[1]["percentage"] == 0.03 and R.MOTION_BLUR[1]["trans_std"] == 0.2  # the scripts' light level
    # the snowflake file name of the light level: gunn_<rain rate>_<occupancy> (snow/npy/)
    ph = R.snow_physics(0.5, 2.0)
    assert ph["rain_rate"] == pytest.approx(2.2383844962893775, rel=1e-12)
    assert ph["occupancy"] == pytest.approx(6.944444444444445e-07, rel=1e-12)


# the shipped lookup tables (fog/integral_lookup_tables_*/original/*.pickle): r0 -> (fog distance, integral)
FOG_TABLE = {
    0.0: {1.5: (1.4007, 5.09231e-11), 3.0: (2.90145, 2.04373e-09), 5.0: (4.70235, 4.64465e-09),
          100.0: (4.70235, 4.64465e-09)},
    0.02: {1.5: (1.4007, 4.88397e-11), 3.0: (2.90145, 1.94008e-09), 5.0: (4.70235, 4.34657e-09)},
    0.06: {1.5: (1.4007, 4.49267e-11), 2.0: (1.90095, 3.29868e-10), 3.0: (2.90145, 1.74911e-09),
           5.0: (4.6023, 3.81564e-09), 200.0: (4.6023, 3.81564e-09)},
}


@pytest.mark.parametrize("alpha", sorted(FOG_TABLE))
def test_fog_lookup_reproduces_the_shipped_tables(alpha):
    x, dist, integral = R.fog_lookup(alpha)
    for r0, (d, val) in FOG_TABLE[alpha].items():
        i = np.searchsorted(x, r0, side="right") - 1
        assert dist[i] == pytest.approx(d, abs=1e-4)
        assert integral[i] == pytest.approx(val, rel=2e-4)


def test_multicorrupt_tables_match_the_converters():
    assert {s: v["keep_beams"] for s, v in MC.BEAMS_REDUCING.items()} == \
        {1: tuple(range(1, 32, 2)), 2: (1, 5, 9, 13, 17, 21, 25, 29), 3: (1, 9, 17, 25)}
    assert {s: v["drop_percent"] for s, v in MC.POINTS_REDUCING.items()} == {1: 70, 2: 80, 3: 90}
    assert {s: v["trans_std"] for s, v in MC.LIDAR_MOTION_BLUR.items()} == {1: 0.06, 2: 0.1, 3: 0.13}
    assert {s: (v["alpha"], v["beta"]) for s, v in MC.LIDAR_FOG.items()} == \
        {1: (0.02, 0.008), 2: (0.03, 0.008), 3: (0.06, 0.05)}
    assert {s: (v["snowfall_rate"], v["terminal_velocity"]) for s, v in MC.LIDAR_SNOW.items()} == \
        {1: (0.5, 1.2), 2: (2.5, 1.6), 3: (1.5, 0.4)}
    assert {s: (v["probability"], v["rotation_deg"]) for s, v in MC.SPATIAL_MISALIGNMENT.items()} == \
        {1: (0.2, 1.0), 2: (0.4, 2.0), 3: (0.6, 3.0)}
    assert {s: v["shift"] for s, v in MC.BRIGHTNESS.items()} == {1: 0.5, 2: 0.6, 3: 0.7}
    assert {s: (v["scale"], v["poisson"], v["gauss"]) for s, v in MC.DARKNESS.items()} == \
        {1: (0.6, 250, 0.008), 2: (0.4, 120, 0.018), 3: (0.3, 50, 0.026)}
    assert {s: v["sigma"] for s, v in MC.CAMERA_MOTION_BLUR.items()} == {1: 0.06, 2: 0.1, 3: 0.13}
    for table in (MC.MISSING_CAMERA, MC.TEMPORAL_MISALIGNMENT):
        assert {s: v["probability"] for s, v in table.items()} == {1: 0.2, 2: 0.4, 3: 0.6}


# ---- behaviour --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(R.ROBO3D_CORRUPTIONS))
def test_robo3d_determinism_contract_and_change(name):
    pts, ring = scan()
    before = pts.copy()
    for s in R.SEVERITIES:
        kw = {"ring": ring, "boxes": BOXES, "labels": LABELS}
        a = C.corrupt(pts, f"robo3d/{name}", s, np.random.default_rng(7), **kw)
        b = C.corrupt(pts, f"robo3d/{name}", s, np.random.default_rng(7), **kw)
        assert a.dtype == np.float32 and a.shape[1] == 5 and np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)
        assert a.shape != pts.shape or not np.array_equal(a, pts), f"{name} s{s} changed nothing"
    np.testing.assert_array_equal(pts, before)
    with pytest.raises(ValueError, match="severity"):
        C.corrupt(pts, f"robo3d/{name}", 4, np.random.default_rng(0), ring=ring, boxes=BOXES, labels=LABELS)


@pytest.mark.parametrize("name", ["beam_missing", "crosstalk", "incomplete_echo", "fog", "wet_ground"])
def test_robo3d_levels_are_nested(name):
    """A heavier level corrupts a superset: removed rows grow, and what a lighter level changed stays changed."""
    pts, ring = scan()
    clean = xyz_rows(pts)
    changed = []
    for s in R.SEVERITIES:
        out = C.corrupt(pts, f"robo3d/{name}", s, np.random.default_rng(11), ring=ring, boxes=BOXES, labels=LABELS)
        if out.shape == pts.shape and name != "wet_ground":
            diff = set(np.nonzero((out[:, :3] != pts[:, :3]).any(axis=1))[0].tolist())  # moved rows
        else:
            diff = clean - xyz_rows(out)  # removed rows
        changed.append(diff)
    assert changed[0] and changed[0] <= changed[1] <= changed[2], [len(c) for c in changed]
    assert len(changed[2]) > len(changed[0])


def test_robo3d_beam_missing_and_cross_sensor_counts():
    pts, ring = scan()
    for s in R.SEVERITIES:
        out = R.beam_missing(pts, s, np.random.default_rng(0), ring=ring)
        assert 0 < len(out) < len(pts)
        lost = set(range(32)) - set(C.ring_from_elevation(out).tolist())
        assert lost <= set(range(2, 29)) and len(lost) <= R.BEAM_MISSING[s]["num_beam_to_drop"]
    # cross-sensor: the level's beams go, then every second point
    for s, kept in ((1, 24), (2, 16), (3, 8)):
        out = R.cross_sensor(pts, s, np.random.default_rng(0), ring=ring)
        assert len(out) == (kept * 360 + 1) // 2
    # a 64-beam layout is a parameter, not a constant
    lay = R.BeamLayout(num_beams=64, elev_min_deg=-24.9, elev_max_deg=2.0)
    ring64 = np.repeat(np.arange(64), 10)
    pts64 = np.zeros((640, 5), np.float32)
    pts64[:, 0] = 10
    out = R.beam_missing(pts64, 3, np.random.default_rng(0), ring=ring64, layout=lay)
    assert 0 < len(out) < 640


def test_robo3d_keyframe_only_leaves_sweeps_clean():
    pts, ring = scan(n_az=90, sweeps=3)
    out = C.corrupt(pts, "robo3d/motion_blur", 3, np.random.default_rng(0), ring=ring)
    sweeps = pts[pts[:, 4] > 0]
    np.testing.assert_array_equal(out[out[:, 4] > 0], sweeps)
    assert not np.array_equal(out[out[:, 4] == 0], pts[pts[:, 4] == 0])
    every = C.corrupt(pts, "robo3d/motion_blur", 3, np.random.default_rng(0), ring=ring, keyframe_only=False)
    assert not np.array_equal(every[every[:, 4] > 0], sweeps)


def test_robo3d_incomplete_echo_drops_vehicle_points_only():
    pts, ring = scan(n_az=720)
    inside = R.points_in_boxes(pts, BOXES)
    out = R.incomplete_echo(pts, 3, np.random.default_rng(0), boxes=BOXES, labels=LABELS)
    kept = R.points_in_boxes(out, BOXES)
    for b in (0, 1):
        n = int((inside == b).sum())
        if n > 10:
            assert (kept == b).sum() == n - int(n * 0.95)
    assert (kept == 2).sum() == (inside == 2).sum()  # pedestrians are not an incomplete-echo class
    assert ((kept < 0).sum()) == (inside < 0).sum()
    with pytest.raises(ValueError, match="boxes"):
        R.incomplete_echo(pts, 1, np.random.default_rng(0))


def test_fog_moves_points_along_their_beam_and_dims_the_rest():
    pts, _ = scan()
    out = R.simulate_fog(pts, 0.06, 0.2, np.full(len(pts), 0.5))  # noise draw 0.5: no distance noise
    r0, r1 = np.linalg.norm(pts[:, :3], axis=1), np.linalg.norm(out[:, :3], axis=1)
    moved = ~np.isclose(r0, r1)
    assert moved.mean() > 0.3
    assert (r1[moved] <= 4.71).all()  # the fog's peak response sits at <= 4.7 m
    cos = (pts[moved, :3] * out[moved, :3]).sum(1) / (r0[moved] * r1[moved])
    np.testing.assert_allclose(cos, 1.0, atol=1e-5)
    assert (out[~moved, 3] <= pts[~moved, 3] + 0.5).all()


@pytest.mark.parametrize("name", sorted(MC.LIDAR_CORRUPTIONS))
def test_multicorrupt_lidar_determinism_and_nesting(name):
    pts, ring = scan(n_az=120, sweeps=2)
    outs = [C.corrupt(pts, f"multicorrupt/{name}", s, np.random.default_rng(5), ring=ring) for s in MC.SEVERITIES]
    np.testing.assert_array_equal(outs[0], C.corrupt(pts, f"multicorrupt/{name}", 1, np.random.default_rng(5),
                                                     ring=ring))
    if name in ("beams_reducing", "points_reducing"):
        assert len(pts) > len(outs[0]) > len(outs[1]) > len(outs[2])
        assert rows(outs[2]) <= rows(outs[1]) <= rows(outs[0])  # heavier keeps a subset
    if name == "points_reducing":
        assert len(outs[0]) == 2 * round(len(pts) / 2 * 0.3)


def sample_with_images(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    pts, _ = scan(n_az=60)
    k4 = np.eye(4, dtype=np.float32)
    k4[:3, :3] = [[100, 0, 40], [0, 100, 16], [0, 0, 1]]
    return {"points": pts, "images": rng.integers(0, 256, (6, 32, 80, 3)).astype(np.uint8),
            "intrinsics": np.stack([k4[:3, :3]] * 6), "lidar2cam": np.stack([np.eye(4, dtype=np.float32)] * 6),
            "cam2lidar": np.stack([np.eye(4, dtype=np.float32)] * 6), "lidar2img": np.stack([k4] * 6),
            "gt_boxes": BOXES, "gt_labels": LABELS, "token": f"t{seed}", "scene_name": "scene-x"}


def test_multicorrupt_camera_corruptions():
    s = sample_with_images()
    img = s["images"]
    bright = MC.corrupt_sample(s, "brightness", 1, np.random.default_rng(0))["images"]
    # HSV value + 0.5: the brightest channel goes up by 0.5 (clipped at 1), hue and saturation kept
    v0, v1 = img.max(-1) / 255.0, bright.max(-1) / 255.0
    np.testing.assert_allclose(v1, np.minimum(v0 + 0.5, 1.0), atol=1.5 / 255)
    dark = [MC.corrupt_sample(s, "darkness", k, np.random.default_rng(0))["images"].mean() for k in (1, 2, 3)]
    assert img.mean() > dark[0] > dark[1] > dark[2]
    blur = MC.corrupt_sample(s, "camera_motion_blur", 3, np.random.default_rng(0))["images"]
    assert blur.shape == img.shape and np.abs(np.diff(blur.astype(float), axis=2)).mean() < \
        np.abs(np.diff(img.astype(float), axis=2)).mean()
    dropped = [~MC.corrupt_sample(s, "missing_camera", k, np.random.default_rng(3))["camera_valid"] for k in (1, 2, 3)]
    assert (dropped[0] <= dropped[1]).all() and (dropped[1] <= dropped[2]).all()  # nested
    out = MC.corrupt_sample(s, "missing_camera", 3, np.random.default_rng(3))
    assert (out["images"][dropped[2]] == 0).all() and np.array_equal(s["images"], img)
    # motion blur is both sensors
    both = MC.corrupt_sample(s, "motion_blur", 2, np.random.default_rng(0))
    assert not np.array_equal(both["points"], s["points"]) and not np.array_equal(both["images"], img)


# ---- metrics, by hand -------------------------------------------------------------------------------------------
def test_robo3d_metrics_by_hand():
    # CE = ((1-.5)+(1-.4)+(1-.3)) / ((1-.4)+(1-.3)+(1-.2)) = 1.8 / 2.1
    assert M.robo3d_ce([0.5, 0.4, 0.3], [0.4, 0.3, 0.2]) == pytest.approx(1.8 / 2.1)
    # RR = (.5+.4+.3) / (3 * .6) = 1.2 / 1.8
    assert M.robo3d_rr([0.5, 0.4, 0.3], 0.6) == pytest.approx(2 / 3)
    out = M.robo3d_summary({"fog": [0.5, 0.4, 0.3], "snow": [0.6, 0.6, 0.6]}, 0.6,
                           {"fog": [0.4, 0.3, 0.2], "snow": [0.4, 0.4, 0.4]})
    assert out["CE"]["snow"] == pytest.approx(1.2 / 1.8)
    assert out["mCE"] == pytest.approx((1.8 / 2.1 + 1.2 / 1.8) / 2)
    assert out["RR"]["snow"] == pytest.approx(1.0) and out["mRR"] == pytest.approx((2 / 3 + 1) / 2)
    # the baseline against itself is 100 %
    assert M.robo3d_summary({"fog": [0.4, 0.3, 0.2]}, 0.5, {"fog": [0.4, 0.3, 0.2]})["mCE"] == pytest.approx(1.0)


def test_multicorrupt_metrics_by_hand():
    ra = M.resistance_ability([0.6, 0.5, 0.4], 0.8)
    assert ra["per_severity"] == pytest.approx([0.75, 0.625, 0.5]) and ra["RA"] == pytest.approx(0.625)
    assert M.relative_resistance_ability([0.6, 0.5, 0.4], [0.5, 0.5, 0.5]) == pytest.approx(1.5 / 1.5 - 1)
    assert M.relative_resistance_ability([0.6, 0.6, 0.6], [0.5, 0.5, 0.5]) == pytest.approx(0.2)
    out = M.multicorrupt_summary({"fog": [0.6, 0.5, 0.4], "snow": [0.8, 0.8, 0.8]}, 0.8,
                                 {"fog": [0.5, 0.5, 0.5], "snow": [0.4, 0.4, 0.4]})
    assert out["mRA"] == pytest.approx((0.625 + 1.0) / 2)
    assert out["RRA"]["snow"] == pytest.approx(1.0) and out["mRRA"] == pytest.approx((0.0 + 1.0) / 2)
    # the published BEVFusion row (README): RA_c is the mean of its three per-level RAs
    with pytest.raises(ValueError):
        M.resistance_ability([0.5], 0.0)


# ---- the runner -------------------------------------------------------------------------------------------------
def test_protocol_plans():
    assert len(P.protocol_plan("robo3d")) == 24
    assert len(P.protocol_plan("multicorrupt")) == 30
    assert len(P.protocol_plan("calico-physics")) == 25
    names = [p.name for p in P.protocol_plan("robo3d")]
    assert names[:3] == ["robo3d/fog/1", "robo3d/fog/2", "robo3d/fog/3"]
    with pytest.raises(ValueError, match="levels"):
        P.protocol_plan("robo3d", severities=[4])
    with pytest.raises(ValueError, match="unknown"):
        P.protocol_plan("robo3d", corruptions=["rain"])
    # levels share one random stream per sample: the coupling holds inside the suite too
    a, b = P.protocol_plan("robo3d", corruptions=["beam_missing"], severities=[1, 3])
    assert a.rng(4).random() == b.rng(4).random()


def test_fingerprint_counts():
    s = sample_with_images()
    out = dict(s)
    pts = s["points"].copy()
    pts[:5, 0] += 1.0
    out["points"] = np.concatenate([pts[:-3], np.ones((2, 5), np.float32)])
    fp = P.fingerprint(s, out)
    assert fp["points_removed"] == 5 + 3 and fp["points_added"] == 5 + 2 and fp["points_moved"] == 0
    from calico.robustness import sensors

    fp = P.fingerprint(s, sensors.drop_cameras(s, [1, 4]))
    assert fp["cameras_dropped"] == 2 and fp["images_changed"] == 2 and fp["points_removed"] == 0
    assert P.changed_nothing(P.fingerprint(s, dict(s)))


def test_run_protocol_writes_json_and_refuses_a_silent_clean_run(tmp_path):
    base = [sample_with_images(k) for k in range(3)]
    from calico.robustness.suite import PerturbedDataset

    def evaluate(pert, out_dir):
        ds = PerturbedDataset(base, pert)
        n = np.mean([len(ds[i]["points"]) for i in range(len(ds))])
        return {"NDS": float(n / 3000.0), "mAP": float(n / 6000.0)}

    plan = P.protocol_plan("robo3d", corruptions=["beam_missing", "cross_sensor"])
    res = P.run_protocol("robo3d", plan, evaluate, tmp_path / "model")
    entry = json.loads((tmp_path / "model" / "beam_missing_2" / "corruption.json").read_text())
    assert entry["fingerprint"]["samples"] == 3 and entry["fingerprint"]["points_removed"] > 0
    assert entry["params"]["level"] == "moderate"
    assert set(res["metrics"]["NDS"]["RR"]) == {"beam_missing", "cross_sensor"}
    table = P.protocol_tables(res)
    assert "| Model | mCE (%) | mRR (%) | Clean | Beam Missing | Cross-Sensor |" in table
    # a baseline adds CE and mCE; against itself they are 100 %
    P.add_baseline(res, json.loads(json.dumps(res)))
    assert res["metrics"]["NDS"]["mCE"] == pytest.approx(1.0)
    assert "#### Benchmark: CE (%), NDS" in P.protocol_tables(res)
    # incomplete echo on frames without vehicle boxes changes nothing: the run must fail, not score clean data
    for s in base:
        s["gt_labels"] = np.array([8, 8, 8])
    with pytest.raises(P.NothingChanged, match="incomplete_echo/1 changed nothing"):
        P.run_protocol("robo3d", P.protocol_plan("robo3d", corruptions=["incomplete_echo"], severities=[1]),
                       evaluate, tmp_path / "bad")


def test_temporal_misalignment_reads_the_previous_frame():
    frames = [sample_with_images(k) for k in range(4)]

    class Source:
        records = [{"scene_name": "scene-x"}] * 4

        def load_points(self, i):
            return frames[i]["points"] + 100.0

        def load_cameras(self, i):
            return {"images": frames[i]["images"]}

    (pert,) = P.protocol_plan("multicorrupt", corruptions=["temporal_misalignment"], severities=[3])
    pert.source = Source()
    stale_cams = stale_lidar = 0
    for i in range(1, 4):
        out = pert(frames[i], i)
        stale_cams += sum(np.array_equal(out["images"][c], frames[i - 1]["images"][c]) for c in range(6))
        stale_lidar += int(out["points"][0, 0] > 90)
    assert stale_cams > 0 and stale_lidar >= 0
    assert np.array_equal(pert(frames[0], 0)["images"], frames[0]["images"])  # no previous frame


def test_fusion_model_runs_with_a_missing_camera():
    import torch

    from calico.config import get_config
    from calico.models import build_model, make_dummy_batch

    cfg = get_config("cpu")
    cfg.model.modality = "L+C"
    model = build_model(cfg.model, cfg.data).eval()
    batch = make_dummy_batch(cfg)
    if "images" not in batch:
        pytest.skip("the cpu preset's model has no camera branch")
    batch["images"][:, [1, 4]] = 0.0  # MultiCorrupt's missing camera: black frames
    with torch.no_grad():
        out = model(batch)
        dets = model.decode(out)
    assert torch.isfinite(out["fused"]).all() and len(dets) == batch["images"].shape[0]


def test_points_in_boxes_matches_a_brute_force_test():
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.uniform(-30, 30, (5000, 3)), np.zeros((5000, 2))], 1).astype(np.float32)
    pts[:, 2] = rng.uniform(-2, 1, 5000)
    boxes = np.concatenate([rng.uniform(-25, 25, (30, 2)), np.full((30, 1), -0.5), rng.uniform(0.5, 6, (30, 3)),
                            rng.uniform(-np.pi, np.pi, (30, 1)), np.zeros((30, 2))], 1)
    got = R.points_in_boxes(pts, boxes)
    want = np.full(len(pts), -1)
    for b, (x, y, z, w, length, h, yaw) in enumerate(boxes[:, :7]):
        d = pts[:, :3].astype(np.float64) - [x, y, z]
        a, c = d[:, 0] * np.cos(yaw) + d[:, 1] * np.sin(yaw), -d[:, 0] * np.sin(yaw) + d[:, 1] * np.cos(yaw)
        m = (np.abs(a) <= length / 2) & (np.abs(c) <= w / 2) & (np.abs(d[:, 2]) <= h / 2) & (want < 0)
        want[m] = b
    assert (got >= 0).sum() > 100
    assert (got != want).sum() <= 2  # float32 vs float64 on the faces


def test_multicorrupt_camera_fog_and_snow():
    s = sample_with_images()
    img = s["images"]
    m = MC.plasma_fractal(64, 1.7, np.random.default_rng(0))
    assert m.shape == (64, 64) and m.min() == 0.0 and m.max() == 1.0
    for name in ("camera_fog", "camera_snow"):
        outs = [MC.corrupt_sample(s, name, k, np.random.default_rng(2))["images"] for k in (1, 2, 3)]
        np.testing.assert_array_equal(outs[0], MC.corrupt_sample(s, name, 1, np.random.default_rng(2))["images"])
        assert all(o.shape == img.shape and o.dtype == np.uint8 for o in outs)
        assert np.abs(outs[0].astype(int) - img).mean() > 1
    snow = [MC.corrupt_sample(s, "camera_snow", k, np.random.default_rng(2))["images"].mean() for k in (1, 2, 3)]
    assert snow[0] < snow[1] < snow[2]
    both = MC.corrupt_sample(s, "fog", 3, np.random.default_rng(0))  # fog is LiDAR + camera in the protocol
    assert not np.array_equal(both["images"], img) and not np.array_equal(both["points"], s["points"])
    lidar_only = MC.corrupt_sample(s, "lidar_fog", 3, np.random.default_rng(0))
    assert lidar_only["images"] is img


def test_metric_suite_records_fingerprints_and_refuses_no_op(tmp_path):
    from calico.robustness import suite as SU

    base = [sample_with_images(k) for k in range(2)]

    def evaluate(pert, out_dir):
        ds = SU.PerturbedDataset(base, pert)
        return {"NDS": float(np.mean([len(ds[i]["points"]) for i in range(len(ds))]) / 1e4)}

    res = SU.run_metric_suite(SU.suite_plan("dropout")[:1] + [SU.corruption("beam_loss", 3)], evaluate, tmp_path)
    assert res["runs"]["cameras/all"]["fingerprint"]["cameras_dropped"] == 12
    assert res["runs"]["beam_loss/3"]["fingerprint"]["points_removed"] > 0
    no_op = SU.Perturbation("noop/1", "corruptions", lambda s, rng: dict(s), {"corruption": "noop", "severity": 1})
    with pytest.raises(P.NothingChanged, match="noop/1 changed nothing"):
        SU.run_metric_suite([no_op], evaluate, tmp_path / "b")


def test_snow_focal_correction_and_echo_rule():
    # laser 0 of snow/calib/20171102_64E_S3.yaml: focal distance 8 m, slope 0.95
    assert R.SNOW_FOCAL[:2] == ((8.0, 0.95), (12.5, 1.0)) and len(R.SNOW_FOCAL) == 32
    want = 255 * 0.95 * abs((1 - 800 / 13100) ** 2 - (1 - 30 / 120) ** 2)
    assert float(R.focal_correction(np.array([30.0]), np.array([0]))[0]) == pytest.approx(want, rel=1e-5)
    assert want == pytest.approx(77.30, abs=0.01)
    # a dim return loses to flakes far more often than a bright one at the same range
    n = 4000
    pts = np.zeros((n, 5), np.float32)
    pts[:, 0] = 40.0
    dim, bright = pts.copy(), pts.copy()
    bright[:, 3] = 255.0
    hit = {}
    for name, p in (("dim", dim), ("bright", bright)):
        out = R.snow(p, 3, np.random.default_rng(0), ring=np.full(n, 16))
        hit[name] = float((out[:, 0] != 40.0).mean())
        assert (out[:, 0] <= 40.0).all() and (out[:, 0] >= R.SNOW_SENSOR["r_min"] - 1e-4).all()
    assert hit["dim"] > 0.3 and hit["bright"] < hit["dim"] / 2


def test_paper_protocol_parts_fractions_and_results(tmp_path, monkeypatch, capsys):
    """--protocol paper: nuScenes-C fog / snow / motion blur (the Robo3D streams, so equal to --protocol robo3d
    for those names), the spoofing part by --suite, a note when the checkpoint's label fraction is not the
    paper's, CE against a baseline, and one robustness.json with both parts."""
    import argparse
    from types import SimpleNamespace

    from calico.errors import CalicoError
    from calico.robustness import cli, suite
    from calico.robustness.suite import PerturbedDataset

    assert [p.name for p in P.protocol_plan("paper")] == [
        f"robo3d/{c}/{s}" for c in ("fog", "snow", "motion_blur") for s in (1, 2, 3)]
    assert P.protocol_plan("paper")[4].rng(7).random() == P.protocol_plan("robo3d")[7].rng(7).random()  # snow/2
    base = [sample_with_images(k) for k in range(3)]

    def evaluate(pert, out_dir):
        ds = PerturbedDataset(base, pert)
        n = np.mean([len(ds[i]["points"]) for i in range(len(ds))])
        return {"NDS": float(n / 3000.0), "mAP": float(n / 6000.0)}

    evaluate.dataset = SimpleNamespace(load_images=False)
    monkeypatch.setattr(cli, "make_evaluator", lambda model, cfg, split: evaluate)
    monkeypatch.setattr("calico.data.dataset.NuScenesDataset", lambda cfg, split, with_regions: base)
    spoof_calls = []
    monkeypatch.setattr(suite, "run_spoofing", lambda *a, **k: spoof_calls.append(a[3]) or
                        {"60": {"asr": 0.5, "frames": 2}, "100": {"asr": 1.0, "frames": 2}})
    cfg = SimpleNamespace(finetune=SimpleNamespace(fraction=0.1))

    def args(suite_name, out, baseline=None):
        return argparse.Namespace(protocol="paper", suite=suite_name, config=None, ckpt="k.pt", label="",
                                  split="val", seed=0, corruptions=None, severities=None, lidar_beams=32,
                                  lidar_elevation=(-30.67, 10.67), baseline=baseline, score_thr=0.3,
                                  max_frames=None, device="cpu", spoof_every_sweep=False,
                                  spoof_template=None)

    assert cli.run_protocol_cli(args("corruptions", tmp_path / "rand"), None, cfg, tmp_path / "rand") == 0
    assert "note" not in capsys.readouterr().out  # a 10 % model is what the paper corrupts
    assert cli.run_protocol_cli(args("all", tmp_path / "cal", str(tmp_path / "rand")), None, cfg,
                                tmp_path / "cal") == 0
    out = capsys.readouterr().out
    assert "fine-tuned with 50% of the labels; k.pt was fine-tuned with 10%" in out and "| 60 | 50.0 % | 2 |" in out
    res = json.loads((tmp_path / "cal" / "robustness.json").read_text())
    assert res["protocol"] == "paper" and set(res["scores"]) == {"fog", "snow", "motion_blur"}
    assert res["metrics"]["NDS"]["mCE"] == pytest.approx(1.0)  # against a model that scores the same
    assert res["spoofing"]["100"]["asr"] == 1.0 and spoof_calls == [(60, 100, 200)]
    assert res["paper_fractions"] == {"corruptions": 0.1, "spoofing": 0.5} and res["finetune_fraction"] == 0.1
    assert cli.run_protocol_cli(args("spoofing", tmp_path / "sp"), None, cfg, tmp_path / "sp") == 0
    assert "scores" not in json.loads((tmp_path / "sp" / "robustness.json").read_text())
    with pytest.raises(CalicoError, match="--protocol paper has the parts"):
        cli.run_protocol_cli(args("dropout", tmp_path / "x"), None, cfg, tmp_path / "x")
