"""PandaSet -> nuScenes format: ``calico convert pandaset --src DIR --out DIR``.

A PandaSet sequence (``lidar/NN.pkl.gz`` world-frame points of two LiDARs, ``annotations/cuboids``,
``annotations/semseg``, ``camera/<6 cameras>``, poses in the world frame) becomes one nuScenes scene:

* **LiDAR**: only the 64-beam mechanical Pandar64 (``d == 0``); the forward PandarGT (``d == 1``) is dropped,
  as nuScenes has one spinning LIDAR_TOP. Points go from the world to the Pandar64 frame with
  ``lidar/poses.json`` (x right, y forward, z up, like nuScenes' LIDAR_TOP) and are written as
  ``samples/LIDAR_TOP/*.pcd.bin`` (x, y, z, intensity, ring). PandaSet publishes no laser index: ring is -1.
  Caveat (measured on sequence 002): the pose's origin is not the optical centre. The road lies ~0.4 m below it
  (nuScenes: ~1.8 m) and returns from the car's own body reach 1.6 m above it within 3 m, which a Pandar64
  (top beam +15 deg) at the origin could not see; the cameras sit 1.5-1.8 m above it. The transform is kept as
  published (world -> pose frame); code that assumes a sensor height (a z range, ring elevations) should read
  it from the data.
* **Ego frame** = the Pandar64 pose turned to nuScenes' ego axes (x forward, y left, z up, same origin):
  LIDAR_TOP's calibrated_sensor is that fixed rotation, each LiDAR ego_pose the frame's Pandar64 pose.
* **Cameras**: PandaSet gives each camera's world pose per frame, at the camera's own timestamp (~50 ms before
  the LiDAR's). The calibrated_sensor (camera -> ego) is the mean over the frames of the camera pose relative
  to the Pandar64 pose interpolated to the camera timestamp; each camera sample_data gets its own ego_pose,
  chosen so that ego_pose x calibrated_sensor is exactly PandaSet's camera pose. Names: front -> CAM_FRONT,
  front_left/right -> CAM_FRONT_LEFT/RIGHT, back -> CAM_BACK, left -> CAM_BACK_LEFT, right -> CAM_BACK_RIGHT
  (PandaSet's side cameras look sideways; the direction lives in the calibration, not in the name).
* **Boxes**: ``CATEGORY`` maps PandaSet's labels to nuScenes categories (None: dropped). Objects in the overlap
  of both LiDARs are annotated twice (``cuboids.sensor_id`` 0 and 1, linked by ``sibling_id``): the PandarGT's
  copy is dropped when a sibling exists. Size: ``dimensions.x`` is the width, ``.y`` the length, ``.z`` the height
  (nuScenes ``wlh``). Yaw: PandaSet's yaw 0 puts the length along world +y, nuScenes' yaw 0 along +x, so
  nuScenes yaw = PandaSet yaw + pi/2. Boxes with no Pandar64 point inside (the devkit's ``points_in_box``) are
  dropped, as in the synthetic world. Velocity comes from the devkit (neighbouring annotations).
* **Per-point labels** (``calico.data.point_labels``, for ``calico pool --evaluate``): one int32 per kept point
  from ``annotations/semseg`` (when the sequence has it): the CLASSES index of the point's mapped detection class,
  -2 ground (``GROUND_CLASSES``), -4 a movable object outside the 10 classes, -1 everything else.
* **Scenes and splits**: one scene per sequence (``pandaset-<seq>``), keyframes at PandaSet's 10 Hz (no sweeps:
  the loader reaches earlier keyframes through ``prev``). ``<version>/splits.json`` has ``train`` and ``val`` by
  sequence (``--val``; default the last sequence of several). A single sequence is put in **both** (it can be
  pooled, indexed, evaluated and trained on, but train and val are then the same scene).
* There is no map expansion: map segmentation has no ground truth on PandaSet. Visibility is unknown (written as
  nuScenes bin 4, 80-100 %).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np

from calico.config import CLASSES
from calico.data.geometry import invert
from calico.data.point_labels import BACKGROUND, GROUND, OTHER_OBJECT, write_format
from calico.data.synth.labels import write_labels
from calico.data.synth.rig import quat_from_matrix
from calico.data.synth.tables import VISIBILITY, close_scene, write_map_table, write_tables, yaw_quaternion
from calico.data.synth.tokens import Tokens
from calico.errors import DataError

# PandaSet cuboid / semseg label -> nuScenes category (whose detection class calico.data.prepare keeps), or None.
CATEGORY: dict[str, str | None] = {
    "Car": "vehicle.car",
    # nuScenes puts pick-ups under vehicle.truck ("vehicles primarily designed to haul cargo including pick-ups").
    "Pickup Truck": "vehicle.truck",
    "Medium-sized Truck": "vehicle.truck",
    "Semi-truck": "vehicle.truck",  # the tractor; its trailer is a separate "Towed Object"
    "Towed Object": "vehicle.trailer",
    "Motorcycle": "vehicle.motorcycle",
    "Other Vehicle - Construction Vehicle": "vehicle.construction",
    # Dropped: could be a car, a truck or anything else (nuScenes has no catch-all detection class).
    "Other Vehicle - Uncommon": None,
    # Dropped: a three-wheeled bicycle taxi; nuScenes' bicycle is two-wheeled and has no rickshaw class.
    "Other Vehicle - Pedicab": None,
    # nuScenes' vehicle.emergency.* are not detection classes.
    "Emergency Vehicle": None,
    "Bus": "vehicle.bus.rigid",
    # Segways, skateboards, stand-up e-scooters: nuScenes' human.pedestrian.personal_mobility, no detection class.
    "Personal Mobility Device": None,
    # PandaSet's "Motorized Scooter" is the stand-up e-scooter (personal mobility in nuScenes), not a moped
    # (nuScenes' motorcycle): dropped.
    "Motorized Scooter": None,
    "Bicycle": "vehicle.bicycle",
    "Train": None,
    "Trolley": None,  # San Francisco streetcars / cable cars: rail vehicles, no nuScenes class
    "Tram / Subway": None,
    "Pedestrian": "human.pedestrian.adult",
    # The box holds the person and what they push or carry (nuScenes boxes a stroller separately): still the
    # person's box, so a pedestrian.
    "Pedestrian with Object": "human.pedestrian.adult",
    "Animals - Bird": None,
    "Animals - Other": None,
    # Traffic pylons are cones in American usage (and the tall delineator posts nuScenes also calls cones).
    "Pylons": "movable_object.trafficcone",
    "Road Barriers": "movable_object.barrier",
    "Signs": None,
    "Cones": "movable_object.trafficcone",
    # A-frame / sandwich signs: not a barrier ("re-directs traffic" barriers are the next class).
    "Construction Signs": None,
    "Temporary Construction Barriers": "movable_object.barrier",
    "Rolling Containers": None,  # wheelie bins: nuScenes' movable_object.pushable_pullable, no detection class
}
# Semseg classes that are not objects: ground (what pooling's ground removal should remove) ...
GROUND_CLASSES = {"Ground", "Road", "Lane Line Marking", "Stop Line Marking", "Other Road Marking", "Sidewalk",
                  "Driveway"}
# ... and movable things outside the detection classes (OTHER_OBJECT); the rest (Vegetation, Building, Other
# Static Object, Smoke, Exhaust, Spray or rain, Reflection, Signs) is BACKGROUND.
OTHER_OBJECT_CLASSES = {name for name, cat in CATEGORY.items() if cat is None and name != "Signs"}

CAMERAS = {"front_camera": "CAM_FRONT", "front_left_camera": "CAM_FRONT_LEFT",
           "front_right_camera": "CAM_FRONT_RIGHT", "back_camera": "CAM_BACK", "left_camera": "CAM_BACK_LEFT",
           "right_camera": "CAM_BACK_RIGHT"}
LIDAR_D = 0  # the Pandar64
# Pandar64 frame (x right, y forward, z up) -> ego frame (x forward, y left, z up)
LIDAR2EGO = np.array([[0.0, 1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
ATTRIBUTES = ("vehicle.moving", "vehicle.parked", "vehicle.stopped", "pedestrian.moving", "pedestrian.standing",
              "pedestrian.sitting_lying_down", "cycle.with_rider", "cycle.without_rider")
VISIBILITY_TOKEN = VISIBILITY[-1][0]
LIDAR_COLUMNS = ("x", "y", "z", "i", "d")
CUBOID_COLUMNS = ("uuid", "label", "yaw", "position.x", "position.y", "position.z", "dimensions.x",
                  "dimensions.y", "dimensions.z")


class _Tokens(Tokens):
    def new(self, kind: str) -> str:
        import hashlib

        n = self.counts[kind]
        self.counts[kind] += 1
        return hashlib.md5(f"calico-pandaset/{self.seed}/{kind}/{n}".encode()).hexdigest()


def _pandas():
    try:
        import pandas
    except ModuleNotFoundError as exc:
        from calico.errors import CalicoError

        raise CalicoError("reading PandaSet needs pandas: pip install 'calico-bev[convert]'") from exc
    return pandas


def _read_pickle(path: Path, columns=()):
    pd = _pandas()
    if not path.is_file():
        raise DataError("file does not exist", str(path))
    try:
        df = pd.read_pickle(path)
    except Exception as exc:  # noqa: BLE001 - pickle/gzip/pandas raise many kinds; name the file
        raise DataError(f"cannot read the pickled DataFrame ({type(exc).__name__}: {exc})", str(path)) from exc
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}", str(path))
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {missing} (has {list(df.columns)})", str(path))
    return df


def _read_json(path: Path):
    if not path.is_file():
        raise DataError("file does not exist", str(path))
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read JSON ({exc})", str(path)) from exc


def _pose(rec, path: Path, k: int) -> np.ndarray:
    """4x4 of a PandaSet pose record ``{position: {x,y,z}, heading: {w,x,y,z}}``."""
    from pyquaternion import Quaternion

    try:
        h, p = rec["heading"], rec["position"]
        m = np.eye(4)
        m[:3, :3] = Quaternion(h["w"], h["x"], h["y"], h["z"]).normalised.rotation_matrix
        m[:3, 3] = [p["x"], p["y"], p["z"]]
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise DataError(f"pose {k} is not {{position: {{x, y, z}}, heading: {{w, x, y, z}}}} ({exc!r})",
                        str(path)) from exc
    return m


def _frame_list(items, path: Path, n: int, what: str) -> list:
    if not isinstance(items, list) or len(items) < n:
        raise DataError(f"expected a list of at least {n} {what} (one per frame), got "
                        f"{len(items) if isinstance(items, list) else type(items).__name__}", str(path))
    return items


def _interp_pose(poses: list[np.ndarray], times: np.ndarray, t: float) -> np.ndarray:
    """Pose at time ``t``: linear in translation, slerp in rotation, between the two nearest frames."""
    from pyquaternion import Quaternion

    j = int(np.clip(np.searchsorted(times, t) - 1, 0, len(times) - 2))
    a = float(np.clip((t - times[j]) / max(times[j + 1] - times[j], 1e-9), -1.0, 2.0))
    q0, q1 = Quaternion(matrix=poses[j][:3, :3], atol=1e-6), Quaternion(matrix=poses[j + 1][:3, :3], atol=1e-6)
    m = np.eye(4)
    m[:3, :3] = Quaternion.slerp(q0, q1, a).rotation_matrix
    m[:3, 3] = (1 - a) * poses[j][:3, 3] + a * poses[j + 1][:3, 3]
    return m


def _mean_pose(ms: list[np.ndarray]) -> np.ndarray:
    u, _, vt = np.linalg.svd(np.mean([m[:3, :3] for m in ms], axis=0))
    out = np.eye(4)
    out[:3, :3] = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
    out[:3, 3] = np.mean([m[:3, 3] for m in ms], axis=0)
    return out


def scene_name(seq: Path) -> str:
    """``pandaset-<NNN>`` from a sequence folder named ``NNN`` (or ``...-NNN``)."""
    m = re.search(r"(\d+)$", seq.name)
    return f"pandaset-{m.group(1) if m else seq.name}"


def find_sequences(src: Path) -> list[Path]:
    """``src`` itself when it is a sequence (has lidar/), else its sub-folders that are."""
    if not src.is_dir():
        raise DataError("PandaSet folder does not exist", str(src))
    if (src / "lidar").is_dir():
        return [src]
    seqs = sorted(p for p in src.iterdir() if (p / "lidar").is_dir())
    if not seqs:
        raise DataError("neither a PandaSet sequence (no lidar/ folder) nor a folder of sequences", str(src))
    return seqs


def sequence_frames(seq: Path, frames: list[int] | None = None) -> list[int]:
    present = sorted(int(p.name.split(".")[0]) for p in (seq / "lidar").glob("*.pkl.gz")
                     if p.name.split(".")[0].isdigit())
    if not present:
        raise DataError("no lidar/NN.pkl.gz frames", str(seq / "lidar"))
    if frames is None:
        return present
    missing = sorted(set(frames) - set(present))
    if missing:
        raise DataError(f"frame(s) {missing} not present (present: {present})", str(seq / "lidar"))
    return sorted(set(frames))


def point_label_table(classes: dict) -> dict[int, int]:
    """semseg class id -> per-point label (CLASSES index, GROUND, OTHER_OBJECT or BACKGROUND)."""
    from nuscenes.eval.detection.utils import category_to_detection_name

    out = {}
    for cid, name in classes.items():
        cat = CATEGORY.get(name)
        det = category_to_detection_name(cat) if cat else None
        if det is not None:
            out[int(cid)] = CLASSES.index(det)
        elif name in GROUND_CLASSES:
            out[int(cid)] = GROUND
        elif name in OTHER_OBJECT_CLASSES:
            out[int(cid)] = OTHER_OBJECT
        else:
            out[int(cid)] = BACKGROUND
    return out


def _attribute(row, det: str) -> str | None:
    def get(col):
        v = row.get(col)
        return v if isinstance(v, str) else ""

    if det in ("barrier", "traffic_cone"):
        return None
    if det in ("bicycle", "motorcycle"):
        rider = get("attributes.rider_status")
        return "cycle.with_rider" if rider == "With Rider" else "cycle.without_rider"
    if det == "pedestrian":
        beh = get("attributes.pedestrian_behavior")
        if beh in ("Sitting", "Lying"):
            return "pedestrian.sitting_lying_down"
        return "pedestrian.moving" if beh == "Walking" else "pedestrian.standing"
    motion = get("attributes.object_motion")
    if motion in ("Moving", "Parked", "Stopped"):
        return f"vehicle.{motion.lower()}"
    return "vehicle.parked" if row.get("stationary") is True else "vehicle.moving"


def _pandargt_copy(row: dict, rows: list[dict], radius: float = 1.0) -> bool:
    """A PandarGT (``cuboids.sensor_id`` 1) cuboid of an object the Pandar64 (sensor 0) also boxes: its
    ``sibling_id`` names that cuboid, or (ids are sometimes truncated in the files) one lies within ``radius`` m.
    The two copies can disagree on the label (a Bicycle and its Motorcycle sibling in sequence 002)."""
    if int(row.get("cuboids.sensor_id", -1)) != 1:
        return False
    sib = row.get("cuboids.sibling_id")
    for other in rows:
        if int(other.get("cuboids.sensor_id", -1)) != 0:
            continue
        if other["uuid"] == sib or np.hypot(other["position.x"] - row["position.x"],
                                            other["position.y"] - row["position.y"]) < radius:
            return True
    return False


def _static_tables(tok: _Tokens) -> dict[str, list]:
    from nuscenes.eval.detection.utils import category_to_detection_name

    names = ["LIDAR_TOP", *CAMERAS.values()]
    cats = sorted({c for c in CATEGORY.values() if c})
    return {
        "sensor": [{"token": tok.new("sensor"), "channel": n, "modality": "lidar" if n.startswith("LIDAR") else "camera"}
                   for n in names],
        "category": [{"token": tok.new("category"), "name": c, "index": i,
                      "description": f"PandaSet {', '.join(k for k, v in CATEGORY.items() if v == c)} "
                                     f"(detection class {category_to_detection_name(c)})"}
                     for i, c in enumerate(cats)],
        "attribute": [{"token": tok.new("attribute"), "name": a, "description": a} for a in ATTRIBUTES],
        "visibility": [{"token": t, "level": level, "description": f"visibility of whole object is {level[1:]}%"}
                       for t, level, _ in VISIBILITY],
    }


def convert(src: str | Path, out: str | Path, version: str = "v1.0-pandaset", frames: list[int] | None = None,
            val: list[str] | None = None, link_images: bool = False) -> dict:
    """Write the PandaSet sequence(s) under ``src`` as a nuScenes-format dataroot ``out``; return a summary."""
    _pandas()
    t0 = time.perf_counter()
    src, root = Path(src), Path(out)
    seqs = find_sequences(src)
    names = [s.name for s in seqs]
    if val is not None and (bad := sorted(set(val) - set(names))):
        raise DataError(f"--val sequence(s) {bad} not found (sequences: {names})", str(src))
    tok = _Tokens(",".join(names))
    tables = _static_tables(tok)
    for name in ("calibrated_sensor", "ego_pose", "log", "scene", "sample", "sample_data", "sample_annotation",
                 "instance"):
        tables[name] = []
    stats = {"samples": 0, "boxes": Counter(), "dropped": Counter(), "points": [], "labelled": 0,
             "camera_calib_spread_m": {}}
    for seq in seqs:
        _convert_sequence(seq, root, tok, tables, frames, link_images, stats)
    write_map_table(root, tok, tables)
    write_tables(root / version, tables)
    scene_names = [scene_name(s) for s in seqs]
    if val is None:
        val = names[-1:]
    splits = {"train": [scene_name(s) for s in seqs if s.name not in val or len(seqs) == 1],
              "val": [scene_name(s) for s in seqs if s.name in val]}
    (root / version / "splits.json").write_text(json.dumps(splits, indent=1))
    if stats["labelled"]:
        write_format(root, f"PandaSet semseg via calico convert pandaset ({', '.join(names)})")
    return {"dataroot": str(root), "version": version, "scenes": scene_names, "splits": splits,
            "samples": stats["samples"], "points_per_frame": float(np.mean(stats["points"])),
            "labelled_frames": stats["labelled"], "boxes_per_class": dict(sorted(stats["boxes"].items())),
            "dropped_labels": dict(sorted(stats["dropped"].items())),
            "camera_calib_spread_m": stats["camera_calib_spread_m"], "seconds": time.perf_counter() - t0}


def _convert_sequence(seq: Path, root: Path, tok: _Tokens, tables: dict, frames, link_images: bool,
                      stats: dict) -> None:
    from PIL import Image
    from scipy.spatial import cKDTree

    from calico.data.synth.generate import count_points_in_box

    ks = sequence_frames(seq, frames)
    n_need = max(ks) + 1
    pose_file, ts_file = seq / "lidar" / "poses.json", seq / "lidar" / "timestamps.json"
    lidar_poses = [_pose(p, pose_file, i) for i, p in enumerate(_frame_list(_read_json(pose_file), pose_file,
                                                                             n_need, "poses"))]
    lidar_ts = np.asarray(_frame_list(_read_json(ts_file), ts_file, n_need, "timestamps"), dtype=np.float64)
    semseg_dir = seq / "annotations" / "semseg"
    label_of = None
    if semseg_dir.is_dir():
        classes = _read_json(semseg_dir / "classes.json")
        label_of = point_label_table(classes)
    # cameras: intrinsics, per-frame poses and timestamps, one calibration per sequence
    cams = {}
    for pname, cname in CAMERAS.items():
        d = seq / "camera" / pname
        intr = _read_json(d / "intrinsics.json")
        try:
            k_mat = [[float(intr["fx"]), 0.0, float(intr["cx"])], [0.0, float(intr["fy"]), float(intr["cy"])],
                     [0.0, 0.0, 1.0]]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"intrinsics need fx, fy, cx, cy ({exc!r})", str(d / "intrinsics.json")) from exc
        poses = [_pose(p, d / "poses.json", i) for i, p in
                 enumerate(_frame_list(_read_json(d / "poses.json"), d / "poses.json", n_need, "poses"))]
        ts = np.asarray(_frame_list(_read_json(d / "timestamps.json"), d / "timestamps.json", n_need, "timestamps"),
                        dtype=np.float64)
        rel = [invert(_interp_pose(lidar_poses, lidar_ts, ts[k]) @ invert(LIDAR2EGO)) @ poses[k] for k in ks]
        cam2ego = _mean_pose(rel)
        stats["camera_calib_spread_m"][cname] = float(max(np.linalg.norm(r[:3, 3] - cam2ego[:3, 3]) for r in rel))
        cams[pname] = {"name": cname, "K": k_mat, "poses": poses, "ts": ts, "cam2ego": cam2ego, "dir": d}
    # log, scene, calibrated sensors
    log_token, scene_token = tok.new("log"), tok.new("scene")
    tables["log"].append({"token": log_token, "logfile": scene_name(seq), "vehicle": "pandaset",
                          "date_captured": time.strftime("%Y-%m-%d", time.gmtime(lidar_ts[ks[0]])),
                          "location": "pandaset"})
    sensor_tok = {r["channel"]: r["token"] for r in tables["sensor"]}
    cat_tok = {r["name"]: r["token"] for r in tables["category"]}
    attr_tok = {r["name"]: r["token"] for r in tables["attribute"]}
    cs = {}
    for cname, m, intr in [("LIDAR_TOP", LIDAR2EGO, [])] + [(c["name"], c["cam2ego"], c["K"]) for c in cams.values()]:
        cs[cname] = {"token": tok.new("calibrated_sensor"), "sensor_token": sensor_tok[cname],
                     "translation": [float(v) for v in m[:3, 3]], "rotation": quat_from_matrix(m[:3, :3]),
                     "camera_intrinsic": intr}
        tables["calibrated_sensor"].append(cs[cname])
    samples, chains, instances, inst_cat = [], {c: [] for c in cs}, {}, {}
    for k in ks:
        sample = {"token": tok.new("sample"), "timestamp": int(round(lidar_ts[k] * 1e6)), "scene_token": scene_token}
        samples.append(sample)
        # LiDAR
        lidar_file = seq / "lidar" / f"{k:02d}.pkl.gz"
        df = _read_pickle(lidar_file, LIDAR_COLUMNS)
        keep = df["d"].to_numpy() == LIDAR_D
        if not keep.any():
            raise DataError(f"no Pandar64 points (d == {LIDAR_D})", str(lidar_file))
        world = df[["x", "y", "z"]].to_numpy(np.float64)[keep]
        s_from_w = invert(lidar_poses[k])
        xyz = world @ s_from_w[:3, :3].T + s_from_w[:3, 3]
        pts = np.column_stack([xyz, df["i"].to_numpy(np.float64)[keep], np.full(len(xyz), -1.0)]).astype(np.float32)
        if not np.isfinite(pts).all():
            raise DataError(f"{int((~np.isfinite(pts).all(1)).sum())} Pandar64 points are NaN/Inf", str(lidar_file))
        fname = f"samples/LIDAR_TOP/{scene_name(seq)}__LIDAR_TOP__{sample['timestamp']}.pcd.bin"
        (root / fname).parent.mkdir(parents=True, exist_ok=True)
        pts.tofile(root / fname)
        stats["points"].append(len(pts))
        ego2global = lidar_poses[k] @ invert(LIDAR2EGO)
        lidar_sd = _sample_data(tok, tables, sample, cs["LIDAR_TOP"]["token"], sample["timestamp"], fname, ego2global)
        chains["LIDAR_TOP"].append(lidar_sd)
        lidar_ego = tables["ego_pose"][-1]
        if label_of is not None:
            seg_file = semseg_dir / f"{k:02d}.pkl.gz"
            seg = _read_pickle(seg_file, ("class",))
            if len(seg) != len(df):
                raise DataError(f"{len(seg)} semseg rows for {len(df)} LiDAR points in {lidar_file.name}",
                                str(seg_file))
            cls = seg["class"].to_numpy()[keep]
            unknown = sorted(set(np.unique(cls).tolist()) - set(label_of))
            if unknown:
                raise DataError(f"class id(s) {unknown} not in classes.json", str(seg_file))
            lut = np.full(max(label_of) + 1, BACKGROUND, np.int32)
            for cid, v in label_of.items():
                lut[cid] = v
            write_labels(root, fname, lut[cls.astype(np.int64)])
            stats["labelled"] += 1
        # cameras
        for c in cams.values():
            ts = int(round(c["ts"][k] * 1e6))
            img = c["dir"] / f"{k:02d}.jpg"
            try:
                with Image.open(img) as im:
                    width, height = im.size
            except (OSError, ValueError) as exc:
                raise DataError(f"cannot read the image ({exc})", str(img)) from exc
            cfname = f"samples/{c['name']}/{scene_name(seq)}__{c['name']}__{ts}.jpg"
            dest = root / cfname
            dest.parent.mkdir(parents=True, exist_ok=True)
            if link_images:
                dest.unlink(missing_ok=True)
                dest.symlink_to(img.resolve())
            else:
                shutil.copyfile(img, dest)
            sd = _sample_data(tok, tables, sample, cs[c["name"]]["token"], ts, cfname,
                              c["poses"][k] @ invert(c["cam2ego"]))
            sd.update(width=width, height=height)
            chains[c["name"]].append(sd)
        # boxes
        cub_file = seq / "annotations" / "cuboids" / f"{k:02d}.pkl.gz"
        cub = _read_pickle(cub_file, CUBOID_COLUMNS)
        tree = cKDTree(pts[:, :2])
        rows = cub.to_dict("records")
        for row in rows:
            if _pandargt_copy(row, rows):
                stats["dropped"]["PandarGT copy"] += 1
                continue
            if row["label"] not in CATEGORY:
                raise DataError(f"unknown cuboid label {row['label']!r} (add it to calico.data.convert.pandaset."
                                "CATEGORY)", str(cub_file))
            cat = CATEGORY[row["label"]]
            if cat is None:
                stats["dropped"][row["label"]] += 1
                continue
            centre = [float(row["position.x"]), float(row["position.y"]), float(row["position.z"])]
            size = [float(row["dimensions.x"]), float(row["dimensions.y"]), float(row["dimensions.z"])]
            if not (np.isfinite(centre).all() and np.isfinite(size).all() and min(size) > 0):
                raise DataError(f"cuboid {row['uuid']} has a bad position or size", str(cub_file))
            rotation = yaw_quaternion(float(row["yaw"]) + np.pi / 2)
            n_pts = count_points_in_box(pts, centre, size, rotation, lidar_ego, cs["LIDAR_TOP"], tree)
            if n_pts == 0:
                continue
            from nuscenes.eval.detection.utils import category_to_detection_name

            det = category_to_detection_name(cat)
            attr = _attribute(row, det)
            instances.setdefault(row["uuid"], []).append({
                "token": tok.new("sample_annotation"), "sample_token": sample["token"], "instance_token": "",
                "visibility_token": VISIBILITY_TOKEN, "attribute_tokens": [attr_tok[attr]] if attr else [],
                "translation": centre, "size": size, "rotation": rotation, "num_lidar_pts": n_pts,
                "num_radar_pts": 0})
            inst_cat.setdefault(row["uuid"], cat)
            stats["boxes"][det] += 1
    stats["samples"] += len(samples)
    close_scene(tables, tok, samples, chains, instances, {u: cat_tok[inst_cat[u]] for u in instances},
                {"token": scene_token, "log_token": log_token, "name": scene_name(seq),
                 "description": f"PandaSet sequence {seq.name} (Pandar64, frames {ks[0]}-{ks[-1]})"})


def _sample_data(tok, tables, sample, cs_token, ts, fname, ego2global) -> dict:
    token = tok.new("sample_data")
    tables["ego_pose"].append({"token": token, "timestamp": ts, "rotation": quat_from_matrix(ego2global[:3, :3]),
                               "translation": [float(v) for v in ego2global[:3, 3]]})
    sd = {"token": token, "sample_token": sample["token"], "ego_pose_token": token, "calibrated_sensor_token": cs_token,
          "timestamp": ts, "fileformat": "pcd" if fname.endswith(".bin") else "jpg", "is_key_frame": True,
          "height": 0, "width": 0, "filename": fname}
    tables["sample_data"].append(sd)
    return sd


def format_summary(s: dict) -> str:
    lines = [f"wrote {s['dataroot']} (version {s['version']}): scenes {', '.join(s['scenes'])}, "
             f"{s['samples']} keyframes, {s['points_per_frame']:.0f} Pandar64 points/frame, "
             f"per-point labels for {s['labelled_frames']} frames",
             f"  splits: train {s['splits']['train']}, val {s['splits']['val']}",
             "  boxes per class (>= 1 Pandar64 point):"]
    lines += [f"    {k:<22s}{v:>6d}" for k, v in s["boxes_per_class"].items()]
    if s["dropped_labels"]:
        lines.append("  cuboids dropped (PandarGT copies; labels with no nuScenes detection class): "
                     + ", ".join(f"{k} {v}" for k, v in s["dropped_labels"].items()))
    lines.append("  camera calibration: largest per-frame deviation from the fitted camera->ego translation "
                 + ", ".join(f"{k} {v * 100:.1f} cm" for k, v in s["camera_calib_spread_m"].items()))
    lines.append(f"  time {s['seconds']:.1f} s")
    return "\n".join(lines)
