"""What `calico prepare` says about splits: scenes and keyframes per split, the version's names, an empty or
missing val split, a test version without annotations (split_lines on small records; the real scene end to end)."""

from __future__ import annotations

import json

from calico.cli import main
from calico.data.prepare import split_lines


def _records(scenes: dict[str, int]) -> list[dict]:
    return [{"scene_name": name, "timestamp": t} for name, n in scenes.items() for t in range(n)]


def _splits(tmp_path, version: str, table: dict) -> str:
    (tmp_path / version).mkdir(parents=True, exist_ok=True)
    (tmp_path / version / "splits.json").write_text(json.dumps(table))
    return str(tmp_path)


def test_custom_splits_are_counted(tmp_path):
    root = _splits(tmp_path, "v1.0-synth", {"train": ["a", "b"], "val": ["c"]})
    lines = split_lines(_records({"a": 3, "b": 2, "c": 4, "d": 1}), root, "v1.0-synth")
    assert lines == ["splits:", "  train: 2 scenes, 5 keyframes", "  val: 1 scenes, 4 keyframes",
                     "  in no split: 1 scenes, 1 keyframes"]


def test_keyframe_slices_are_counted_and_leaks_warned(tmp_path):
    root = _splits(tmp_path, "v1.0-synth", {"train": ["a[0:6]", "b"], "val": ["a[8:]"]})
    lines = split_lines(_records({"a": 10, "b": 2, "c": 1}), root, "v1.0-synth")
    assert lines == ["splits:", "  train: 2 scenes (1 in part), 8 keyframes", "  val: 1 scenes (1 in part), 2 keyframes",
                     "  in no split: 1 scenes, 1 keyframes",
                     "  in no split, left out of sliced scenes: 2 keyframes of 1 scenes"]
    # a splits file outside the dataroot wins; overlapping members and a train/val overlap are warned
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"train": ["a[0:6]", "a[4:8]"], "val": ["a[7:]"]}))
    lines = split_lines(_records({"a": 10}), root, "v1.0-synth", str(mine))
    assert lines[1:3] == ["  train: 1 scenes (1 in part), 8 keyframes", "  val: 1 scenes (1 in part), 3 keyframes"]
    assert "warning: split train: a[0:6] and a[4:8] share 2 keyframes (counted once)" in lines
    assert any(line.startswith("warning: splits train and val share 1 keyframes") for line in lines)
    assert not any("in no split" in line for line in lines)


def test_empty_or_missing_val_is_said_at_prepare(tmp_path):
    root = _splits(tmp_path, "v1.0-synth", {"train": ["a"], "val": []})
    assert "note: the val split (val) has no keyframe in this dataset" in split_lines(_records({"a": 2}), root,
                                                                                       "v1.0-synth")[-1]
    root = _splits(tmp_path / "x", "v1.0-synth", {"train": ["a"]})
    assert split_lines(_records({"a": 2}), root, "v1.0-synth")[-1].startswith("note: no 'val' split")
    lines = split_lines(_records({"a": 2}), str(tmp_path / "none"), "v1.0-custom")
    assert lines[0].startswith("splits: none (v1.0-custom is not a nuScenes version")


def test_versions_use_their_own_split_names(tmp_path):
    lines = split_lines(_records({"scene-0061": 2, "scene-0103": 3}), str(tmp_path), "v1.0-mini")
    assert lines[1:] == ["  mini_train (train): 1 scenes, 2 keyframes", "  mini_val (val): 1 scenes, 3 keyframes"]
    lines = split_lines(_records({"scene-0077": 2}), str(tmp_path), "v1.0-test")
    assert lines[1] == "  test (val): 1 scenes, 2 keyframes"
    assert lines[-1] == "note: v1.0-test has no annotations: `calico evaluate` writes the submission file only"


def test_prepare_prints_the_real_scenes_splits(real_root, tmp_path, capsys):
    assert main(["prepare", "--dataroot", str(real_root), "--version", "v1.0-mini", "--cache-dir",
                 str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "  mini_train (train): 0 scenes, 0 keyframes\n  mini_val (val): 1 scenes, 41 keyframes" in out


def test_prepare_prints_a_frame_split_of_the_real_scene(real_root, tmp_path, capsys):
    from calico.data.splits import SPLITS_DIR

    args = ["prepare", "--dataroot", str(real_root), "--version", "v1.0-mini", "--cache-dir", str(tmp_path / "c")]
    assert main(args + ["--set", f"data.splits_file={SPLITS_DIR / 'nuscenes_scene0916_frames.json'}"]) == 0
    out = capsys.readouterr().out
    assert ("  train: 1 scenes (1 in part), 30 keyframes\n  val: 1 scenes (1 in part), 8 keyframes\n"
            "  in no split, left out of sliced scenes: 3 keyframes of 1 scenes\n") in out
    assert "warning" not in out
    # a splits file that is not there fails before indexing, in one line naming it
    assert main(args + ["--set", f"data.splits_file={tmp_path / 'typo.json'}"]) == 1
    err = capsys.readouterr().err
    assert err == f"calico prepare: error: {tmp_path / 'typo.json'}: splits file (data.splits_file) does not exist\n"
