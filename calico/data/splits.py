"""Train/val splits and label-fraction splits, always chosen by scene (never by frame).

Label fractions are nested (5 % ⊂ 10 % ⊂ 20 % ⊂ 50 % ⊂ 100 %) and deterministic: scenes are ordered
by a salted SHA-1 of their name and each fraction takes a prefix of that order. For the official
nuScenes train split the result is kept as a versioned file, ``calico/splits/nuscenes_train_fractions_v1.json``
(regenerate with ``python -m calico.data.splits``); any other dataset gets the same construction.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

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


def custom_splits(dataroot: str, version: str) -> dict[str, list[str]] | None:
    """``<dataroot>/<version>/splits.json`` ({split: [scene names]}), or None when the dataset has none."""
    custom = Path(dataroot) / version / "splits.json"
    if not custom.exists():
        return None
    try:
        table = json.loads(custom.read_text())
    except ValueError as exc:
        raise DataError(f"invalid JSON ({exc})", str(custom)) from exc
    if not isinstance(table, dict) or not all(isinstance(v, list) for v in table.values()):
        raise DataError("expected a JSON object of {split: [scene names]}", str(custom))
    return table


def resolve_split(dataroot: str, version: str, split: str) -> str:
    """The split a name means for this dataset: its splits.json's own name first, then the version's (train on
    v1.0-mini is mini_train), else the name itself."""
    table = custom_splits(dataroot, version)
    if table is not None and split in table:
        return split
    return VERSION_SPLITS.get(version, {}).get(split, split)


def has_annotations(version: str) -> bool:
    """False for nuScenes' test tables (no sample_annotation content): nothing to score, a submission only."""
    return not version.endswith("-test")


def dataset_splits(dataroot: str, version: str) -> dict[str, str]:
    """``{name: resolved name}`` of the splits a dataset offers: its splits.json, else its version's roles."""
    table = custom_splits(dataroot, version)
    if table is not None:
        return {name: name for name in table}
    return dict(VERSION_SPLITS.get(version, {}))


HOLDOUT_SHARE = 0.2  # of a split's scenes, for "<split>:holdout"


def holdout_parts(scene_names: list[str], salt: str = SPLIT_SALT) -> tuple[list[str], list[str]]:
    """``(fit, holdout)`` scenes: the last ``HOLDOUT_SHARE`` of ``scene_order`` (at least one scene) are held
    out. Label fractions are prefixes of the same order, so every fraction below 1 - HOLDOUT_SHARE of the
    split lies inside ``fit``: tuning on ``holdout`` never sees a labeled frame it trained on."""
    order = scene_order(scene_names, salt)
    if len(order) < 2:
        raise ValueError(f"a held-out part needs at least 2 scenes, the split has {len(order)}")
    n = max(1, round(HOLDOUT_SHARE * len(order)))
    return order[:-n], order[-n:]


def split_scene_names(dataroot: str, version: str, split: str) -> list[str]:
    """Scenes of ``split``: the dataset's own ``<version>/splits.json`` first, then official nuScenes names.

    ``<split>:fit`` and ``<split>:holdout`` are the two parts of ``holdout_parts`` (hyper-parameter tuning on
    train data only: fit on ``train:fit``, score on ``train:holdout``). ``a+b`` is the union of splits in that
    order (e.g. ``train+unlabeled``: a pre-training pool of train and the synthetic world's unlabeled scenes).
    """
    if "+" in split:
        names: list[str] = []
        for part in split.split("+"):
            names += [n for n in split_scene_names(dataroot, version, part) if n not in names]
        return names
    base, _, part = split.partition(":")
    if part:
        if part not in ("fit", "holdout"):
            raise DataError(f"unknown split {split!r}: a ':' suffix must be ':fit' or ':holdout'")
        try:
            fit, held = holdout_parts(split_scene_names(dataroot, version, base))
        except ValueError as exc:
            raise DataError(f"split {split!r}: {exc}") from exc
        return fit if part == "fit" else held
    table = custom_splits(dataroot, version)
    if table is not None and split in table:
        return list(table[split])
    official = official_split_scenes(resolve_split(dataroot, version, split))
    if official is not None:
        return official
    custom = Path(dataroot) / version / "splits.json"
    raise DataError(f"unknown split {split!r}: not in {custom if custom.exists() else 'a custom splits.json'} "
                    "and not an official nuScenes split")


def fraction_of(train_scenes: list[str], fraction: float) -> set[str]:
    """Scenes of a label fraction of ``train_scenes``; uses the versioned file for the nuScenes train split."""
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
