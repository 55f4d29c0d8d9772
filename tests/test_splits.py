"""Label-fraction splits: by scene, nested, deterministic, and the versioned nuScenes file is current."""

from __future__ import annotations

import json

import pytest

from calico.data.splits import (
    FRACTIONS,
    NUSCENES_FRACTIONS_FILE,
    fraction_of,
    fraction_scenes,
    holdout_parts,
    official_split_scenes,
    split_scene_names,
)
from calico.errors import DataError


def test_nested_deterministic_and_order_free():
    scenes = [f"scene-{i:04d}" for i in range(137)]
    prev: set[str] = set()
    for f in FRACTIONS:
        cur = set(fraction_scenes(scenes, f))
        assert prev <= cur
        assert len(cur) == max(1, -(-int(round(f * 1000)) * 137 // 1000))
        assert cur == set(fraction_scenes(list(reversed(scenes)), f))
        prev = cur
    assert prev == set(scenes)
    with pytest.raises(ValueError):
        fraction_scenes(scenes, 0.0)


def test_versioned_nuscenes_file_matches_construction():
    table = json.loads(NUSCENES_FRACTIONS_FILE.read_text())
    train = official_split_scenes("train")
    assert table["num_scenes"] == len(train) == 700
    for key, names in table["fractions"].items():
        assert names == fraction_scenes(train, int(key) / 100)
        assert set(names) <= set(train)
    assert fraction_of(train, 0.05) == set(table["fractions"]["5"])
    assert not set(table["fractions"]["50"]) & set(official_split_scenes("val"))


def test_holdout_parts_never_hold_a_small_fraction(tmp_path):
    names = [f"scene-{i:04d}" for i in range(30)]
    fit, held = holdout_parts(names)
    assert len(held) == 6 and set(fit) | set(held) == set(names) and not set(fit) & set(held)
    for f in (0.02, 0.05, 0.1, 0.2, 0.5):  # label fractions of train and of train:fit stay inside fit
        assert fraction_of(names, f) <= set(fit)
        assert fraction_of(fit, f) <= set(fit)
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "splits.json").write_text(json.dumps({"train": names, "val": ["x"]}))
    assert split_scene_names(str(tmp_path), "v", "train:holdout") == held
    assert split_scene_names(str(tmp_path), "v", "train:fit") == fit
    from calico.errors import DataError

    with pytest.raises(DataError, match="':fit' or ':holdout'"):
        split_scene_names(str(tmp_path), "v", "train:other")
    with pytest.raises(DataError, match="at least 2 scenes"):
        split_scene_names(str(tmp_path), "v", "val:fit")


def test_union_of_splits(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "splits.json").write_text(json.dumps(
        {"train": ["a", "b"], "val": ["c"], "unlabeled": ["d", "a"]}))
    assert split_scene_names(str(tmp_path), "v", "train+unlabeled") == ["a", "b", "d"]
    assert split_scene_names(str(tmp_path), "v", "unlabeled+val") == ["d", "a", "c"]
    from calico.errors import DataError

    with pytest.raises(DataError, match="unknown split 'nope'"):
        split_scene_names(str(tmp_path), "v", "train+nope")


def test_split_names_are_roles_each_version_names(tmp_path):
    from nuscenes.utils.splits import create_splits_scenes

    from calico.data.splits import resolve_split

    official = create_splits_scenes()
    root = str(tmp_path)
    assert resolve_split(root, "v1.0-mini", "train") == "mini_train"
    assert split_scene_names(root, "v1.0-mini", "val") == official["mini_val"]
    # mini_train is not inside train: falling through to the official list would move 2 of its scenes to val
    assert not set(official["mini_train"]) <= set(official["train"])
    assert split_scene_names(root, "v1.0-trainval", "train") == official["train"]
    assert resolve_split(root, "v1.0-test", "val") == "test"
    assert resolve_split(root, "v1.0-mini", "mini_val") == "mini_val"  # explicit names still work
    # a dataset's own splits.json wins over the version's names
    (tmp_path / "v1.0-mini").mkdir()
    (tmp_path / "v1.0-mini" / "splits.json").write_text('{"train": ["a"], "val": ["b"]}')
    assert resolve_split(root, "v1.0-mini", "train") == "train"
    assert split_scene_names(root, "v1.0-mini", "val") == ["b"]
    (tmp_path / "v1.0-mini" / "splits.json").write_text('{"train": "a"}')
    with pytest.raises(DataError, match="splits.json: expected a JSON object of"):
        split_scene_names(root, "v1.0-mini", "train")
