"""``generate``: write a synthetic world as a nuScenes-format dataroot (tables, LiDAR, images, map, splits)."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image
from pyquaternion import Quaternion
from scipy.spatial import cKDTree
from tqdm import tqdm

from . import camera, lidar
from .labels import write_labels
from .layout import MARGIN, build_scene
from .mapgen import MAP_NAME, MapBuilder
from .rig import CAMERA_NAMES, build_rig, quat_from_matrix
from .tables import (
    attribute_name,
    close_scene,
    static_tables,
    visibility_token,
    write_map_table,
    write_tables,
    yaw_quaternion,
)
from .tokens import Tokens
from .world import SceneWorld

KEYFRAME_US, SWEEP_US = 500_000, 50_000  # 2 Hz keyframes, 20 Hz LiDAR
MAX_SWEEPS = KEYFRAME_US // SWEEP_US - 1  # sweeps between two keyframes
T0_US = 1_600_000_000_000_000
SCENE_GAP_US = 3_600_000_000  # scenes an hour apart
MAX_EGO_SPEED = 9.0


def _check_args(scenes, samples_per_scene, sweeps, image_size, unlabeled_scenes=0) -> None:
    if scenes < 1 or samples_per_scene < 1:
        raise ValueError(f"need at least one scene and one sample per scene (got {scenes}, {samples_per_scene})")
    if unlabeled_scenes < 0:
        raise ValueError(f"unlabeled_scenes must be >= 0, got {unlabeled_scenes}")
    if not 0 <= sweeps <= MAX_SWEEPS:
        raise ValueError(f"sweeps must be in [0, {MAX_SWEEPS}] (the 20 Hz sweeps between 2 Hz keyframes), got {sweeps}")
    if len(image_size) != 2 or min(image_size) < 8:
        raise ValueError(f"image_size must be (H, W) with both >= 8, got {image_size}")


def generate(out_dir: str | Path, scenes: int = 4, samples_per_scene: int = 10, sweeps: int = 3, seed: int = 0,
             image_size: tuple[int, int] = (225, 400), version: str = "v1.0-synth", progress: bool = True,
             labels: bool = False, work_zones: bool = False, unlabeled_scenes: int = 0,
             unlabeled_image_size: tuple[int, int] = (36, 64)) -> dict:
    """Write ``scenes`` procedural scenes of ``samples_per_scene`` keyframes into ``out_dir``.

    ``unlabeled_scenes`` more scenes form the split ``unlabeled`` (neither train nor val): a cheap pre-training
    pool (``calico pretrain --split train+unlabeled``), rendered at ``unlabeled_image_size`` because camera
    rendering is most of the generation time and LiDAR-only stages load no images. Their boxes are written
    like any scene's; nothing in the project fine-tunes or evaluates on that split. Camera stages (RAD) should
    pre-train on ``train`` only, or on unlabeled scenes generated at the full image size.

    Returns a summary: scenes, samples, boxes per class, points per keyframe (and within 1 m), seconds.
    The output is a pure function of the arguments (same bytes for the same arguments). ``labels=True`` also
    writes what each LiDAR ray hit (``calico.data.synth.labels``), e.g. to score ground removal.
    ``work_zones=True`` adds barrier rows and cone tapers (``layout._work_zones``; off: the default world).
    """
    _check_args(scenes, samples_per_scene, sweeps, image_size, unlabeled_scenes)
    start = time.perf_counter()
    root = Path(out_dir)
    rig = build_rig(tuple(image_size))
    small_rig = build_rig(tuple(unlabeled_image_size)) if unlabeled_scenes else rig
    tok = Tokens(seed)
    tables: dict[str, list] = static_tables(tok, list(rig))
    for name in ("calibrated_sensor", "ego_pose", "log", "scene", "sample", "sample_data", "sample_annotation",
                 "instance"):
        tables[name] = []
    sensor_tok = {r["channel"]: r["token"] for r in tables["sensor"]}
    cat_tok = {r["name"]: r["token"] for r in tables["category"]}
    attr_tok = {r["name"]: r["token"] for r in tables["attribute"]}
    maps = MapBuilder(tok)
    stats = {"points": [], "near": [], "boxes": Counter(), "seconds_keyframe": []}
    total = (scenes + unlabeled_scenes) * samples_per_scene
    bar = tqdm(total=total, desc="calico synth", unit="keyframe", disable=not progress)
    for si in range(scenes + unlabeled_scenes):  # unlabeled scenes last: the labeled ones do not change
        world, rng = scene_world(seed, si, samples_per_scene, work_zones)
        maps.add_scene(world)
        _write_scene(root, version, si, seed, world, rig if si < scenes else small_rig, tok, tables, sensor_tok,
                     cat_tok, attr_tok, samples_per_scene, sweeps, rng, stats, bar, labels)
    bar.close()
    maps.write(root)
    write_map_table(root, tok, tables)
    names = [s["name"] for s in tables["scene"]][:scenes]
    n_val = max(1, scenes // 4) if scenes > 1 else 0
    splits = {"train": names[: len(names) - n_val], "val": names[len(names) - n_val:]}
    if unlabeled_scenes:
        splits["unlabeled"] = [s["name"] for s in tables["scene"]][scenes:]
    write_tables(root / version, tables)
    (root / version / "splits.json").write_text(json.dumps(splits, indent=1))
    seconds = time.perf_counter() - start
    return {
        "dataroot": str(root), "version": version, "map_name": MAP_NAME, "scenes": scenes + unlabeled_scenes,
        "samples": len(tables["sample"]), "sweeps_per_keyframe": sweeps, "splits": {k: len(v) for k, v in splits.items()},
        "boxes_per_class": dict(sorted(stats["boxes"].items())),
        "points_per_keyframe": float(np.mean(stats["points"])), "points_within_1m": float(np.mean(stats["near"])),
        "seconds": seconds, "seconds_per_keyframe": float(np.mean(stats["seconds_keyframe"])),
    }


def scene_world(seed: int, index: int, samples_per_scene: int,
                work_zones: bool = False) -> tuple[SceneWorld, np.random.Generator]:
    """The world of scene ``index`` (placed in the global map) and the generator its sensors continue with."""
    rng = np.random.default_rng([seed, index])
    duration = (samples_per_scene - 1) * KEYFRAME_US / 1e6
    world = build_scene(rng, duration, work_zones)
    world.rotation = float(rng.uniform(-np.pi, np.pi))
    # Scenes sit on a grid in the one map, spaced so that no two scenes' worlds overlap.
    spacing = 2 * float(np.hypot(MAX_EGO_SPEED * duration + MARGIN, MARGIN)) + 50.0
    world.offset = (spacing / 2 + spacing * (index % 4), spacing / 2 + spacing * (index // 4))
    return world, rng


def scene_time(timestamp_us: int, scene_index: int) -> float:
    """Seconds since the scene's first keyframe for a timestamp written by ``generate``."""
    return (timestamp_us - T0_US - scene_index * SCENE_GAP_US) / 1e6


def _global_pose(world: SceneWorld, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ego (rot, trans) in the scene frame and in the global frame at time ``t``."""
    rot, trans = world.ego_pose(t)
    g_rot, g_trans = world.to_global()
    return rot, trans, g_rot @ rot, g_rot @ trans + g_trans


def _write_scene(root, version, si, seed, world, rig, tok, tables, sensor_tok, cat_tok, attr_tok,
                 n_samples, n_sweeps, rng, stats, bar, labels=False) -> None:
    log_name = f"synth-s{seed}-{si:04d}"
    log_token, scene_token = tok.new("log"), tok.new("scene")
    tables["log"].append({"token": log_token, "logfile": log_name, "vehicle": "synth", "date_captured": "2020-09-13",
                          "location": MAP_NAME})
    cs_tok = {}
    for name, s in rig.items():
        cs_tok[name] = tok.new("calibrated_sensor")
        tables["calibrated_sensor"].append({
            "token": cs_tok[name], "sensor_token": sensor_tok[name], "translation": [float(v) for v in s.translation],
            "rotation": quat_from_matrix(s.rotation),
            "camera_intrinsic": [] if s.intrinsic is None else [[float(v) for v in row] for row in s.intrinsic]})
    cs_rec = {r["token"]: r for r in tables["calibrated_sensor"][-len(rig):]}
    g_rot, g_trans = world.to_global()
    t_base = T0_US + si * SCENE_GAP_US
    samples, chains = [], {name: [] for name in rig}
    instances: dict[int, list[dict]] = {}
    for k in range(n_samples):
        tic = time.perf_counter()
        ts_key = t_base + k * KEYFRAME_US
        sample = {"token": tok.new("sample"), "timestamp": ts_key, "scene_token": scene_token}
        samples.append(sample)
        for j in range(n_sweeps, -1, -1):  # sweeps first (oldest first), then the keyframe
            ts = ts_key - j * SWEEP_US
            t = (ts - t_base) / 1e6
            rot, trans, grot, gtrans = _global_pose(world, t)
            pts, ids = lidar.scan(world, t, rot, trans, rig["LIDAR_TOP"], rng)
            folder = "samples" if j == 0 else "sweeps"
            fname = f"{folder}/LIDAR_TOP/{log_name}__LIDAR_TOP__{ts}.pcd.bin"
            (root / fname).parent.mkdir(parents=True, exist_ok=True)
            pts.tofile(root / fname)
            if labels:
                write_labels(root, fname, ids)
            sd = _sample_data(tok, tables, sample["token"], cs_tok["LIDAR_TOP"], ts, fname, j == 0, grot, gtrans)
            chains["LIDAR_TOP"].append(sd)
            if j == 0:
                key_pts, key_ids, key_ego = pts, ids, tables["ego_pose"][-1]
                stats["points"].append(len(pts))
                stats["near"].append(int((np.linalg.norm(pts[:, :3], axis=1) < 1.0).sum()))
        # Cameras at the keyframe instant (the LiDAR's timestamp), each with its own ego_pose record.
        t = k * KEYFRAME_US / 1e6
        rot, trans, grot, gtrans = _global_pose(world, t)
        visible, unoccluded = Counter(), Counter()
        for name in CAMERA_NAMES:
            img, idbuf, unocc = camera.render(world, t, rot, trans, rig[name])
            fname = f"samples/{name}/{log_name}__{name}__{ts_key}.jpg"
            (root / fname).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / fname, quality=92)
            ids, counts = np.unique(idbuf[idbuf >= 0], return_counts=True)
            visible.update(dict(zip(ids.tolist(), counts.tolist())))
            unoccluded.update(unocc)
            sd = _sample_data(tok, tables, sample["token"], cs_tok[name], ts_key, fname, True, grot, gtrans)
            sd.update(width=rig[name].width, height=rig[name].height)
            chains[name].append(sd)
        _annotate(world, t, sample["token"], key_pts, key_ids, key_ego, cs_rec[cs_tok["LIDAR_TOP"]], g_rot,
                  g_trans, visible, unoccluded, tok, tables, cat_tok, attr_tok, instances, stats)
        stats["seconds_keyframe"].append(time.perf_counter() - tic)
        bar.update(1)
    close_scene(tables, tok, samples, chains, instances, {oi: cat_tok[_category(world, oi)] for oi in instances},
                {"token": scene_token, "log_token": log_token, "name": f"scene-{si + 1:04d}",
                 "description": f"synthetic scene {si} (seed {seed})"})


def _category(world: SceneWorld, oi: int) -> str:
    from .objects import CATEGORY

    return CATEGORY[world.objects[oi].name]


def _sample_data(tok, tables, sample_token, cs_token, ts, fname, key, grot, gtrans) -> dict:
    token = tok.new("sample_data")
    # nuScenes gives every sample_data its own ego_pose with the same token.
    tables["ego_pose"].append({"token": token, "timestamp": ts, "rotation": quat_from_matrix(grot),
                               "translation": [float(v) for v in gtrans]})
    sd = {"token": token, "sample_token": sample_token, "ego_pose_token": token, "calibrated_sensor_token": cs_token,
          "timestamp": ts, "fileformat": "pcd" if fname.endswith(".bin") else "jpg", "is_key_frame": key,
          "height": 0, "width": 0, "filename": fname}
    tables["sample_data"].append(sd)
    return sd


def count_points_in_box(points: np.ndarray, center, wlh, rotation, ego: dict, cs: dict, tree=None) -> int:
    """The devkit's ``points_in_box`` count for a global box, transformed as ``NuScenes.get_sample_data`` does."""
    from nuscenes.utils.data_classes import Box
    from nuscenes.utils.geometry_utils import points_in_box

    box = Box(center, wlh, Quaternion(rotation))
    box.translate(-np.array(ego["translation"]))
    box.rotate(Quaternion(ego["rotation"]).inverse)
    box.translate(-np.array(cs["translation"]))
    box.rotate(Quaternion(cs["rotation"]).inverse)
    radius = 0.5 * float(np.linalg.norm(wlh)) + 0.05
    if tree is not None:  # only the points near the box can be inside it; same count, much faster
        idx = tree.query_ball_point(box.center[:2], radius)
        if not idx:
            return 0
        sub = points[np.sort(idx), :3].T
    else:
        sub = points[:, :3].T
    return int(points_in_box(box, sub).sum())


def _annotate(world, t, sample_token, pts, ids, ego, cs, g_rot, g_trans, visible, unoccluded, tok, tables, cat_tok,
              attr_tok, instances, stats) -> None:
    """Boxes of all labelled objects with at least one LiDAR point inside (devkit ``points_in_box``)."""
    poses = world.object_poses(t)
    ego_xy = np.array(ego["translation"][:2])
    tree = cKDTree(pts[:, :2])
    for oi, obj in enumerate(world.objects):
        if obj.name is None:
            continue
        w, l, h = obj.wlh  # noqa: E741
        centre = g_rot @ np.array([poses[oi, 0], poses[oi, 1], poses[oi, 2] + h / 2]) + g_trans
        if np.linalg.norm(centre[:2] - ego_xy) > 80.0:
            continue
        yaw = float(np.angle(np.exp(1j * (obj.yaw + world.rotation))))
        translation = [float(v) for v in centre]
        rotation = yaw_quaternion(yaw)
        n_pts = count_points_in_box(pts, translation, [w, l, h], rotation, ego, cs, tree)
        if n_pts == 0:
            continue
        speed = float(np.linalg.norm(obj.vel))
        attr = attribute_name(obj.name, speed, obj.rider, obj.parked)
        frac = visible.get(oi, 0) / unoccluded[oi] if unoccluded.get(oi, 0) > 0 else 0.0
        instances.setdefault(oi, []).append({
            "token": tok.new("sample_annotation"), "sample_token": sample_token, "instance_token": "",
            "visibility_token": visibility_token(frac), "attribute_tokens": [attr_tok[attr]] if attr else [],
            "translation": translation, "size": [float(w), float(l), float(h)], "rotation": rotation,
            "num_lidar_pts": n_pts, "num_radar_pts": 0})
        stats["boxes"][obj.name] += 1


def true_velocity(world: SceneWorld, oi: int) -> np.ndarray:
    """Simulated velocity (3,) of object ``oi`` in the global frame (z from the ground slope)."""
    obj = world.objects[oi]
    g_rot, _ = world.to_global()
    v = np.array([obj.vel[0], obj.vel[1], world.slope[0] * obj.vel[0] + world.slope[1] * obj.vel[1]])
    return g_rot @ v
