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
    with pytest.raises(DataError, match="at least 2 members"):
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


# -- keyframe slices: "scene[start:stop]" members, a splits file outside the dataroot ----------------------


def test_parse_member_good_and_bad():
    from calico.data.splits import parse_member

    assert parse_member("scene-0916") == ("scene-0916", None)
    assert parse_member("scene-0916[0:30]") == ("scene-0916", slice(0, 30))
    assert parse_member("scene-0916[33:]") == ("scene-0916", slice(33, None))
    assert parse_member("scene-0916[:-8]") == ("scene-0916", slice(None, -8))
    assert parse_member("scene-0916[:]") == ("scene-0916", slice(None, None))
    for bad in ("scene-0916[0:30:2]", "scene-0916[5]", "scene-0916[a:b]", "scene-0916[0:3", "[0:3]", "", 7):
        with pytest.raises(DataError, match="split member") as err:
            parse_member(bad, "f.json")
        assert str(err.value).startswith("f.json: ") and "\n" not in str(err.value)


def test_records_are_sliced_in_time_order_and_keep_index_order():
    from calico.data.splits import select_records

    # file order is not time order: a slice counts keyframes by timestamp
    recs = [{"scene_name": "a", "timestamp": t, "token": f"a{t}"} for t in (30, 10, 40, 20)]
    recs += [{"scene_name": "b", "timestamp": t, "token": f"b{t}"} for t in (1, 2)]
    tokens = lambda members: [r["token"] for r in select_records(recs, members)]  # noqa: E731
    assert tokens(["a[0:2]"]) == ["a10", "a20"]  # index order kept, the two earliest
    assert tokens(["a[2:]"]) == ["a30", "a40"]
    assert tokens(["a[-1:]"]) == ["a40"]
    assert tokens(["a[0:2]", "a[1:3]", "b"]) == ["a30", "a10", "a20", "b1", "b2"]  # overlap taken once
    assert tokens(["a[9:]", "nope"]) == []


def test_splits_file_outside_the_dataroot(tmp_path):
    from calico.data.splits import dataset_splits, resolve_split

    root = str(tmp_path / "data")
    (tmp_path / "data" / "v").mkdir(parents=True)
    (tmp_path / "data" / "v" / "splits.json").write_text('{"train": ["a"], "val": ["b"]}')
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"train": ["a[0:30]"], "val": ["a[33:]"]}))
    assert split_scene_names(root, "v", "val") == ["b"]  # default: the dataroot's own
    assert split_scene_names(root, "v", "val", str(mine)) == ["a[33:]"]
    assert split_scene_names(root, "v", "val", "") == ["b"]  # "" (data.splits_file's default) = the dataroot's
    assert dataset_splits(root, "v", str(mine)) == {"train": "train", "val": "val"}
    assert resolve_split(root, "v1.0-mini", "train", str(mine)) == "train"  # the file's name wins
    with pytest.raises(DataError) as err:
        split_scene_names(root, "v", "val", str(tmp_path / "typo.json"))
    assert str(err.value) == f"{tmp_path / 'typo.json'}: splits file (data.splits_file) does not exist"
    mine.write_text(json.dumps({"train": ["a[0:30:2]"]}))
    with pytest.raises(DataError, match=f"^{mine}: split member 'a\\[0:30:2\\]'"):
        split_scene_names(root, "v", "train", str(mine))


def test_slices_are_units_of_fractions_and_holdout(tmp_path):
    assert fraction_of(["s[0:30]"], 0.05) == {"s[0:30]"}  # one member stays one member
    members = [f"s[{i}:{i + 5}]" for i in range(0, 50, 5)]
    assert len(fraction_of(members, 0.2)) == 2 and fraction_of(members, 0.2) <= set(members)
    fit, held = holdout_parts(members)
    assert len(held) == 2 and set(fit) | set(held) == set(members)
    mine = tmp_path / "one.json"
    mine.write_text('{"train": ["s[0:30]"]}')
    with pytest.raises(DataError, match="needs at least 2 members"):
        split_scene_names(str(tmp_path), "v", "train:holdout", str(mine))


def test_config_takes_a_splits_file():
    from calico.config import get_config, validate_config

    cfg = get_config("cpu", ["data.splits_file=/x/frames.json"])
    assert cfg.data.splits_file == "/x/frames.json"
    assert get_config("cpu").data.splits_file == ""
    cfg.data.splits_file = 3
    with pytest.raises(ValueError, match="data.splits_file"):
        validate_config(cfg)


def test_real_scene_frame_split(real_cfg):
    """The shipped split of scene-0916: 30 train keyframes, a 3-keyframe gap, 8 val keyframes."""
    import copy

    from calico.data.dataset import NuScenesDataset
    from calico.data.prepare import load_index
    from calico.data.splits import SPLITS_DIR

    cfg = copy.deepcopy(real_cfg)
    cfg.data.splits_file = str(SPLITS_DIR / "nuscenes_scene0916_frames.json")
    train, val = NuScenesDataset(cfg, split="train"), NuScenesDataset(cfg, split="val")
    assert (len(train), len(val)) == (30, 8)
    times = sorted(r["timestamp"] for r in load_index(cfg.data)["records"])
    assert [r["timestamp"] for r in train.records] == times[:30]
    assert [r["timestamp"] for r in val.records] == times[33:]
    # train is 6 slices of 5 keyframes: label fractions and train:fit / train:holdout take whole slices
    assert len(NuScenesDataset(cfg, split="train", fraction=0.05)) == 5
    assert len(NuScenesDataset(cfg, split="train", fraction=0.5)) == 15
    fit, held = NuScenesDataset(cfg, split="train:fit"), NuScenesDataset(cfg, split="train:holdout")
    assert (len(fit), len(held)) == (25, 5)
    assert not {r["token"] for r in fit.records} & {r["token"] for r in held.records}
