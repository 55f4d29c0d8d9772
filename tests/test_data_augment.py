"""Fine-tuning augmentation: geometry consistency (points/boxes/cameras/map masks), paste, wiring, exact resume."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from engine_toy import ContractModel
from shapely.geometry import Polygon

from calico.cli import main as calico_main
from calico.config import get_config
from calico.data.augment import (
    Augmenter,
    GTDatabase,
    apply_global,
    augment_sample,
    global_matrix,
    paste_objects,
    transform_boxes,
    transform_map_masks,
)
from calico.data.geometry import box_corners, points_in_boxes
from calico.utils.runinfo import seed_everything


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """3 synthetic scenes x 1 keyframe (tiny images, map masks), prepared; returns a cpu Config on it."""
    from calico.data.synth import generate

    root = tmp_path_factory.mktemp("aug_world")
    generate(root / "data", scenes=3, samples_per_scene=1, sweeps=1, image_size=(16, 28), progress=False)
    assert calico_main(["prepare", "--dataroot", str(root / "data"), "--version", "v1.0-synth",
                        "--cache-dir", str(root / "cache")]) == 0
    cfg = get_config("cpu", [f"data.dataroot={root / 'data'}", "data.version=v1.0-synth",
                             f"data.cache_dir={root / 'cache'}", "data.sweeps=1"])
    cfg.data.image_size = (32, 56)
    return cfg


@pytest.fixture(scope="module")
def sample(world):
    from calico.data.dataset import NuScenesDataset

    s = NuScenesDataset(world, split=None, with_regions=False, load_images=True)[0]
    assert len(s["gt_boxes"]) > 0 and "map_masks" in s and "images" in s
    return s


def _project(points: np.ndarray, lidar2img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Ncam, P, 2) pixels and (Ncam, P) depths."""
    h = np.concatenate([points[:, :3], np.ones((len(points), 1))], 1).astype(np.float64)
    cam = np.einsum("nij,pj->npi", lidar2img.astype(np.float64), h)
    return cam[..., :2] / np.maximum(cam[..., 2:3], 1e-6), cam[..., 2]


def _copy(s: dict) -> dict:
    return {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else copy.deepcopy(v) for k, v in s.items()}


# ----------------------------------------------------------------------------------------------- boxes, yaw
def test_yaw_velocity_and_size_hand_checked():
    box = np.array([[3.0, 1.0, -1.0, 2.0, 4.0, 1.5, 0.3, 1.0, 2.0]], np.float32)
    fx = transform_boxes(box, global_matrix(True, False, 0.0, 1.0, [0, 0, 0]))[0]
    np.testing.assert_allclose(fx[[0, 1, 6, 7, 8]], [-3.0, 1.0, np.pi - 0.3, -1.0, 2.0], atol=1e-6)
    fy = transform_boxes(box, global_matrix(False, True, 0.0, 1.0, [0, 0, 0]))[0]
    np.testing.assert_allclose(fy[[0, 1, 6, 7, 8]], [3.0, -1.0, -0.3, 1.0, -2.0], atol=1e-6)
    r90 = transform_boxes(box, global_matrix(False, False, 90.0, 1.0, [0, 0, 0]))[0]
    np.testing.assert_allclose(r90[[0, 1, 6, 7, 8]], [-1.0, 3.0, 0.3 + np.pi / 2, -2.0, 1.0], atol=1e-6)
    s2 = transform_boxes(box, global_matrix(False, False, 0.0, 2.0, [1, 0, 0]))[0]
    np.testing.assert_allclose(s2, [7.0, 2.0, -2.0, 4.0, 8.0, 3.0, 0.3, 2.0, 4.0], atol=1e-6)
    # the corner convention of the repo: transformed corners = A applied to the original corners
    for a in (global_matrix(True, False, 0, 1, [0, 0, 0]), global_matrix(False, True, 0, 1, [0, 0, 0]),
              global_matrix(True, True, 37.0, 1.1, [0.5, -2, 0.1])):
        got = box_corners(transform_boxes(box, a)[0])[:4]
        want = box_corners(box[0])[:4] @ a[:2, :2].T + a[:2, 3]
        assert np.allclose(np.sort_complex(got @ [1, 1j]), np.sort_complex(want @ [1, 1j]), atol=1e-4)


def test_points_stay_in_their_boxes(sample, world):
    inner = sample["gt_boxes"].copy()
    inner[:, 3:6] -= 0.02  # points on a face may cross it by float rounding
    before = points_in_boxes(sample["points"][:, :3], inner)
    assert before.any()
    for seed in range(4):
        out = apply_global(sample, global_matrix(seed % 2 == 0, seed >= 2, 30.0 * seed - 40, 0.9 + 0.05 * seed,
                                                 [0.3, -0.2, 0.1]), world.model.seg_range)
        after = points_in_boxes(out["points"][:, :3], out["gt_boxes"])
        assert after[before].all()
        np.testing.assert_array_equal(out["points"][:, 3:], sample["points"][:, 3:])


def test_lidar_point_keeps_its_pixel(sample, world):
    a = global_matrix(True, False, 33.0, 1.07, [0.4, -0.3, 0.2])
    out = apply_global(sample, a, world.model.seg_range)
    uv0, d0 = _project(sample["points"], sample["lidar2img"])
    uv1, d1 = _project(out["points"], out["lidar2img"])
    front = d0 > 1.0
    assert front.any()
    np.testing.assert_allclose(uv1[front], uv0[front], atol=2e-2)
    np.testing.assert_allclose(d1[front], d0[front], rtol=1e-4, atol=1e-3)
    uvc, _ = _project(out["points"], np.asarray(out["lidar2cam"]))
    uvc0, _ = _project(sample["points"], np.asarray(sample["lidar2cam"]))
    np.testing.assert_allclose(uvc[front], uvc0[front], atol=1e-3)
    eye = np.asarray(out["cam2lidar"], np.float64) @ np.asarray(out["lidar2cam"], np.float64)
    np.testing.assert_allclose(eye, np.tile(np.eye(4), (len(eye), 1, 1)), atol=1e-4)
    np.testing.assert_array_equal(out["intrinsics"], sample["intrinsics"])


def test_image_aug_keeps_pattern_under_projected_point(world):
    cfg = copy.deepcopy(world)
    cfg.augment.image_scale_range, cfg.augment.image_rot_range = (0.8, 1.2), 10.0
    h, w = 64, 96
    k = np.array([[50.0, 0, 47.5], [0, 50.0, 31.5], [0, 0, 1]], np.float32)
    l2c = np.eye(4, dtype=np.float32)  # camera looks along LiDAR +z for simplicity
    pts = np.array([[0.9, 0.5, 5.0, 0, 0], [-1.2, -0.7, 6.0, 0, 0], [0.2, 0.1, 4.0, 0, 0]], np.float32)
    images = np.zeros((1, h, w, 3), np.uint8)
    uv, _ = _project(pts, np.array([np.block([[k, np.zeros((3, 1))], [np.zeros((1, 3)), np.ones((1, 1))]])]))
    for u, v in np.rint(uv[0]).astype(int):
        images[0, v - 2:v + 3, u - 2:u + 3] = 255
    k4 = np.eye(4, dtype=np.float32)
    k4[:3, :3] = k
    s = {"points": pts, "gt_boxes": np.zeros((0, 9), np.float32), "gt_labels": np.zeros(0, np.int64),
         "gt_num_pts": np.zeros(0, np.int64), "images": images, "intrinsics": k[None], "lidar2cam": l2c[None],
         "cam2lidar": l2c[None], "lidar2img": (k4 @ l2c)[None], "token": "t"}
    for seed in range(5):
        out = augment_sample(s, cfg, np.random.default_rng(seed))
        assert out["images"].shape == images.shape and out["images"].dtype == np.uint8
        k4n = np.eye(4)
        k4n[:3, :3] = out["intrinsics"][0]
        np.testing.assert_allclose(out["lidar2img"][0], k4n @ out["lidar2cam"][0], atol=1e-4)
        uv1, _ = _project(out["points"], out["lidar2img"])
        for u, v in np.rint(uv1[0]).astype(int):
            assert out["images"][0, v, u].min() > 128, (seed, u, v)
        assert not np.array_equal(out["images"], images)


# ------------------------------------------------------------------------------------------------- map masks
def test_map_mask_rotation_and_shift():
    rng = np.random.default_rng(0)
    masks = (rng.random((6, 20, 20)) > 0.5).astype(np.uint8)
    r = 10.0
    out = transform_map_masks(masks, global_matrix(False, False, 90.0, 1.0, [0, 0, 0]), r)
    # rows +y, cols +x: rotating the world by +90 deg about +z maps (x, y) -> (-y, x), i.e. out[i, j] = in[S-1-j, i]
    np.testing.assert_array_equal(out, np.rot90(masks, k=-1, axes=(1, 2)))
    east = np.zeros((1, 20, 20), np.uint8)
    east[0, 8:12, 15:] = 1  # a blob at x > 5 m, around y = 0
    north = transform_map_masks(east, global_matrix(False, False, 90.0, 1.0, [0, 0, 0]), r)
    assert north[0, 15:, 8:12].all() and north.sum() == east.sum()
    shifted = transform_map_masks(masks, global_matrix(False, False, 0.0, 1.0, [1.0, 0, 0]), r)  # one cell +x
    np.testing.assert_array_equal(shifted[:, :, 1:], masks[:, :, :-1])
    assert not shifted[:, :, 0].any()
    flipped = transform_map_masks(masks, global_matrix(True, False, 0.0, 1.0, [0, 0, 0]), r)
    np.testing.assert_array_equal(flipped, masks[:, :, ::-1])


# ---------------------------------------------------------------------------------------------- whole sample
def test_input_unchanged_and_shapes(sample, world):
    from calico.data.dataset import NuScenesDataset

    cfg = copy.deepcopy(world)
    cfg.model.modality = "L"
    db = GTDatabase.from_dataset(NuScenesDataset(cfg, split=None, with_regions=False))
    s = dict(sample, regions=np.arange(len(sample["points"])))
    before = _copy(s)
    out = augment_sample(s, cfg, np.random.default_rng(3), db)
    for key, v in before.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(s[key], v, err_msg=key)
    for key in ("points", "gt_boxes", "gt_labels", "gt_num_pts", "regions", "images", "intrinsics", "lidar2cam",
                "cam2lidar", "lidar2img", "map_masks"):
        assert not np.shares_memory(out[key], s[key]), key
    p = len(s["points"])
    assert len(out["points"]) > p and len(out["gt_boxes"]) > len(s["gt_boxes"])  # something was pasted
    np.testing.assert_array_equal(out["regions"][:p], s["regions"])
    assert (out["regions"][p:] == -1).all() and len(out["regions"]) == len(out["points"])
    assert len(out["gt_labels"]) == len(out["gt_boxes"]) == len(out["gt_num_pts"])
    assert out["map_masks"].shape == s["map_masks"].shape and out["images"].shape == s["images"].shape


def test_paste_keeps_rows_and_avoids_overlap(sample, world):
    from calico.data.dataset import NuScenesDataset

    db = GTDatabase.from_dataset(NuScenesDataset(world, split=None, with_regions=False, load_images=False))
    assert len(db) > 0 and set(db.by_class)
    for k in range(len(db)):
        assert len(db.object_points(k)) >= 5
        assert points_in_boxes(db.object_points(k)[:, :3], db.boxes[k:k + 1]).all()
    capped = GTDatabase.from_dataset(NuScenesDataset(world, split=None, with_regions=False), max_per_class=1)
    assert set(capped.by_class) == set(db.by_class) and all(len(v) == 1 for v in capped.by_class.values())
    s = {k: sample[k] for k in ("points", "gt_boxes", "gt_labels", "gt_num_pts")}
    s["gt_boxes"], s["gt_labels"], s["gt_num_pts"] = s["gt_boxes"][:3], s["gt_labels"][:3], s["gt_num_pts"][:3]
    out = paste_objects(s, db, 10, np.random.default_rng(0))
    np.testing.assert_array_equal(out["points"][:len(s["points"])], s["points"])
    np.testing.assert_array_equal(out["gt_boxes"][:3], s["gt_boxes"])
    assert 3 < len(out["gt_boxes"]) <= 13
    polys = [Polygon(box_corners(b)) for b in out["gt_boxes"]]
    for i in range(3, len(polys)):
        assert not any(polys[i].intersects(polys[j]) for j in range(len(polys)) if j != i)
    assert out["gt_num_pts"][3:].sum() == len(out["points"]) - len(s["points"])


def test_paste_only_without_camera_unless_asked(sample, world):
    from calico.data.dataset import NuScenesDataset

    db = GTDatabase.from_dataset(NuScenesDataset(world, split=None, with_regions=False, load_images=False))
    cfg = copy.deepcopy(world)
    s = {k: sample[k] for k in ("points", "gt_boxes", "gt_labels", "gt_num_pts")}
    for modality, with_camera, pasted in (("L+C", False, False), ("L+C", True, True), ("L", False, True)):
        cfg.model.modality, cfg.augment.paste_with_camera = modality, with_camera
        out = augment_sample(s, cfg, np.random.default_rng(0), db)
        assert (len(out["gt_boxes"]) > len(s["gt_boxes"])) == pasted, modality
    cfg.augment.paste = False
    assert len(augment_sample(s, cfg, np.random.default_rng(0), db)["gt_boxes"]) == len(s["gt_boxes"])


def test_edge_cases(world):
    cfg = copy.deepcopy(world)
    empty = {"points": np.zeros((0, 5), np.float32), "gt_boxes": np.zeros((0, 9), np.float32),
             "gt_labels": np.zeros(0, np.int64), "gt_num_pts": np.zeros(0, np.int64), "token": "e"}
    db = GTDatabase(np.zeros((0, 5), np.float32), np.zeros(1, np.int64), np.zeros((0, 9), np.float32),
                    np.zeros(0, np.int64), [])
    out = augment_sample(empty, cfg, np.random.default_rng(0), db)
    assert out["points"].shape == (0, 5) and out["gt_boxes"].shape == (0, 9)
    far = dict(empty, gt_boxes=np.array([[54.0, 0, 0, 2, 4, 1.5, 0, 0, 0]], np.float32),  # half outside ±54 m
               gt_labels=np.zeros(1, np.int64), gt_num_pts=np.zeros(1, np.int64),
               points=np.array([[53.5, 0.2, 0.1, 0.5, 0.0]], np.float32))
    out = augment_sample(far, cfg, np.random.default_rng(1))
    assert out["gt_boxes"].shape == (1, 9) and out["points"].shape == (1, 5)
    assert points_in_boxes(out["points"][:, :3], out["gt_boxes"]).all()


# ---------------------------------------------------------------------------------------- wiring and resume
class AugToyData(torch.utils.data.Dataset):
    """Sample dicts through ``transform``, turned into the toy (x, y) pairs by ``_collate``."""

    def __init__(self, n: int = 20):
        rng = np.random.default_rng(7)
        self.points = rng.normal(size=(n, 4, 5)).astype(np.float32)
        self.boxes = rng.normal(size=(n, 1, 9)).astype(np.float32)
        self.transform = None

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, i: int) -> dict:
        s = {"points": self.points[i], "gt_boxes": self.boxes[i], "gt_labels": np.zeros(1, np.int64),
             "gt_num_pts": np.ones(1, np.int64), "token": str(i)}
        return self.transform(s, i) if self.transform is not None else s


def _collate(samples: list[dict]) -> dict:
    return {"x": torch.stack([torch.from_numpy(s["points"][:, 0].copy()) for s in samples]),
            "y": torch.tensor([float(s["gt_boxes"][0, 6]) for s in samples])}


def _ft_cfg(enabled: bool = True):
    cfg = get_config("cpu", ["finetune.epochs=2", "finetune.batch_size=4", "finetune.ckpt_every=3",
                             "finetune.lr=1e-3", "finetune.device=cpu", "data.num_workers=0"])
    cfg.augment.enabled = enabled
    return cfg


def _run(tmp_path, name, enabled=True, **kw):
    from calico.finetune.train import finetune

    seed_everything(0)
    model, data = ContractModel(), AugToyData()
    summary = finetune(_ft_cfg(enabled), tmp_path / name, dataset=data, collate_fn=_collate, model=model,
                       evaluate=False, **kw)
    return model, data, summary


def test_finetune_exact_resume_with_augmentation(tmp_path):
    model, data, summary = _run(tmp_path, "a")
    assert isinstance(data.transform, Augmenter) and data.transform.epoch == 1 and summary["global_step"] == 10
    plain, _, _ = _run(tmp_path, "plain", enabled=False)
    assert any(not torch.equal(v, plain.state_dict()[k]) for k, v in model.state_dict().items())  # aug acts

    class Stop(Exception):
        pass

    fired = []

    def kill(event, trainer):
        if event == "step_start" and trainer.global_step == 7:  # mid epoch 1 (5 steps per epoch)
            fired.append(trainer.global_step)
            raise Stop

    with pytest.raises(Stop):
        _run(tmp_path, "b", hooks=[kill])
    assert fired == [7]
    resumed, _, _ = _run(tmp_path, "b", resume=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_augmenter_draws_per_epoch_and_index():
    cfg = _ft_cfg()
    aug, data = Augmenter(cfg, seed=3), AugToyData(2)
    a0 = aug(data[0], 0)["points"]
    np.testing.assert_array_equal(a0, aug(data[0], 0)["points"])
    assert not np.array_equal(a0, aug(data[0], 1)["points"])
    aug.set_epoch(1)
    assert not np.array_equal(a0, aug(data[0], 0)["points"])


def test_paste_db_from_the_fraction_only(world, tmp_path):
    from calico.data.dataset import NuScenesDataset
    from calico.finetune.train import finetune

    cfg = copy.deepcopy(world)
    cfg.model.modality = "L"
    cfg.finetune.device, cfg.finetune.epochs, cfg.data.num_workers = "cpu", 1, 0
    ds = NuScenesDataset(cfg, split=None, fraction=0.34, with_regions=False)
    scenes = {r["scene_name"] for r in ds.records}
    assert 0 < len(scenes) < 3

    class Stop(Exception):
        pass

    seen = []

    def grab(event, trainer):
        if event == "step_start":
            seen.append(trainer.dataset.transform)
            raise Stop

    def collate(samples):
        return {"x": torch.zeros(len(samples), 4), "y": torch.zeros(len(samples))}

    seed_everything(0)
    with pytest.raises(Stop):
        finetune(cfg, tmp_path / "ft", dataset=ds, collate_fn=collate, model=ContractModel(), evaluate=False,
                 hooks=[grab])
    db = seen[0].paste_db
    assert db is not None and len(db) > 0 and set(db.scenes) <= scenes
    own = {tuple(np.round(b, 4)) for r in ds.records for b in r["gt_boxes"]}
    assert all(tuple(np.round(b, 4)) in own for b in db.boxes)
