"""``calico prepare``: read a nuScenes-format dataset once through nuscenes-devkit and write a compact index.

Training never reloads the devkit tables (minutes and GBs on trainval): every sample's file paths,
calibration chain and ground-truth boxes (in the keyframe LiDAR frame) go into ``<cache>/index.json`` with its
arrays in ``<cache>/index.npz`` (formats that cannot carry code: a dataset folder may be shared and writable
by others, so nothing derived from it is ever unpickled).
Every indexed file is checked; bad files are reported by name and either fail the run (default) or
drop their samples (``--skip-bad``). Missing sweep files are tolerated (keyframes-only copies are common).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import io
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from calico.config import CAMERAS, CLASSES, DataConfig, get_config
from calico.data.geometry import invert, transform_matrix, yaw_of
from calico.data.paths import cache_dir, check_writable
from calico.data.pointcloud import check_pcd_bin
from calico.data.splits import custom_splits, splits_path
from calico.errors import CalicoError, DataError
from calico.utils.cliargs import DEFAULT_CONFIG, add_data_arguments, data_overrides

INDEX_FORMAT = 2  # 2: index.json + index.npz (1: index.pkl, never read: a pickle can run code)
INDEX_JSON, INDEX_NPZ, OLD_INDEX = "index.json", "index.npz", "index.pkl"
_LABEL = {name: i for i, name in enumerate(CLASSES)}


@contextlib.contextmanager
def _locked(folder: Path, name: str, exclusive: bool):
    """An advisory ``flock`` on ``folder/name`` for the block. Parallel jobs (``calico study --jobs``, DDP
    ranks) share one cache: without it two processes rebuilding the index interleave their json/npz
    replacements, and a reader between them sees an npz of the other writer. A folder where the lock file
    cannot be created (read-only cache) runs unlocked: nobody can write the index there either."""
    try:
        handle = open(folder / name, "a")
    except OSError:
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError:  # a file system without locks (some NFS mounts): as before, unlocked
            pass
        yield


def open_nuscenes(dataroot: str, version: str):
    """Load the devkit tables with errors that name the folder/table instead of a bare traceback."""
    from nuscenes.nuscenes import NuScenes

    root = Path(dataroot).expanduser()
    if not root.is_dir():
        raise DataError("dataroot does not exist or is not a folder", str(root))
    table_dir = root / version
    if not table_dir.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "sample.json").exists())
        raise DataError(f"version folder {version!r} not found (versions present: {found or 'none'})",
                        str(table_dir))
    for table in ("sample", "sample_data", "sample_annotation", "scene", "calibrated_sensor", "ego_pose",
                  "sensor", "log", "category", "instance", "attribute", "visibility", "map"):
        if not (table_dir / f"{table}.json").exists():
            raise DataError(f"table {table}.json is missing", str(table_dir))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return NuScenes(version=version, dataroot=str(root), verbose=False)
    except KeyError as exc:
        raise DataError(f"the tables reference a token that does not exist ({exc}); "
                        "the tables are inconsistent or truncated", str(table_dir)) from exc
    except (ValueError, OSError) as exc:  # JSONDecodeError is a ValueError
        raise DataError(f"cannot read the devkit tables: {exc}", str(table_dir)) from exc
    except AssertionError as exc:  # the devkit asserts on missing map masks and the like
        raise DataError(f"nuscenes-devkit refused the dataset: {exc}", str(root)) from exc
    except (TypeError, AttributeError, IndexError) as exc:  # a table of the wrong shape
        raise DataError(_table_shape_problem(table_dir) or f"the devkit tables have the wrong shape ({exc})",
                        str(table_dir)) from exc


def _table_shape_problem(table_dir: Path) -> str | None:
    """The first table (and row) that is not a JSON list of objects with a string ``token``."""
    for path in sorted(table_dir.glob("*.json")):
        try:
            rows = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(rows, list):
            return f"table {path.name} is a JSON {type(rows).__name__}, not a list of rows"
        for i, row in enumerate(rows):
            if not isinstance(row, dict) or not isinstance(row.get("token"), str):
                return f"table {path.name} row {i} is not an object with a 'token': {str(row)[:80]}"
    return None


def _need(row: dict, table: str, *keys: str) -> list:
    """``row[key]`` for each key, or a DataError naming the table, the row and the missing field."""
    missing = [k for k in keys if k not in row]
    if missing:
        raise DataError(f"table {table}.json row {row.get('token')!r} has no {', '.join(missing)}")
    return [row[k] for k in keys]


def _get(nusc, table: str, token: str) -> dict:
    try:
        return nusc.get(table, token)
    except KeyError as exc:
        raise DataError(f"dangling token: {table} {token!r} is referenced but not in {table}.json",
                        os.path.join(nusc.dataroot, nusc.version)) from exc


def _pose(nusc, sd: dict) -> tuple[np.ndarray, np.ndarray]:
    cs = _get(nusc, "calibrated_sensor", sd["calibrated_sensor_token"])
    ep = _get(nusc, "ego_pose", sd["ego_pose_token"])
    return (transform_matrix(*_need(cs, "calibrated_sensor", "translation", "rotation")),
            transform_matrix(*_need(ep, "ego_pose", "translation", "rotation")))


def _check_image(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        return "image file does not exist"
    except OSError as exc:
        return f"cannot read image ({exc.strerror})"
    if not head:
        return "empty image file"
    if not (head.startswith(b"\xff\xd8") or head.startswith(b"\x89PNG")):
        return "not a JPEG/PNG image (bad magic bytes)"
    return _decode_check(path)


def _decode_check(path: str) -> str | None:
    """Decode the image cheaply (JPEG: a 1/8-scale draft, which still reads every byte of the scan), so a
    file truncated after a valid header fails here and not in training."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            im.draft("RGB", (max(1, w // 8), max(1, h // 8)))
            im.load()
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError... for broken files
        return f"cannot decode image ({type(exc).__name__}: {exc})"
    return None


def _boxes(nusc, sample: dict, lidar2ego: np.ndarray, ego2global: np.ndarray) -> dict[str, Any]:
    """GT boxes of the detection classes in the keyframe LiDAR frame."""
    from nuscenes.eval.detection.utils import category_to_detection_name

    global2lidar = invert(ego2global @ lidar2ego)
    rows, names, npts, tokens, vel_ok = [], [], [], [], []
    for ann_token in sample["anns"]:
        ann = _get(nusc, "sample_annotation", ann_token)
        name = category_to_detection_name(ann["category_name"])
        if name is None:
            continue
        box = global2lidar @ transform_matrix(*_need(ann, "sample_annotation", "translation", "rotation", "size")[:2])
        vel = nusc.box_velocity(ann_token)  # global frame, NaN when the instance has one annotation
        ok = bool(np.all(np.isfinite(vel[:2])))
        vel_l = global2lidar[:3, :3] @ (np.nan_to_num(vel) * np.array([1.0, 1.0, 0.0]))
        w, length, h = ann["size"]
        rows.append([*box[:3, 3], w, length, h, yaw_of(box[:3, :3]), vel_l[0], vel_l[1]])
        names.append(name)
        npts.append(int(ann["num_lidar_pts"]))
        tokens.append(ann_token)
        vel_ok.append(ok)
    return {
        "gt_boxes": np.asarray(rows, dtype=np.float32).reshape(-1, 9),
        "gt_names": names,
        "gt_labels": np.asarray([_LABEL[n] for n in names], dtype=np.int64),
        "gt_num_pts": np.asarray(npts, dtype=np.int64),
        "gt_tokens": tokens,
        "gt_velocity_valid": np.asarray(vel_ok, dtype=bool),
    }


def build_record(nusc, sample: dict, max_sweeps: int,
                 cameras=CAMERAS) -> tuple[dict, list[tuple[str, str]], list[tuple[str, str]], int]:
    """Index one keyframe sample. Returns (record, bad files of the sample itself [(path, problem)], bad sweep
    files [(path, problem)] (left out of ``record["sweeps"]``), missing sweep files)."""
    root = nusc.dataroot
    bad: list[tuple[str, str]] = []
    lidar_sd = _get(nusc, "sample_data", sample["data"]["LIDAR_TOP"])
    lidar2ego, ego2global = _pose(nusc, lidar_sd)
    lidar_path = os.path.join(root, lidar_sd["filename"])
    problem = check_pcd_bin(lidar_path)
    if problem:
        bad.append((lidar_path, problem))
    scene = _get(nusc, "scene", sample["scene_token"])
    log = _get(nusc, "log", scene["log_token"])
    record: dict[str, Any] = {
        "token": sample["token"], "scene_token": scene["token"], "scene_name": scene["name"],
        "timestamp": sample["timestamp"], "location": log["location"],
        "lidar_path": lidar_sd["filename"], "lidar2ego": lidar2ego, "ego2global": ego2global,
        "sweeps": [], "cams": {},
    }
    # Earlier sweeps, moved into the keyframe LiDAR frame; missing files are skipped at load time.
    global2lidar = invert(ego2global @ lidar2ego)
    missing = 0
    bad_sweeps: list[tuple[str, str]] = []
    sd = lidar_sd
    while len(record["sweeps"]) < max_sweeps and sd["prev"]:
        sd = _get(nusc, "sample_data", sd["prev"])
        s2e, e2g = _pose(nusc, sd)
        path = os.path.join(root, sd["filename"])
        exists = os.path.exists(path)
        missing += not exists
        problem = check_pcd_bin(path) if exists else None
        if problem:  # a bad sweep costs this keyframe one sweep, not the keyframe
            bad_sweeps.append((path, problem))
            continue
        record["sweeps"].append({
            "path": sd["filename"], "sweep2lidar": global2lidar @ e2g @ s2e,
            "dt": (lidar_sd["timestamp"] - sd["timestamp"]) * 1e-6, "exists": exists,
        })
    for cam in cameras:
        if cam not in sample["data"]:
            continue
        cam_sd = _get(nusc, "sample_data", sample["data"][cam])
        cs = _get(nusc, "calibrated_sensor", cam_sd["calibrated_sensor_token"])
        cam2ego, cam_ego2global = _pose(nusc, cam_sd)
        path = os.path.join(root, cam_sd["filename"])
        problem = _check_image(path)
        if problem:
            bad.append((path, problem))
        record["cams"][cam] = {
            "path": cam_sd["filename"],
            "intrinsics": np.asarray(cs["camera_intrinsic"], dtype=np.float64),
            "cam2ego": cam2ego, "ego2global": cam_ego2global,
            # The camera fires at another time than the LiDAR: go through the global frame.
            "lidar2cam": invert(cam_ego2global @ cam2ego) @ ego2global @ lidar2ego,
            "size": (cam_sd.get("height", 0), cam_sd.get("width", 0)),
        }
    record.update(_boxes(nusc, sample, lidar2ego, ego2global))
    return record, bad, bad_sweeps, missing


def prepare(data: DataConfig, skip_bad: bool = False, progress: bool = True) -> dict[str, Any]:
    """Build and write the index for ``data.dataroot``/``data.version``; return it."""
    t0 = time.time()
    nusc = open_nuscenes(data.dataroot, data.version)
    check_writable(cache_dir(data))  # before the indexing, not after it
    custom_splits(data.dataroot, data.version, data.splits_file)  # so is a missing or misspelt splits file
    records, bad_all, skipped = [], [], []
    missing_sweeps = dropped_sweeps = 0
    for sample in tqdm(nusc.sample, desc="calico prepare", unit="sample", disable=not progress):
        try:
            record, bad, bad_sweeps, missing = build_record(nusc, sample, data.max_index_sweeps, data.cameras)
        except DataError as exc:
            if exc.path is not None:
                raise
            raise DataError(str(exc), os.path.join(nusc.dataroot, nusc.version)) from exc
        except (KeyError, TypeError, ValueError, IndexError) as exc:  # a row of the wrong shape
            raise DataError(f"sample {sample.get('token')!r}: a table row lacks a field or has the wrong type "
                            f"({type(exc).__name__}: {exc})", os.path.join(nusc.dataroot, nusc.version)) from exc
        missing_sweeps += missing
        bad_all.extend(b for b in bad + bad_sweeps if b not in bad_all)
        if bad:
            skipped.append(sample["token"])
            continue
        dropped_sweeps += len(bad_sweeps)
        records.append(record)
    if bad_all and not skip_bad:
        lines = "\n".join(f"  {p}: {why}" for p, why in bad_all[:50])
        more = f"\n  ... and {len(bad_all) - 50} more" if len(bad_all) > 50 else ""
        raise DataError(f"{len(bad_all)} bad file(s) in {len(skipped)} sample(s) "
                        f"(use --skip-bad to drop those samples; a bad sweep only costs its keyframes that "
                        f"sweep):\n{lines}{more}")
    records.sort(key=lambda r: (r["scene_name"], r["timestamp"]))
    splits_file = splits_path(data.dataroot, data.version, data.splits_file)
    index = {
        "format": INDEX_FORMAT, "version": data.version, "dataroot": str(Path(data.dataroot).resolve()),
        "records": records, "skipped_samples": skipped, "bad_files": bad_all,
        "missing_sweep_files": missing_sweeps, "max_sweeps": data.max_index_sweeps,
        "bad_sweeps_left_out": dropped_sweeps,
        "custom_splits": str(splits_file) if splits_file.exists() else None,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": time.time() - t0,
    }
    from calico.data.maps import has_map_expansion, write_map_masks

    if has_map_expansion(data.dataroot, {r["location"] for r in records}):
        index["map_masks"] = write_map_masks(nusc, records, cache_dir(data), progress=progress)
    out = write_index(index, cache_dir(data))
    index["path"] = str(out)
    return index


def _encode(obj: Any, groups: dict[tuple, tuple[str, list[np.ndarray]]]) -> Any:
    """JSON-able copy of ``obj``; every numpy array goes into ``groups`` (one list per dtype and trailing
    shape, concatenated on write: a handful of npz members instead of one per array) and is replaced by
    ``{"__array__": [group, i, shape]}``."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind == "O":
            raise TypeError("object arrays cannot go into the index (they would need pickle)")
        flat = obj.reshape(-1, *obj.shape[1:]) if obj.ndim else obj.reshape(1)
        name, parts = groups.setdefault((obj.dtype.str, flat.shape[1:]), (f"g{len(groups)}", []))
        parts.append(flat)
        return {"__array__": [name, len(parts) - 1, list(obj.shape)]}
    if isinstance(obj, dict):
        return {str(k): _encode(v, groups) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v, groups) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _decode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            name, i, shape = obj["__array__"]
            off = arrays[name + "_offsets"]
            return arrays[name][off[i]:off[i + 1]].reshape(shape)
        return {k: _decode(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    return obj


def write_index(index: dict[str, Any], folder: Path) -> Path:
    """Write ``index.json`` + ``index.npz`` atomically (the JSON, written last, names the npz it belongs to)."""
    groups: dict[tuple, tuple[str, list[np.ndarray]]] = {}
    doc = _encode({k: v for k, v in index.items() if k != "path"}, groups)
    doc["arrays_id"] = uuid.uuid4().hex
    arrays = {"arrays_id": np.array(doc["arrays_id"])}
    for name, parts in groups.values():
        arrays[name] = np.concatenate(parts)
        arrays[name + "_offsets"] = np.cumsum([0] + [len(p) for p in parts]).astype(np.int64)
    out, npz = folder / INDEX_JSON, folder / INDEX_NPZ
    tmp_npz, tmp_json = folder / f".index.tmp{os.getpid()}.npz", folder / f".index.tmp{os.getpid()}.json"
    try:
        np.savez(tmp_npz, **arrays)
        tmp_json.write_text(json.dumps(doc, separators=(",", ":")))
        with _locked(folder, ".index.lock", exclusive=True):  # readers never see one file of each writer
            os.replace(tmp_npz, npz)
            os.replace(tmp_json, out)
    except OSError as exc:
        for tmp in (tmp_npz, tmp_json):
            tmp.unlink(missing_ok=True)
        raise DataError(f"cannot write the index ({exc.strerror or exc}); pass a writable --cache-dir",
                        str(folder)) from exc
    return out


def read_index(folder: Path) -> dict[str, Any]:
    """Read ``index.json`` + ``index.npz`` (``allow_pickle=False``: data only, no code)."""
    path = folder / INDEX_JSON
    try:
        with _locked(folder, ".index.lock", exclusive=False):
            doc = json.loads(path.read_text())
            if not isinstance(doc, dict):
                raise ValueError(f"a JSON {type(doc).__name__}, not an object")
            if doc.get("format") != INDEX_FORMAT:
                return doc
            with np.load(folder / INDEX_NPZ, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        if str(arrays.get("arrays_id")) != doc.get("arrays_id"):
            raise ValueError(f"{INDEX_NPZ} belongs to another {INDEX_JSON} (interrupted write?)")
        index = _decode(doc, arrays)
        index.pop("arrays_id")
    except (OSError, ValueError, KeyError, IndexError, TypeError, EOFError) as exc:  # JSON/zip errors: ValueError
        raise DataError(f"unreadable index ({exc}); delete it and run `calico prepare` again", str(path)) from exc
    index["path"] = str(path)
    return index


def load_index(data: DataConfig, auto_prepare: bool = True) -> dict[str, Any]:
    """Load ``<cache>/index.json`` (+ ``index.npz``), building it first if absent or of an old format (and
    ``auto_prepare``). An old ``index.pkl`` is never unpickled."""
    folder = cache_dir(data)
    index, reason = _current_index(folder)
    if index is not None:
        return index
    if not auto_prepare:
        raise DataError(f"{reason}: run `calico prepare --dataroot ... --version ...` first", str(folder / INDEX_JSON))
    if Path(data.dataroot, data.version).is_dir():  # a missing dataset leaves no cache folder behind
        folder.mkdir(parents=True, exist_ok=True)
    # one builder at a time; whoever waited finds the index the first one wrote and does not build it again
    with _locked(folder, ".index.build.lock", exclusive=True):
        index, reason = _current_index(folder)
        if index is not None:
            return index
        if reason != "no index":
            print(f"calico: {reason}; rebuilding it with `calico prepare`", file=sys.stderr)
        prepare(data, progress=True)
    return read_index(folder)


def _current_index(folder: Path) -> tuple[dict[str, Any] | None, str]:
    """``(index, "")`` when ``folder`` holds a current index, else ``(None, why it must be built)``."""
    if not (folder / INDEX_JSON).exists():
        return None, (f"{folder / OLD_INDEX} is an old-format index (a pickle, not read: it could run code)"
                      if (folder / OLD_INDEX).exists() else "no index")
    index = read_index(folder)
    if index.get("format") != INDEX_FORMAT:
        return None, f"index format {index.get('format')} != {INDEX_FORMAT}"
    return index, ""


def _shared(frames: dict[str, set[int]], names: list[str]) -> list[tuple[str, str, int]]:
    """``(a, b, n)`` for each pair of ``names`` (in order) whose keyframe sets share n > 0 keyframes."""
    return [(a, b, len(frames[a] & frames[b])) for i, a in enumerate(names) for b in names[i + 1:]
            if frames[a] & frames[b]]


def split_lines(records: list[dict[str, Any]], dataroot: str, version: str,
                splits_file: str | None = None) -> list[str]:
    """What ``calico prepare`` says about splits: each split's scenes and keyframes in this index (the names a
    config uses in brackets when the version renames them; scenes a keyframe slice takes only in part),
    scenes in no split, keyframes a slice gap leaves out, keyframes two members or two splits share (a leak),
    and an empty or missing val."""
    from calico.data.splits import (
        dataset_splits,
        has_annotations,
        parse_member,
        scene_keyframes,
        select_keyframes,
        split_scene_names,
    )

    keyframes = scene_keyframes(records)
    roles: dict[str, list[str]] = {}
    for name, resolved in dataset_splits(dataroot, version, splits_file).items():
        roles.setdefault(resolved, []).append(name)
    if not roles:
        return [f"splits: none ({version} is not a nuScenes version and has no {version}/splits.json): use "
                "`calico pretrain --split all`; fine-tuning and evaluation need a splits.json"]
    lines, warns, picked = ["splits:"], [], {}
    for resolved, names in roles.items():
        members = list(dict.fromkeys(split_scene_names(dataroot, version, names[0], splits_file)))
        frames = {m: set(select_keyframes([m], keyframes)) for m in members}
        picked[resolved] = set().union(*frames.values())
        # two members of one split sharing keyframes: counted once, but likely a typo in a slice
        by_scene: dict[str, list[str]] = {}
        for m in members:
            by_scene.setdefault(parse_member(m)[0], []).append(m)
        for same in by_scene.values():
            for a, b, n in _shared(frames, same):
                warns.append(f"warning: split {resolved}: {a} and {b} share {n} keyframes (counted once)")
        scenes = {records[i]["scene_name"] for i in picked[resolved]}
        part = sum(1 for sc in scenes if not set(keyframes[sc]) <= picked[resolved])
        alias = [n for n in names if n != resolved]
        label = resolved + (f" ({', '.join(alias)})" if alias else "")
        lines.append(f"  {label}: {len(scenes)} scenes{f' ({part} in part)' if part else ''}, "
                     f"{len(picked[resolved])} keyframes")
    covered = set().union(*picked.values())
    rest = [sc for sc, idx in keyframes.items() if not covered & set(idx)]
    if rest:
        lines.append(f"  in no split: {len(rest)} scenes, {sum(len(keyframes[sc]) for sc in rest)} keyframes")
    gaps = [sc for sc, idx in keyframes.items() if sc not in rest and not set(idx) <= covered]
    if gaps:
        left = sum(len(set(keyframes[sc]) - covered) for sc in gaps)
        lines.append(f"  in no split, left out of sliced scenes: {left} keyframes of {len(gaps)} scenes")
    for a, b, n in _shared(picked, list(picked)):
        warns.append(f"warning: splits {a} and {b} share {n} keyframes (a leak when one trains and the other "
                     "evaluates)")
    lines += warns
    counts = {name: len(idx) for name, idx in picked.items()}
    val = dataset_splits(dataroot, version, splits_file).get("val")
    if val is None:
        lines.append("note: no 'val' split: fine-tuning skips its evaluation; pass `calico evaluate --split` a "
                     "split this dataset has")
    elif not counts.get(val):
        lines.append(f"note: the val split ({val}) has no keyframe in this dataset: fine-tuning skips its "
                     "evaluation and `calico evaluate --split val` has nothing to score")
    if not has_annotations(version):
        lines.append(f"note: {version} has no annotations: `calico evaluate` writes the submission file only")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # --config / --set: the data section (cameras, max_index_sweeps, cache_dir) the later commands will read
    add_data_arguments(parser, dataroot_required=True)
    parser.add_argument("--max-sweeps", type=int, default=None,
                        help="earlier sweeps recorded per keyframe (data.max_index_sweeps; default: the config's, 10)")
    parser.add_argument("--skip-bad", action="store_true", help="drop samples with bad files instead of failing")


def run(args: argparse.Namespace) -> int:
    if args.max_sweeps is not None and args.max_sweeps < 0:
        raise DataError(f"--max-sweeps {args.max_sweeps} is invalid: must be an integer >= 0")
    sweeps = [] if args.max_sweeps is None else [f"data.max_index_sweeps={args.max_sweeps}"]
    try:
        data = get_config(args.config or DEFAULT_CONFIG, data_overrides(args) + sweeps + list(args.set)).data
    except (ValueError, KeyError) as exc:
        raise CalicoError(f"config: {exc}") from exc
    index = prepare(data, skip_bad=args.skip_bad)
    recs = index["records"]
    scenes = {r["scene_name"] for r in recs}
    nbox = sum(len(r["gt_labels"]) for r in recs)
    print(f"indexed {len(recs)} samples from {len(scenes)} scenes, {nbox} boxes -> {index['path']}")
    if index["bad_files"]:
        print(f"skipped {len(index['skipped_samples'])} samples with {len(index['bad_files'])} bad files "
              "(--skip-bad):")
        for p, why in index["bad_files"][:20]:
            print(f"  {p}: {why}")
    if index.get("bad_sweeps_left_out"):
        print(f"note: {index['bad_sweeps_left_out']} bad sweep file(s) left out of their keyframes' sweeps "
              "(those keyframes are kept with the other sweeps)")
    if index["missing_sweep_files"]:
        print(f"note: {index['missing_sweep_files']} sweep files listed in sample_data are absent "
              "(keyframes-only copy?); the loader uses the sweeps present")
    if "map_masks" in index:
        print(f"map masks: {index['map_masks']}")
    print("\n".join(split_lines(recs, data.dataroot, data.version, data.splits_file)))
    return 0
