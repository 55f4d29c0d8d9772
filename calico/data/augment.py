"""Fine-tuning augmentation (BEVFusion-style): GT-database paste, a global LiDAR transform, image rotate/resize.

``augment_sample(sample, cfg, rng, paste_db)`` is a pure function on the sample dict of
``NuScenesDataset`` (docs/ARCHITECTURE.md): it returns a new dict with new arrays and never writes into the
input's arrays (the dataset hands out arrays shared with its index). Every random draw comes from ``rng``,
so the ``Augmenter`` (the dataset's ``transform`` during fine-tuning) is exactly reproducible per
(seed, epoch, sample index), which keeps the engine's exact resume.

Order: paste (before the global transform, objects keep their recorded pose), then the global transform
A = T · S · R · F_y · F_x (p' = A p) applied to points, boxes, camera extrinsics and the map masks, then per
camera the image affine M folded into the intrinsics.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from calico.config import Config
from calico.data.geometry import box_corners, points_in_boxes
from calico.data.maps import cell_centres


# ------------------------------------------------------------------------------------------ global transform
def global_matrix(flip_x: bool, flip_y: bool, rot_deg: float, scale: float, translation) -> np.ndarray:
    """4x4 A = T · S · R_z · F_y · F_x (flip x negates x, flip y negates y; rotation about +z)."""
    f = np.diag([-1.0 if flip_x else 1.0, -1.0 if flip_y else 1.0, 1.0, 1.0])
    t = np.deg2rad(rot_deg)
    r = np.eye(4)
    r[:2, :2] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    s = np.diag([scale, scale, scale, 1.0])
    tr = np.eye(4)
    tr[:3, 3] = translation
    return tr @ s @ r @ f


def draw_global_matrix(cfg: Config, rng: np.random.Generator) -> np.ndarray:
    """Draw A in a fixed order (flip x, flip y, rotation, scale, translation): same draws for every sample."""
    a = cfg.augment
    flip_x = rng.random() < a.flip_prob
    flip_y = rng.random() < a.flip_prob
    rot = rng.uniform(-a.rot_range, a.rot_range)
    scale = rng.uniform(*a.scale_range)
    trans = rng.normal(0.0, a.translate_std, size=3)
    return global_matrix(flip_x, flip_y, rot, scale, trans)


def transform_points(points: np.ndarray, a: np.ndarray) -> np.ndarray:
    """New (P, C) array: xyz by A, the other columns and the row order unchanged."""
    out = np.array(points, dtype=points.dtype, copy=True)
    if len(out):
        out[:, :3] = (points[:, :3].astype(np.float64) @ a[:3, :3].T + a[:3, 3]).astype(points.dtype)
    return out


def transform_boxes(boxes: np.ndarray, a: np.ndarray) -> np.ndarray:
    """New (B, 9) boxes ``x, y, z, w, l, h, yaw, vx, vy`` under A (a similarity without xy-z coupling).

    The yaw follows the length axis (cos yaw, sin yaw) through A's linear part, which gives flip x:
    pi - yaw, flip y: -yaw, rotation: yaw + theta; sizes scale by |det|^(1/3); velocity goes through the
    linear part (rotated, flipped and scaled, as mmdet3d does).
    """
    b = np.array(boxes, dtype=np.float64, copy=True).reshape(len(boxes), -1) if len(boxes) else np.zeros((0, 9))
    if len(b) == 0:
        return b.astype(np.float32)
    lin = a[:3, :3]
    scale = abs(np.linalg.det(lin)) ** (1.0 / 3.0)
    b[:, :3] = b[:, :3] @ lin.T + a[:3, 3]
    b[:, 3:6] *= scale
    d = np.stack([np.cos(b[:, 6]), np.sin(b[:, 6])], axis=1) @ lin[:2, :2].T
    b[:, 6] = np.arctan2(d[:, 1], d[:, 0])
    if b.shape[1] >= 9:
        b[:, 7:9] = b[:, 7:9] @ lin[:2, :2].T
    return b.astype(np.float32)


def transform_map_masks(masks: np.ndarray, a: np.ndarray, seg_range: float) -> np.ndarray:
    """(K, S, S) masks resampled by nearest neighbour: out(c) = in(inv(A) c); cells from outside read 0.

    Rows are +y and columns +x (the BEV raster contract); only the xy part of A matters (no xy-z coupling).
    """
    k, sy, sx = masks.shape  # square (S x S), as every map mask
    xy = cell_centres(sx, seg_range).reshape(sy, sx, 2)
    xs, ys = xy[..., 0], xy[..., 1]
    inv = np.linalg.inv(a)
    src_x = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 3]
    src_y = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 3]
    j = np.floor((src_x + seg_range) / (2.0 * seg_range / sx)).astype(np.int64)
    i = np.floor((src_y + seg_range) / (2.0 * seg_range / sy)).astype(np.int64)
    ok = (i >= 0) & (i < sy) & (j >= 0) & (j < sx)
    out = np.zeros_like(masks)
    out[:, ok] = masks[:, i[ok], j[ok]]
    return out


def apply_global(sample: dict[str, Any], a: np.ndarray, seg_range: float) -> dict[str, Any]:
    """A new sample with A applied to points, boxes, camera extrinsics and map masks (see module docstring)."""
    out = dict(sample)
    out["points"] = transform_points(np.asarray(sample["points"]), a)
    out["gt_boxes"] = transform_boxes(np.asarray(sample["gt_boxes"]), a)
    inv = np.linalg.inv(a)
    # A LiDAR point p becomes A p: the camera must see A p where it saw p, so the extrinsics absorb inv(A).
    for key in ("lidar2cam", "lidar2img", "cam2lidar"):
        if key in sample:
            m = np.asarray(sample[key])
            new = a @ m.astype(np.float64) if key == "cam2lidar" else m.astype(np.float64) @ inv
            out[key] = new.astype(m.dtype)
    if "map_masks" in sample:
        out["map_masks"] = transform_map_masks(np.asarray(sample["map_masks"]), a, seg_range)
    return out


# ----------------------------------------------------------------------------------------- image augmentation
def image_matrix(h: int, w: int, scale: float, rot_deg: float) -> np.ndarray:
    """3x3 M: resize by ``scale`` and rotate by ``rot_deg`` about the image centre (pixel centres at integers)."""
    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    t = np.deg2rad(rot_deg)
    lin = scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    m = np.eye(3)
    m[:2, :2] = lin
    m[:2, 2] = c - lin @ c
    return m


def augment_images(sample: dict[str, Any], cfg: Config, rng: np.random.Generator) -> dict[str, Any]:
    """Per camera an extra resize and rotation about the centre (same H x W, bilinear, zero fill); K' = M K."""
    import cv2

    a = cfg.augment
    out = dict(sample)
    images = np.asarray(sample["images"])
    n, h, w = images.shape[:3]
    intr = np.asarray(sample["intrinsics"]).astype(np.float64).copy()
    new_images = np.empty_like(images)
    for c in range(n):
        scale = rng.uniform(*a.image_scale_range)
        rot = rng.uniform(-a.image_rot_range, a.image_rot_range)
        m = image_matrix(h, w, scale, rot)
        new_images[c] = cv2.warpAffine(np.ascontiguousarray(images[c]), m[:2], (w, h), flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        intr[c] = m @ intr[c]
    out["images"] = new_images
    out["intrinsics"] = intr.astype(np.asarray(sample["intrinsics"]).dtype)
    k4 = np.tile(np.eye(4), (n, 1, 1))
    k4[:, :3, :3] = intr
    l2c = np.asarray(out["lidar2cam"])
    out["lidar2img"] = (k4 @ l2c.astype(np.float64)).astype(l2c.dtype)
    return out


# --------------------------------------------------------------------------------------------- GT database
class GTDatabase:
    """Labeled objects to paste: per box with >= ``min_points`` points, its points (all columns), box and class.

    Build it from the fine-tuning (labeled) dataset only, so no label from other scenes leaks in. Points are
    stored in one float32 array with offsets to keep memory small.
    """

    def __init__(self, points: np.ndarray, offsets: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                 scenes: list[str]):
        self.points, self.offsets, self.boxes, self.labels, self.scenes = points, offsets, boxes, labels, scenes
        by_class: dict[int, list[int]] = defaultdict(list)
        for k, lab in enumerate(labels.tolist()):
            by_class[int(lab)].append(k)
        self.by_class = {c: np.asarray(v) for c, v in sorted(by_class.items())}

    def __len__(self) -> int:
        return len(self.boxes)

    def object_points(self, k: int) -> np.ndarray:
        return self.points[self.offsets[k]:self.offsets[k + 1]]

    @classmethod
    def from_dataset(cls, dataset: Any, min_points: int = 5, max_per_class: int = 1000) -> GTDatabase:
        """Collect objects from the records of ``dataset`` (a ``NuScenesDataset``: ``records``, ``load_points``).

        At most ``max_per_class`` objects per class (in record order) bound memory and start-up on large
        fractions; a record whose classes are all full is not loaded.
        """
        pts, offsets, boxes, labels, scenes = [], [0], [], [], []
        count: dict[int, int] = defaultdict(int)
        for i, rec in enumerate(dataset.records):
            b = np.asarray(rec["gt_boxes"], np.float32).reshape(-1, 9)
            if len(b) == 0 or all(count[int(c)] >= max_per_class for c in rec["gt_labels"]):
                continue
            cloud = dataset.load_points(i)
            inside = points_in_boxes(cloud[:, :3], b)
            for k in np.flatnonzero(inside.sum(0) >= min_points):
                if count[int(rec["gt_labels"][k])] >= max_per_class:
                    continue
                count[int(rec["gt_labels"][k])] += 1
                obj = cloud[inside[:, k]]
                pts.append(obj.astype(np.float32))
                offsets.append(offsets[-1] + len(obj))
                boxes.append(b[k])
                labels.append(int(rec["gt_labels"][k]))
                scenes.append(rec["scene_name"])
        return cls(np.concatenate(pts) if pts else np.zeros((0, 5), np.float32), np.asarray(offsets, np.int64),
                   np.asarray(boxes, np.float32).reshape(-1, 9), np.asarray(labels, np.int64), scenes)


def paste_enabled(cfg: Config) -> bool:
    """Paste only for models without cameras, unless ``paste_with_camera`` (pasted points have no pixels)."""
    return bool(cfg.augment.paste and cfg.augment.paste_max > 0
                and ("C" not in cfg.model.modality or cfg.augment.paste_with_camera))


def paste_objects(sample: dict[str, Any], db: GTDatabase, max_objects: int,
                  rng: np.random.Generator) -> dict[str, Any]:
    """Append up to ``max_objects`` database objects at their recorded pose, class-balanced.

    Each draw picks a class uniformly among those in the database, then an object of it; an object whose BEV
    footprint overlaps an existing or already pasted box is rejected. Points go after the input rows
    (``regions`` get -1 for them), boxes after the existing ones.
    """
    from shapely.geometry import Polygon

    if len(db) == 0 or max_objects <= 0:
        return sample
    boxes = np.asarray(sample["gt_boxes"], np.float32).reshape(-1, 9)
    taken = [Polygon(box_corners(b)) for b in boxes]
    classes = np.asarray(list(db.by_class))
    chosen: list[int] = []
    for _ in range(max_objects):
        members = db.by_class[int(classes[rng.integers(len(classes))])]
        k = int(members[rng.integers(len(members))])
        poly = Polygon(box_corners(db.boxes[k]))
        if any(poly.intersects(t) for t in taken):
            continue
        taken.append(poly)
        chosen.append(k)
    if not chosen:
        return sample
    out = dict(sample)
    points = np.asarray(sample["points"])
    new_pts = [db.object_points(k)[:, :points.shape[1]].astype(points.dtype) for k in chosen]
    out["points"] = np.concatenate([points, *new_pts])
    out["gt_boxes"] = np.concatenate([boxes, db.boxes[chosen]]).astype(np.float32)
    out["gt_labels"] = np.concatenate([np.asarray(sample["gt_labels"], np.int64).reshape(-1), db.labels[chosen]])
    counts = np.asarray([len(p) for p in new_pts])
    old = np.asarray(sample["gt_num_pts"]).reshape(-1)
    out["gt_num_pts"] = np.concatenate([old, counts.astype(old.dtype)])
    if "regions" in sample:
        reg = np.asarray(sample["regions"])
        out["regions"] = np.concatenate([reg, np.full(int(counts.sum()), -1, dtype=reg.dtype)])
    return out


# ------------------------------------------------------------------------------------------------ entry points
def augment_sample(sample: dict[str, Any], cfg: Config, rng: np.random.Generator,
                   paste_db: GTDatabase | None = None) -> dict[str, Any]:
    """Augmented copy of ``sample``: paste (when ``paste_db`` and ``paste_enabled``), global transform, images."""
    if paste_db is not None and paste_enabled(cfg):
        sample = paste_objects(sample, paste_db, cfg.augment.paste_max, rng)
    out = apply_global(sample, draw_global_matrix(cfg, rng), cfg.model.seg_range)
    if "images" in out:
        out = augment_images(out, cfg, rng)
    return out


class Augmenter:
    """The training dataset's ``transform``: sample i of epoch e draws from ``default_rng([seed, e, i])``.

    The trainer calls ``set_epoch`` before each epoch's DataLoader is created, so worker processes (re-created
    per epoch) see the right epoch and a resumed run redraws exactly the same augmentations.
    """

    def __init__(self, cfg: Config, seed: int, paste_db: GTDatabase | None = None):
        self.cfg, self.seed, self.paste_db, self.epoch = cfg, int(seed), paste_db, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __call__(self, sample: dict[str, Any], index: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        return augment_sample(sample, self.cfg, rng, self.paste_db)
