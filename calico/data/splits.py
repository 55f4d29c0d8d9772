"""Train/val splits and label-fraction splits, chosen by split member: a scene, or a keyframe slice of one.

A member of a splits file is a scene name (``"scene-0916"``: all its keyframes) or a scene name with a
Python-style slice over its keyframes in time order (``"scene-0916[0:30]"``, ``"scene-0916[33:]"``), so a
one-scene dataset can still have a train and a val split (``parse_member`` is the one parser,
``select_keyframes`` the one selection). Fractions and held-out parts take whole members as units.

Label fractions are nested (5 % ⊂ 10 % ⊂ 20 % ⊂ 50 % ⊂ 100 %) and deterministic: scenes are ordered
by a salted SHA-1 of their name and each fraction takes a prefix of that order. For the official
nuScenes train split the result is kept as a versioned file, ``calico/splits/nuscenes_train_fractions_v1.json``
(regenerate with ``python -m calico.data.splits``); any other dataset gets the same construction.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from calico.errors import DataError

FRACTIONS: tuple[float, ...] = (0.05, 0.10, 0.20, 0.50, 1.00)
SPLIT_SALT = "calico-fractions-v1"
SPLITS_DIR = Path(__file__).resolve().parents[1] / "splits"
NUSCENES_FRACTIONS_FILE = SPLITS_DIR / "nuscenes_train_fractions_v1.json"


def scene_order(scene_names: list[str], salt: str = SPLIT_SALT) -> list[str]:
    """A deterministic pseudo-random order of scenes that does not depend on the input order."""
    return sorted(set(scene_names), key=lambda n: hashlib.sha1(f"{salt}:{n}".encode()).hexdigest())


def fraction_scenes(scene_names: list[str], fraction: float, salt: str = SPLIT_SALT) -> list[str]:
    """The scenes of a label fraction: a prefix of ``scene_order`` with ceil(fraction * n) scenes (≥ 1)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    order = scene_order(scene_names, salt)
    return order[: max(1, math.ceil(fraction * len(order)))]


def make_fraction_file(scene_names: list[str], path: Path, salt: str = SPLIT_SALT) -> dict:
    data = {
        "salt": salt, "construction": "prefix of scenes sorted by sha1(salt:name), ceil(f*n) scenes",
        "num_scenes": len(set(scene_names)),
        "fractions": {f"{int(f * 100)}": fraction_scenes(scene_names, f, salt) for f in FRACTIONS},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return data


def official_split_scenes(split: str) -> list[str] | None:
    """Scene names of an official nuScenes split (train, val, mini_train, ...), else None."""
    from nuscenes.utils.splits import create_splits_scenes

    return create_splits_scenes().get(split)


# A config's split names ("train", "val": finetune.train_split / val_split, `--split`) are roles; each nuScenes
# version names them its own way, so `--version v1.0-mini` works without any --set. v1.0-mini's scenes are not
# a subset of trainval's train/val (two mini_train scenes are in val), so "train" must not fall through to the
# official train list there. v1.0-test has one split, without annotations: evaluation writes a submission only.
VERSION_SPLITS: dict[str, dict[str, str]] = {
    "v1.0-mini": {"train": "mini_train", "val": "mini_val"},
    "v1.0-trainval": {"train": "train", "val": "val"},
    "v1.0-test": {"val": "test", "test": "test"},
}


# "<scene>[start:stop]": ints, either optional, negative as in Python; no step (a strided split would
# interleave train and val frames 0.5 s apart).
_MEMBER_SLICE = re.compile(r"^(?P<scene>[^\[\]]+)\[\s*(?P<start>-?\d+)?\s*:\s*(?P<stop>-?\d+)?\s*\]$")

T = TypeVar("T")


def parse_member(member: str, source: str | None = None) -> tuple[str, slice | None]:
    """``(scene name, keyframe slice or None for the whole scene)`` of a split member; a one-line DataError
    naming ``source`` (the splits file) on a bad spelling."""
    if not isinstance(member, str) or not member.strip():
        raise DataError(f"split member {member!r}: expected a scene name or 'scene[start:stop]'", source)
    if "[" not in member and "]" not in member:
        return member, None
    m = _MEMBER_SLICE.match(member)
    if m is None:
        raise DataError(f"split member {member!r}: a keyframe range is written 'scene[start:stop]' "
                        "(ints, either optional, no step)", source)
    start, stop = (int(v) if v is not None else None for v in (m["start"], m["stop"]))
    return m["scene"], slice(start, stop)


def select_keyframes(members: Iterable[str], keyframes: Mapping[str, Sequence[T]]) -> list[T]:
    """The keyframes ``members`` cover, given each scene's keyframes in time order; each once (overlapping
    members do not duplicate frames), scenes in the order of their first member, frames in time order."""
    picked: dict[str, set[int]] = {}
    for member in members:
        scene, part = parse_member(member)
        n = len(keyframes.get(scene, ()))
        picked.setdefault(scene, set()).update(range(n)[part] if part is not None else range(n))
    return [keyframes[scene][i] for scene, idx in picked.items() for i in sorted(idx)]


def scene_keyframes(records: Sequence[Mapping[str, Any]]) -> dict[str, list[int]]:
    """``{scene name: positions in records}`` in time order (``timestamp``): what a keyframe slice counts."""
    by_scene: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        by_scene.setdefault(rec["scene_name"], []).append(i)
    for idx in by_scene.values():
        idx.sort(key=lambda i: records[i]["timestamp"])
    return by_scene


def select_records(records: Sequence[dict[str, Any]], members: Iterable[str]) -> list[dict[str, Any]]:
    """The index records of ``members``, in the index's own order (so a split's sample order, and with it
    every seeded shuffle, is the same as when splits were by scene only)."""
    keep = set(select_keyframes(members, scene_keyframes(records)))
    return [rec for i, rec in enumerate(records) if i in keep]


def splits_path(dataroot: str, version: str, splits_file: str | None = None) -> Path:
    """The splits file a dataset uses: ``splits_file`` when given (``data.splits_file``), else
    ``<dataroot>/<version>/splits.json``."""
    return Path(splits_file).expanduser() if splits_file else Path(dataroot) / version / "splits.json"


def custom_splits(dataroot: str, version: str, splits_file: str | None = None) -> dict[str, list[str]] | None:
    """The splits file's ``{split: [members]}`` (``splits_path``), or None when the dataset has none. A given
    ``splits_file`` that does not exist is an error (a typo must not fall back to the official splits)."""
    custom = splits_path(dataroot, version, splits_file)
    if not custom.exists():
        if splits_file:
            raise DataError("splits file (data.splits_file) does not exist", str(custom))
        return None
    try:
        table = json.loads(custom.read_text())
    except ValueError as exc:
        raise DataError(f"invalid JSON ({exc})", str(custom)) from exc
    if not isinstance(table, dict) or not all(isinstance(v, list) for v in table.values()):
        raise DataError("expected a JSON object of {split: [scene names]}", str(custom))
    for members in table.values():
        for member in members:
            parse_member(member, str(custom))  # every bad spelling fails here, naming the file
    return table


def resolve_split(dataroot: str, version: str, split: str, splits_file: str | None = None) -> str:
    """The split a name means for this dataset: its splits file's own name first, then the version's (train on
    v1.0-mini is mini_train), else the name itself."""
    table = custom_splits(dataroot, version, splits_file)
    if table is not None and split in table:
        return split
    return VERSION_SPLITS.get(version, {}).get(split, split)


def has_annotations(version: str) -> bool:
    """False for nuScenes' test tables (no sample_annotation content): nothing to score, a submission only."""
    return not version.endswith("-test")


def dataset_splits(dataroot: str, version: str, splits_file: str | None = None) -> dict[str, str]:
    """``{name: resolved name}`` of the splits a dataset offers: its splits file, else its version's roles."""
    table = custom_splits(dataroot, version, splits_file)
    if table is not None:
        return {name: name for name in table}
    return dict(VERSION_SPLITS.get(version, {}))


HOLDOUT_SHARE = 0.2  # of a split's members, for "<split>:holdout"


def holdout_parts(scene_names: list[str], salt: str = SPLIT_SALT) -> tuple[list[str], list[str]]:
    """``(fit, holdout)`` members (scenes or keyframe slices, each a unit): the last ``HOLDOUT_SHARE`` of
    ``scene_order`` (at least one member) are held out. Label fractions are prefixes of the same order, so every fraction below 1 - HOLDOUT_SHARE of the
    split lies inside ``fit``: tuning on ``holdout`` never sees a labeled frame it trained on."""
    order = scene_order(scene_names, salt)
    if len(order) < 2:
        raise ValueError(f"a held-out part needs at least 2 members (scenes or keyframe slices), "
                         f"the split has {len(order)}")
    n = max(1, round(HOLDOUT_SHARE * len(order)))
    return order[:-n], order[-n:]


def split_scene_names(dataroot: str, version: str, split: str, splits_file: str | None = None) -> list[str]:
    """Members of ``split`` (scene names, or ``scene[start:stop]`` keyframe slices: ``select_records`` turns
    them into samples): the dataset's splits file (``splits_path``) first, then official nuScenes names.

    ``<split>:fit`` and ``<split>:holdout`` are the two parts of ``holdout_parts`` (hyper-parameter tuning on
    train data only: fit on ``train:fit``, score on ``train:holdout``). ``a+b`` is the union of splits in that
    order (e.g. ``train+unlabeled``: a pre-training pool of train and the synthetic world's unlabeled scenes).
    """
    if "+" in split:
        names: list[str] = []
        for part in split.split("+"):
            names += [n for n in split_scene_names(dataroot, version, part, splits_file) if n not in names]
        return names
    base, _, part = split.partition(":")
    if part:
        if part not in ("fit", "holdout"):
            raise DataError(f"unknown split {split!r}: a ':' suffix must be ':fit' or ':holdout'")
        try:
            fit, held = holdout_parts(split_scene_names(dataroot, version, base, splits_file))
        except ValueError as exc:
            raise DataError(f"split {split!r}: {exc}") from exc
        return fit if part == "fit" else held
    table = custom_splits(dataroot, version, splits_file)
    if table is not None and split in table:
        return list(table[split])
    official = official_split_scenes(resolve_split(dataroot, version, split, splits_file))
    if official is not None:
        return official
    custom = splits_path(dataroot, version, splits_file)
    raise DataError(f"unknown split {split!r}: not in {custom if custom.exists() else 'a custom splits.json'} "
                    "and not an official nuScenes split")


def fraction_of(train_scenes: list[str], fraction: float) -> set[str]:
    """Members of a label fraction of ``train_scenes`` (scenes or keyframe slices, each a unit; one member
    stays one member at any fraction); uses the versioned file for the nuScenes train split."""
    if fraction >= 1.0:
        return set(train_scenes)
    key = f"{round(fraction * 100)}"
    if NUSCENES_FRACTIONS_FILE.exists():
        table = json.loads(NUSCENES_FRACTIONS_FILE.read_text())
        official = official_split_scenes("train") or []
        if set(train_scenes) == set(official) and key in table["fractions"]:
            return set(table["fractions"][key])
    return set(fraction_scenes(train_scenes, fraction))


if __name__ == "__main__":
    scenes = official_split_scenes("train") or []
    made = make_fraction_file(scenes, NUSCENES_FRACTIONS_FILE)
    print({k: len(v) for k, v in made["fractions"].items()}, "->", NUSCENES_FRACTIONS_FILE)
