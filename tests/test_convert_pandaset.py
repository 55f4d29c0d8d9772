"""``calico convert pandaset`` on a 2-frame slice of the real PandaSet sequence 002 in ../shared."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

PANDASET = next((p / "shared" / "data" / "pandaset-002" for p in (REPO.parent, REPO.parents[1])
                 if (p / "shared" / "data" / "pandaset-002" / "lidar").is_dir()),
                REPO.parent / "shared" / "data" / "pandaset-002")
FRAMES = [0, 8]
VERSION = "v1.0-pandaset"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    if not (PANDASET / "lidar" / "poses.json").is_file():
        pytest.skip(f"PandaSet slice not found at {PANDASET}")
    pytest.importorskip("pandas", reason="reading PandaSet needs pandas (pip install 'calico-bev[convert]')")
    from calico.data.convert.pandaset import convert

    out = tmp_path_factory.mktemp("pandaset")
    summary = convert(PANDASET, out, version=VERSION, frames=FRAMES)
    return out, summary


@pytest.fixture(scope="module")
def index(converted, tmp_path_factory):
    from calico.config import DataConfig
    from calico.data.prepare import prepare

    out, _ = converted
    data = DataConfig(dataroot=str(out), version=VERSION, cache_dir=str(tmp_path_factory.mktemp("cache")))
    return prepare(data, progress=False)


def test_devkit_loads_it(converted):
    from calico.data.prepare import open_nuscenes

    out, summary = converted
    assert summary["samples"] == 2 and summary["scenes"] == ["pandaset-002"]
    nusc = open_nuscenes(str(out), VERSION)
    assert len(nusc.sample) == 2 and len(nusc.scene) == 1
    sample = nusc.sample[0]
    assert set(sample["data"]) == {"LIDAR_TOP", "CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK",
                                   "CAM_BACK_LEFT", "CAM_BACK_RIGHT"}
    _, boxes, _ = nusc.get_sample_data(sample["data"]["LIDAR_TOP"])
    assert len(boxes) == len(sample["anns"]) > 20
    cats = {nusc.get("sample_annotation", a)["category_name"] for a in sample["anns"]}
    assert "vehicle.car" in cats and "vehicle.truck" in cats
    # an object seen in both frames gets a finite velocity from the devkit
    two = [i for i in nusc.instance if i["nbr_annotations"] == 2]
    assert two and np.isfinite(nusc.box_velocity(two[0]["first_annotation_token"])[:2]).all()
    # 5 float32 columns, Pandar64 only (~106k of ~167k points)
    pts = np.fromfile(out / nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["filename"], np.float32)
    assert pts.size % 5 == 0 and 90_000 < pts.size // 5 < 130_000
    splits = json.loads((out / VERSION / "splits.json").read_text())
    assert splits == {"train": ["pandaset-002"], "val": ["pandaset-002"]}


def test_prepare_indexes_it(index):
    from calico.data.splits import split_scene_names

    recs = index["records"]
    assert len(recs) == 2 and index["custom_splits"] and not index["bad_files"]
    r = recs[0]
    assert len(r["cams"]) == 6 and r["cams"]["CAM_FRONT"]["size"] == (1080, 1920)
    assert len(r["gt_boxes"]) > 20 and set(r["gt_names"]) >= {"car", "truck", "pedestrian"}
    assert split_scene_names(index["dataroot"], VERSION, "val") == ["pandaset-002"]


def _labels(index, r):
    from calico.data.synth.labels import ground_truth_labels

    pts = np.fromfile(f"{index['dataroot']}/{r['lidar_path']}", np.float32).reshape(-1, 5)
    return pts, ground_truth_labels(index["dataroot"], r["lidar_path"])


def test_box_yaw_and_size_match_the_semseg_points(index):
    from calico.config import CLASSES
    from calico.data.geometry import points_in_boxes

    for r in index["records"]:
        pts, lab = _labels(index, r)
        cars = np.asarray(r["gt_boxes"])[np.asarray(r["gt_names"]) == "car"]
        car_pts = lab == CLASSES.index("car")
        inside = points_in_boxes(pts[:, :3], cars)
        assert car_pts.sum() > 5000
        assert inside.any(axis=1)[car_pts].mean() > 0.95  # the car points lie in car boxes ...
        assert car_pts[inside.any(axis=1)].mean() > 0.9  # ... and the car boxes hold car points
        # every well-covered box is mostly its own class's points
        big = inside.sum(axis=0) >= 50
        assert big.sum() > 10 and np.median([car_pts[inside[:, b]].mean() for b in np.flatnonzero(big)]) > 0.9
        # the other yaw convention (PandaSet's yaw used as is) misses most of them: the test can tell
        wrong = cars.copy()
        wrong[:, 6] -= np.pi / 2
        assert points_in_boxes(pts[:, :3], wrong).any(axis=1)[car_pts].mean() < 0.7
        # the box point counts are the devkit's, on the Pandar64 points
        assert (np.asarray(r["gt_num_pts"]) >= 1).all()
        counts = points_in_boxes(pts[:, :3], np.asarray(r["gt_boxes"])).sum(axis=0)  # yaw-only boxes
        npts = np.asarray(r["gt_num_pts"])
        assert np.mean(np.abs(counts - npts) <= np.maximum(2, 0.05 * npts)) > 0.9


def test_box_centres_project_into_the_cameras(index):
    for r in index["records"]:
        centres = np.c_[np.asarray(r["gt_boxes"])[:, :3], np.ones(len(r["gt_boxes"]))]
        x, y = centres[:, 0], centres[:, 1]  # Pandar64 frame: x right, y forward
        for cam, ahead in (("CAM_FRONT", y > 5), ("CAM_BACK", y < -5)):
            sel = ahead & (np.abs(x) < 0.3 * np.abs(y))  # well inside either camera's field of view
            assert sel.sum() >= 3, cam
            c = r["cams"][cam]
            p = (c["lidar2cam"] @ centres[sel].T)[:3]
            assert (p[2] > 0).all(), cam
            uv = (c["intrinsics"] @ p)[:2] / p[2]
            h, w = c["size"]
            assert ((uv[0] > 0) & (uv[0] < w) & (uv[1] > 0) & (uv[1] < h)).all(), cam


def test_point_labels_and_pool_evaluate(converted, tmp_path, capsys):
    from calico.cli import main
    from calico.data.point_labels import CLASS_FORMAT, GROUND, label_format

    out, _ = converted
    assert label_format(out) == CLASS_FORMAT
    lab = np.load(next((out / "labels").rglob("*.npy")))
    assert lab.dtype == np.int32 and (lab == GROUND).mean() > 0.1 and (lab == 0).mean() > 0.05
    rc = main(["pool", "--dataroot", str(out), "--version", VERSION, "--cache-dir", str(tmp_path),
               "--evaluate", "--sweeps", "0", "--limit", "1"])
    text = capsys.readouterr().out
    assert rc == 0 and "strict rule" in text and "point-wise truth (1 keyframes)" in text and "| ground |" in text


def test_bad_input_names_the_file(tmp_path):
    if not (PANDASET / "lidar" / "poses.json").is_file():
        pytest.skip(f"PandaSet slice not found at {PANDASET}")
    pytest.importorskip("pandas", reason="reading PandaSet needs pandas")
    from calico.data.convert.pandaset import convert
    from calico.errors import DataError

    src = tmp_path / "002"
    shutil.copytree(PANDASET, src, ignore=shutil.ignore_patterns("*.jpg", "[1-7]*.pkl.gz", "[1-7]*.jpg"))
    for cam in (PANDASET / "camera").iterdir():
        if cam.is_dir():
            (src / "camera" / cam.name / "00.jpg").symlink_to(cam / "00.jpg")
    s = convert(src, tmp_path / "ok", frames=[0], link_images=True)
    jpg = next((tmp_path / "ok" / "samples" / "CAM_FRONT").iterdir())
    assert s["samples"] == 1 and jpg.is_symlink() and jpg.read_bytes()[:2] == b"\xff\xd8"
    (src / "lidar" / "00.pkl.gz").unlink()
    (src / "lidar" / "00.pkl.gz").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match=r"lidar/00\.pkl\.gz: cannot read the pickled DataFrame"):
        convert(src, tmp_path / "out", frames=[0])
    with pytest.raises(DataError, match=r"frame\(s\) \[3\] not present"):
        convert(src, tmp_path / "out", frames=[3])
    (src / "lidar" / "poses.json").write_text("[]")
    with pytest.raises(DataError, match=r"lidar/poses\.json: expected a list of at least 1 poses"):
        convert(src, tmp_path / "out", frames=[0])


def test_missing_pandas_and_bad_src_are_one_line_errors(tmp_path, monkeypatch, capsys):
    from calico.cli import main

    assert main(["convert", "pandaset", "--src", str(tmp_path / "absent"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "absent: PandaSet folder does not exist" in err
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails
    assert main(["convert", "pandaset", "--src", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "pip install 'calico-bev[convert]'" in capsys.readouterr().err
