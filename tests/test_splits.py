"""Label-fraction splits: by scene, nested, deterministic, and the versioned nuScenes file is current."""

from __future__ import annotations

import json

import pytest

from calico.data.splits import (
    FRACTIONS,
    NUSCENES_FRACTIONS_FILE,
    fraction_of,
    fraction_scenes,
    official_split_scenes,
)


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
