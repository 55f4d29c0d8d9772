"""The synthetic world: devkit loading, map, point counts, camera/LiDAR consistency, velocity, determinism."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

nuscenes = pytest.importorskip("nuscenes")
from nuscenes.map_expansion.map_api import NuScenesMap  # noqa: E402
from nuscenes.nuscenes import NuScenes  # noqa: E402
from nuscenes.utils.data_classes import LidarPointCloud  # noqa: E402
from nuscenes.utils.geometry_utils import points_in_box, transform_matrix  # noqa: E402
from nuscenes.utils.splits import get_scenes_of_custom_split  # noqa: E402
from pyquaternion import Quaternion  # noqa: E402

from calico.data.synth import MAP_NAME, generate  # noqa: E402
from calico.data.synth import camera as synth_camera  # noqa: E402
from calico.data.synth.generate import scene_time, scene_world, true_velocity  # noqa: E402
from calico.data.synth.rig import build_rig  # noqa: E402

SEED, SCENES, SAMPLES, SWEEPS, IMAGE = 3, 2, 3, 2, (90, 160)
DETECTION_NAMES = {"car", "truck", "construction_vehicle", "bus", "trailer", "barrier", "motorcycle", "bicycle",
                   "pedestrian", "traffic_cone"}


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth")
    summary = generate(out, scenes=SCENES, samples_per_scene=SAMPLES, sweeps=SWEEPS, seed=SEED, image_size=IMAGE,
                       progress=False)
    return out, summary


@pytest.fixture(scope="module")
def nusc(world_dir) -> NuScenes:
    return NuScenes(version="v1.0-synth", dataroot=str(world_dir[0]), verbose=False)


def _pose(rec) -> np.ndarray:
    return transform_matrix(rec["translation"], Quaternion(rec["rotation"]))


def test_devkit_loads_all_tables(nusc, world_dir):
    assert len(nusc.scene) == SCENES and len(nusc.sample) == SCENES * SAMPLES
    assert len(nusc.sample_annotation) > 50
    from nuscenes.eval.detection.utils import category_to_detection_name

    names = {category_to_detection_name(a["category_name"]) for a in nusc.sample_annotation}
    assert None not in names and names <= DETECTION_NAMES and len(names) >= 6
    for sample in nusc.sample:
        assert set(sample["data"]) == {"LIDAR_TOP", "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK",
                                       "CAM_BACK_LEFT", "CAM_FRONT_LEFT"}
        cam = nusc.get("sample_data", sample["data"]["CAM_BACK"])
        assert (cam["height"], cam["width"]) == IMAGE and cam["fileformat"] == "jpg"
        assert (world_dir[0] / cam["filename"]).is_file()
    summary = world_dir[1]
    assert summary["samples"] == SCENES * SAMPLES and summary["points_within_1m"] > 0


def test_sweeps_precede_keyframes(nusc, world_dir):
    for sample in nusc.sample:
        sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        assert sd["is_key_frame"] and sd["filename"].startswith("samples/LIDAR_TOP/")
        prev_ts, n = sd["timestamp"], 0
        while sd["prev"] and n < SWEEPS:
            sd = nusc.get("sample_data", sd["prev"])
            if sd["is_key_frame"]:
                break
            assert prev_ts - sd["timestamp"] == 50_000
            assert (world_dir[0] / sd["filename"]).is_file() and sd["filename"].startswith("sweeps/LIDAR_TOP/")
            prev_ts, n = sd["timestamp"], n + 1
        assert n == SWEEPS


def test_map_expansion_loads_and_matches_world(nusc, world_dir):
    nmap = NuScenesMap(dataroot=str(world_dir[0]), map_name=MAP_NAME)
    layers = ["drivable_area", "ped_crossing", "walkway", "stop_line", "carpark_area", "road_divider", "lane_divider"]
    for scene in nusc.scene:
        assert nusc.get("log", scene["log_token"])["location"] == MAP_NAME
        sample = nusc.get("sample", scene["first_sample_token"])
        ego = nusc.get("ego_pose", nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["ego_pose_token"])
        x, y = ego["translation"][:2]
        masks = nmap.get_map_mask((x, y, 100.0, 100.0), 0.0, layers, canvas_size=(200, 200))
        assert masks.shape == (7, 200, 200)
        assert masks[0].mean() > 0.05  # drivable area around the ego
        assert masks[0][99:101, 99:101].all()  # the ego drives on the drivable area
        assert masks[2].sum() > 0 and masks[5].sum() + masks[6].sum() > 0  # walkways, dividers


def test_num_lidar_pts_equals_points_in_box(nusc, world_dir):
    checked = 0
    for sample in nusc.sample:
        path, boxes, _ = nusc.get_sample_data(sample["data"]["LIDAR_TOP"])
        pts = LidarPointCloud.from_file(path).points
        assert pts.shape[0] == 4  # devkit drops the ring column of our 5-column file, as for real nuScenes
        for box in boxes:
            ann = nusc.get("sample_annotation", box.token)
            assert ann["num_lidar_pts"] == int(points_in_box(box, pts[:3]).sum()) >= 1
            checked += 1
    assert checked > 50


def _object_index(world, t, translation, g_rot, g_trans) -> int:
    poses = world.object_poses(t)
    h = np.array([o.wlh[2] for o in world.objects])
    centres = (g_rot @ np.column_stack([poses[:, :2], poses[:, 2] + h / 2]).T).T + g_trans
    d = np.linalg.norm(centres - np.array(translation), axis=1)
    assert d.min() < 1e-6
    return int(d.argmin())


def test_lidar_points_project_onto_their_object_in_the_camera(nusc, world_dir):
    rig = build_rig(IMAGE)
    checked = 0
    for si, scene in enumerate(nusc.scene):
        world, _ = scene_world(SEED, si, SAMPLES)
        g_rot, g_trans = world.to_global()
        sample = nusc.get("sample", scene["first_sample_token"])
        lidar_sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        t = scene_time(sample["timestamp"], si)
        lidar2global = _pose(nusc.get("ego_pose", lidar_sd["ego_pose_token"])) @ _pose(
            nusc.get("calibrated_sensor", lidar_sd["calibrated_sensor_token"]))
        pts = np.fromfile(world_dir[0] / lidar_sd["filename"], dtype=np.float32).reshape(-1, 5)
        _, boxes, _ = nusc.get_sample_data(lidar_sd["token"])
        for cam_name in ("CAM_FRONT", "CAM_BACK", "CAM_FRONT_LEFT"):
            cam_sd = nusc.get("sample_data", sample["data"][cam_name])
            cs = nusc.get("calibrated_sensor", cam_sd["calibrated_sensor_token"])
            global2cam = np.linalg.inv(_pose(nusc.get("ego_pose", cam_sd["ego_pose_token"])) @ _pose(cs))
            rot, trans = world.ego_pose(t)
            hits = synth_camera.cast_camera(world, t, rot, trans, rig[cam_name])
            ids, depth = hits.obj.reshape(IMAGE), hits.t.reshape(IMAGE)
            k = np.array(cs["camera_intrinsic"])
            for box in boxes:
                ann = nusc.get("sample_annotation", box.token)
                inside = points_in_box(box, pts[:, :3].T.astype(np.float64))
                # leave out ground returns inside the box (its bottom sits on the ground)
                inside &= pts[:, 2] > box.center[2] - box.wlh[2] / 2 + 0.25
                if inside.sum() < 10:
                    continue
                p = (global2cam @ lidar2global @ np.vstack([pts[inside, :3].T, np.ones(inside.sum())]))[:3]
                if (p[2] < 1.0).any():
                    continue
                uv = (k @ p)[:2] / p[2]
                if not ((uv[0] >= 0) & (uv[0] < IMAGE[1]) & (uv[1] >= 0) & (uv[1] < IMAGE[0])).all():
                    continue
                oi = _object_index(world, t, ann["translation"], g_rot, g_trans)
                # the box's projected corners bound the points' pixels
                corners = (global2cam @ np.vstack([nusc.get_box(ann["token"]).corners(), np.ones(8)]))[:3]
                cuv = (k @ corners)[:2] / corners[2]
                assert (uv[0] >= cuv[0].min() - 1e-6).all() and (uv[0] <= cuv[0].max() + 1e-6).all()
                assert (uv[1] >= cuv[1].min() - 1e-6).all() and (uv[1] <= cuv[1].max() + 1e-6).all()
                r, c = uv[1].astype(int), uv[0].astype(int)
                # where the camera sees the point itself (same depth; else it is occluded from the camera's
                # viewpoint), the pixel belongs to the object the LiDAR hit
                seen = np.abs(depth[r, c] - np.linalg.norm(p, axis=0)) < 0.15
                if seen.sum() < 5:
                    continue
                assert (ids[r, c][seen] == oi).mean() > 0.9, (ann["category_name"], ids[r, c][seen], oi)
                checked += 1
    assert checked >= 3


def test_box_velocity_matches_simulation(nusc):
    checked = 0
    for si, scene in enumerate(nusc.scene):
        world, _ = scene_world(SEED, si, SAMPLES)
        g_rot, g_trans = world.to_global()
        sample = nusc.get("sample", scene["first_sample_token"])
        sample = nusc.get("sample", sample["next"])  # middle keyframe: centred differences
        t = scene_time(sample["timestamp"], si)
        for ann_token in sample["anns"]:
            ann = nusc.get("sample_annotation", ann_token)
            if not ann["prev"] or not ann["next"]:
                continue
            oi = _object_index(world, t, ann["translation"], g_rot, g_trans)
            v = nusc.box_velocity(ann_token)
            np.testing.assert_allclose(v[:2], true_velocity(world, oi)[:2], atol=1e-6)
            attrs = {nusc.get("attribute", a)["name"] for a in ann["attribute_tokens"]}
            if np.linalg.norm(v[:2]) > 0.5:
                assert attrs & {"vehicle.moving", "pedestrian.moving", "cycle.with_rider"}
            checked += np.linalg.norm(v[:2]) > 0.5
    assert checked >= 3


def test_splits_valid_and_disjoint(nusc):
    train = get_scenes_of_custom_split("train", nusc)
    val = get_scenes_of_custom_split("val", nusc)
    assert len(val) >= 1 and len(train) >= 1 and not set(train) & set(val)
    assert set(train) | set(val) == {s["name"] for s in nusc.scene}


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_deterministic_for_a_seed(tmp_path):
    kw = dict(scenes=1, samples_per_scene=2, sweeps=1, image_size=(36, 64), progress=False)
    generate(tmp_path / "a", seed=5, **kw)
    generate(tmp_path / "b", seed=5, **kw)
    generate(tmp_path / "c", seed=6, **kw)
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert a == b
    assert a != c
    tables = json.loads((tmp_path / "a" / "v1.0-synth" / "sample_data.json").read_text())
    assert len(tables) == 2 * (1 + 1 + 6)


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="sweeps"):
        generate(tmp_path, sweeps=12, progress=False)
    with pytest.raises(ValueError, match="image_size"):
        generate(tmp_path, image_size=(4, 4), progress=False)


def test_cli_reports_bad_arguments(tmp_path, capsys):
    from calico.cli import main

    assert main(["synth", "--out", str(tmp_path), "--sweeps", "20", "--no-progress"]) == 1
    assert "sweeps must be in [0, 9]" in capsys.readouterr().err


def test_primitive_intersections_hand_checked():
    from calico.data.synth.shapes import intersect_boxes, intersect_cylinders

    o = np.zeros(3)
    d = np.array([[1.0, 0, 0], [0, 1.0, 0], [np.sqrt(0.5), np.sqrt(0.5), 0]])
    # unit-half-size box at x=5, rotated 45 deg: its corner points at the origin, 5 - sqrt(2) away
    t = intersect_boxes(o, d, np.array([[5.0, 0, 0]]), np.array([np.pi / 4]), np.ones((1, 3)))
    np.testing.assert_allclose(t[0, 0], 5 - np.sqrt(2))
    assert np.isinf(t[1, 0]) and np.isinf(t[2, 0])
    # cylinder r=1 at y=4 from z=-1..1: the +y ray hits at 3; a ray from above hits the top cap
    t = intersect_cylinders(o, d, np.array([[0.0, 4.0, 0.0]]), np.array([1.0]), np.array([1.0]))
    np.testing.assert_allclose(t[1, 0], 3.0)
    assert np.isinf(t[0, 0])
    t = intersect_cylinders(np.array([0, 4.0, 3.0]), np.array([[0, 0, -1.0]]), np.array([[0.0, 4.0, 0.0]]),
                            np.array([1.0]), np.array([1.0]))
    np.testing.assert_allclose(t[0, 0], 2.0)


def test_unlabeled_scenes_are_a_separate_small_image_pool(tmp_path, capsys):
    """`--unlabeled-scenes`: extra scenes in a split of their own with small images; the labeled scenes,
    their splits and their LiDAR files are what the same world without them has."""
    from PIL import Image

    kw = dict(scenes=2, samples_per_scene=1, sweeps=0, image_size=(40, 72), progress=False)
    generate(tmp_path / "base", **kw)
    summary = generate(tmp_path / "pool", unlabeled_scenes=1, unlabeled_image_size=(16, 28), **kw)
    base = json.loads((tmp_path / "base" / "v1.0-synth" / "splits.json").read_text())
    pool = json.loads((tmp_path / "pool" / "v1.0-synth" / "splits.json").read_text())
    assert pool == {**base, "unlabeled": ["scene-0003"]} and summary["scenes"] == 3
    lidar = sorted((tmp_path / "base" / "samples" / "LIDAR_TOP").iterdir())
    assert all((tmp_path / "pool" / "samples" / "LIDAR_TOP" / p.name).read_bytes() == p.read_bytes() for p in lidar)
    sizes = {Image.open(p).size for p in (tmp_path / "pool" / "samples" / "CAM_FRONT").iterdir()}
    assert sizes == {(72, 40), (28, 16)}
    from calico.cli import main

    assert main(["synth", "--out", str(tmp_path / "cli"), "--scenes", "2", "--samples-per-scene", "1",
                 "--sweeps", "0", "--image-size", "16", "28", "--unlabeled-scenes", "1", "--no-progress"]) == 0
    assert "unlabeled 1" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unlabeled_scenes"):
        generate(tmp_path / "bad", unlabeled_scenes=-1, **kw)


def test_work_zones_are_opt_in_and_add_barrier_rows():
    from calico.data.synth.generate import scene_world

    base, _ = scene_world(0, 0, 4)
    hard, _ = scene_world(0, 0, 4, work_zones=True)
    n = len(base.objects)
    # off: the default world; on: the same objects first, then the work zones
    assert [(o.name, tuple(o.xy0)) for o in hard.objects[:n]] == [(o.name, tuple(o.xy0)) for o in base.objects]
    extra = hard.objects[n:]
    barriers = [o for o in extra if o.name == "barrier"]
    assert {o.name for o in extra} == {"barrier", "traffic_cone"} and len(barriers) >= 12
    xs = sorted(o.xy0[0] for o in barriers if o.xy0[1] > 0)
    gaps = np.diff(xs)
    assert (gaps[gaps < 5] <= 2.9).all() and (gaps < 5).sum() >= 5  # end to end: one DBSCAN cluster per row
    assert all(abs(abs(o.xy0[1]) - 6.75) < 1e-9 for o in extra)
