"""Issue 18's fault list: every bad input and fault gets a clear one-line answer and loses nothing.

Each test reproduces one trial of the fault-injection run (it failed before the fix) and checks the answer.
"""

from __future__ import annotations

import json

import pytest
from conftest import prepared_tiny_world

from calico.cli import main
from calico.config import get_config, validate_config


# ---------------------------------------------------------------------------------- config validation
@pytest.mark.parametrize("override, key", [
    ("data.sweeps=-1", "data.sweeps"), ("data.sweeps=50", "data.sweeps"),
    ("finetune.fraction=2", "finetune.fraction"), ("finetune.fraction=0", "finetune.fraction"),
    ("finetune.lr=-1", "finetune.lr"), ("finetune.batch_size=0", "finetune.batch_size"),
    ("pretrain.batch_size=0", "pretrain.batch_size"), ("finetune.schedule=bogus", "finetune.schedule"),
    ("pretrain.schedule=bogus", "pretrain.schedule"), ("model.modality=X", "model.modality"),
    ("model.voxel_size=(0.2, 0.2)", "model.voxel_size"), ("pretrain.sampling=random", "pretrain.sampling"),
    ("pretrain.features=neck", "pretrain.features"), ("finetune.pretrained_lr_mult=-0.1", "finetune.pretrained_lr_mult"),
    ("augment.flip_prob=1.5", "augment.flip_prob"), ("augment.scale_range=(1.1, 0.9)", "augment.scale_range"),
    ("augment.rot_range=-5", "augment.rot_range"), ("augment.paste_max=-1", "augment.paste_max"),
    ("augment.translate_std=-1", "augment.translate_std"), ("pooling.eps=0", "pooling.eps"),
    ("data.point_cloud_range=(1.0, -1.0, -5.0, -1.0, 1.0, 3.0)", "data.point_cloud_range"),
    ("seed=-1", "seed"),
])
def test_config_rejects_out_of_range(override, key):
    with pytest.raises(ValueError) as exc:
        get_config("cpu", [override])
    msg = str(exc.value)
    assert msg.startswith(key + "=") and "must be" in msg and "\n" not in msg


def test_config_presets_and_dumps_validate(tmp_path):
    from calico.config import SCHEDULES as CONFIG_SCHEDULES
    from calico.config import config_from_dict
    from calico.engine.optim import SCHEDULES

    assert CONFIG_SCHEDULES == SCHEDULES
    for name in ("paper", "cpu"):
        cfg = get_config(name)
        assert validate_config(cfg) is cfg
        d = cfg.to_dict()
        d["finetune"]["lr"] = 0.0
        with pytest.raises(ValueError, match=r"^finetune.lr=0.0 is invalid: must be a number > 0$"):
            config_from_dict(d)


def test_cli_config_errors_are_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    for override in ("finetune.fraction=2", "finetune.lr=-1", "finetune.batch_size=0", "model.modality=X",
                     "model.voxel_size=(0.2,0.2)", "finetune.schedule=bogus"):
        assert main(["finetune", "--config", "cpu", "--dataroot", str(tmp_path), "--out", str(out),
                     "--set", override]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("calico finetune: error: config: " + override.split("=")[0])
        assert len(err.splitlines()) == 1
    assert not out.exists()  # nothing created for a refused config
    assert main(["pool", "--dataroot", str(tmp_path), "--sweeps", "-1"]) == 1
    assert "--sweeps: data.sweeps=-1 is invalid: must be an integer >= 0 and <= 10" in capsys.readouterr().err
    assert main(["pool", "--dataroot", str(tmp_path), "--sweeps", "50"]) == 1
    assert "data.sweeps=50 is invalid" in capsys.readouterr().err
    assert main(["prepare", "--dataroot", str(tmp_path), "--max-sweeps", "-1"]) == 1
    assert "--max-sweeps -1 is invalid: must be an integer >= 0" in capsys.readouterr().err


def test_malformed_config_json_names_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json: not a readable config\.json"):
        get_config(str(bad))
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"bad\.json: not a config\.json"):
        get_config(str(bad))
    bad.write_text(json.dumps({"finetune": {"fraction": 3}}))
    with pytest.raises(ValueError, match=r"bad\.json: finetune\.fraction=3"):
        get_config(str(bad))
    assert main(["finetune", "--config", str(bad), "--dataroot", str(tmp_path), "--out", str(tmp_path / "r")]) == 1
    assert "bad.json" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- synthetic world
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """2 scenes x 2 keyframes, 1 sweep, tiny images; prepared once (tests copy the cache)."""
    return prepared_tiny_world(tmp_path_factory, "faults_world", 2)


def _cache(world, tmp_path):
    """A private copy of the prepared cache (index and map masks, no regions)."""
    import shutil

    dst = tmp_path / "cache"
    shutil.copytree(world[1], dst, ignore=shutil.ignore_patterns("regions"))
    return dst


def _pool(world, cache, *extra):
    return main(["pool", "--dataroot", str(world[0]), "--version", "v1.0-synth", "--cache-dir", str(cache),
                 "--sweeps", "1", *extra])


def _pretrain(world, cache, out, *sets):
    return main(["pretrain", "--stage", "prc", "--config", "cpu", "--dataroot", str(world[0]), "--version",
                 "v1.0-synth", "--out", str(out), "--split", "all", "--max-steps", "1",
                 "--set", f"data.cache_dir={cache}", "data.sweeps=1", "data.num_workers=0", *sets])


def _region_files(cache):
    return sorted(p for p in (cache / "regions").glob("*/*.npy"))


# ------------------------------------------------------------------------------------------ region cache
def test_pool_recomputes_corrupt_and_wrong_length_files(world, tmp_path, capsys):
    import numpy as np

    cache = _cache(world, tmp_path)
    assert _pool(world, cache) == 0
    files = _region_files(cache)
    good = {f: f.read_bytes() for f in files}
    files[0].write_bytes(b"\x93NUMPY garbage")  # corrupt
    np.save(files[1], np.zeros(7, np.int32))  # wrong length
    capsys.readouterr()
    assert _pool(world, cache) == 0
    out = capsys.readouterr().out
    assert "2 of 4 samples already cached" in out and "2 cached file(s) invalid, recomputing" in out
    assert {f: f.read_bytes() for f in files} == good  # recomputed, identical


def test_pretrain_checks_the_region_cache_before_step_one(world, tmp_path, capsys):
    import numpy as np

    cache = _cache(world, tmp_path)
    assert _pool(world, cache) == 0
    files = _region_files(cache)
    files[2].unlink()  # a deleted file: named before training starts
    capsys.readouterr()
    assert _pretrain(world, cache, tmp_path / "run") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and files[2].name in err and "missing" in err and "calico pool" in err
    assert not (tmp_path / "run").exists()
    from calico.data.dataset import NuScenesDataset
    from calico.data.regions import check_dataset

    cfg = get_config("cpu", [f"data.dataroot={world[0]}", "data.version=v1.0-synth", f"data.cache_dir={cache}",
                             "data.sweeps=1"])
    ds = NuScenesDataset(cfg, load_images=False)
    assert check_dataset(ds, num_workers=2)[1] == check_dataset(ds)[1] == [(str(files[2]), "missing")]
    assert _pool(world, cache) == 0
    np.save(files[0], np.zeros(5, np.int32))  # wrong length
    capsys.readouterr()
    assert _pretrain(world, cache, tmp_path / "run") == 1
    err = capsys.readouterr().err
    assert files[0].name in err and "5 region ids but the loader gives" in err


def test_pool_settings_get_their_own_folder_and_pretrain_never_mixes_them(world, tmp_path, capsys):
    cache = _cache(world, tmp_path)
    assert _pool(world, cache, "--set", "pooling.eps=3.0") == 0
    first = {f: f.stat().st_mtime_ns for f in _region_files(cache)}
    assert len(first) == 4
    # pretrain with the default eps: refuses, naming the difference
    capsys.readouterr()
    assert _pretrain(world, cache, tmp_path / "run") == 1
    err = capsys.readouterr().err
    assert "none are cached for these settings" in err and "pooling.eps=3.0 (this run: 0.75)" in err
    # a second pool with other settings keeps the first one's files
    assert _pool(world, cache) == 0
    assert len(_region_files(cache)) == 8
    assert {f: f.stat().st_mtime_ns for f in first} == first
    # and the matching --set reads the eps=3.0 folder
    from calico.data.dataset import NuScenesDataset

    cfg = get_config("cpu", [f"data.dataroot={world[0]}", "data.version=v1.0-synth", f"data.cache_dir={cache}",
                             "data.sweeps=1", "pooling.eps=3.0"])
    ds = NuScenesDataset(cfg, load_images=False)
    import numpy as np

    folder = next(f.parent for f in first)
    assert np.array_equal(ds[0]["regions"], np.load(folder / f"{ds.records[0]['token']}.npy"))


def test_pretrain_runs_once_the_cache_is_repaired(world, tmp_path):
    import numpy as np

    cache = _cache(world, tmp_path)
    assert _pool(world, cache) == 0
    np.save(_region_files(cache)[0], np.zeros(5, np.int32))
    assert _pretrain(world, cache, tmp_path / "run") == 1
    assert _pool(world, cache) == 0  # repairs it (no loop)
    assert _pretrain(world, cache, tmp_path / "run") == 0
    assert (tmp_path / "run" / "last.pt").is_file()


# --------------------------------------------------------------------------------------------- --init
def test_load_init_refuses_a_checkpoint_that_matches_nothing(tmp_path):
    import sys
    from pathlib import Path

    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from engine_toy import ToyModel

    from calico.engine import CheckpointError, load_init

    torch.save({"parts": {"lidar_backbone": {"other.weight": torch.zeros(2)}}}, tmp_path / "a.pt")
    dst = ToyModel()
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"a\.pt: no tensor matches this model .*--init-partial"):
        load_init(dst, tmp_path / "a.pt", verbose=False)
    assert load_init(dst, tmp_path / "a.pt", verbose=False, partial=True).parts["lidar_backbone"].loaded == 0
    assert all(torch.equal(before[k], v) for k, v in dst.state_dict().items())
    # one named part loads nothing while another loads: refused too
    src = ToyModel()
    torch.save({"parts": {"lidar_backbone": {"x": torch.zeros(1)}, "det_head": src.det_head.state_dict()}},
               tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match=r"part lidar_backbone loads 0 of its"):
        load_init(ToyModel(), tmp_path / "b.pt", verbose=False)
    with pytest.raises(CheckpointError, match=r"no tensor matches this model"):  # the named part: nothing
        load_init(ToyModel(), tmp_path / "b.pt", parts=["lidar_backbone"], verbose=False)
    load_init(ToyModel(), tmp_path / "b.pt", verbose=False, partial=True)


def _finetune(world, cache, out, *extra):
    return main(["finetune", "--config", "cpu", "--dataroot", str(world[0]), "--version", "v1.0-synth",
                 "--out", str(out), "--modality", "L", "--no-eval", "--set", f"data.cache_dir={cache}",
                 "data.sweeps=1", "data.num_workers=0", *extra])


def test_finetune_init_matching_nothing_is_refused_unless_partial(world, tmp_path, capsys):
    import torch

    cache = _cache(world, tmp_path)
    torch.save({"parts": {"lidar_backbone": {"conv.weight": torch.zeros(3)}}}, tmp_path / "x.pt")
    assert _finetune(world, cache, tmp_path / "run", "--max-steps", "1", "--init", str(tmp_path / "x.pt")) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "x.pt: no tensor matches this model" in err
    assert _finetune(world, cache, tmp_path / "run", "--max-steps", "1", "--init", str(tmp_path / "x.pt"),
                     "--init-partial") == 0


# ------------------------------------------------------------------------------- no code from data files
class _Evil:
    """Unpickling this creates a marker file: proof that code from a data file ran."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_index_is_never_unpickled(world, tmp_path, capsys):
    import pickle

    import numpy as np

    from calico.data.prepare import INDEX_FORMAT, load_index
    from calico.errors import DataError

    cache = tmp_path / "cache"
    cache.mkdir()
    marker = tmp_path / "pwned"
    _Evil.marker = str(marker)
    (cache / "index.pkl").write_bytes(pickle.dumps({"format": 1, "x": _Evil()}))  # an old/hostile index
    cfg = get_config("cpu", [f"data.dataroot={world[0]}", "data.version=v1.0-synth", f"data.cache_dir={cache}"])
    index = load_index(cfg.data)  # rebuilt, with a message; the pickle is not read
    assert not marker.exists() and index["format"] == INDEX_FORMAT == 2 and len(index["records"]) == 4
    assert "old-format index (a pickle, not read" in capsys.readouterr().err
    assert (cache / "index.json").is_file() and (cache / "index.npz").is_file()
    assert isinstance(index["records"][0]["lidar2ego"], np.ndarray)
    # a hostile npz (an object array needs pickle) is refused, not run
    with np.load(cache / "index.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["g0"] = np.array([_Evil()], dtype=object)
    np.savez(cache / "index.npz", **arrays)
    with pytest.raises(DataError, match=r"index\.json: unreadable index"):
        load_index(cfg.data)
    assert not marker.exists()
    # an index of an older format is rebuilt with a message
    (cache / "index.json").write_text(json.dumps({"format": 1}))
    assert load_index(cfg.data)["format"] == 2
    assert "index format 1 != 2; rebuilding" in capsys.readouterr().err
    with pytest.raises(DataError, match="index format 1 != 2"):
        (cache / "index.json").write_text(json.dumps({"format": 1}))
        load_index(cfg.data, auto_prepare=False)


def test_every_loader_reads_data_only():
    """No pickle.load / allow_pickle=True / weights_only=False anywhere in the package."""
    import re
    from pathlib import Path

    import calico

    hits = []
    for f in Path(calico.__file__).parent.rglob("*.py"):
        text = f.read_text()
        for bad in ("pickle.load", "allow_pickle=True", "weights_only=False"):
            if bad in text:
                hits.append(f"{f.name}: {bad}")
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            if "weights_only=True" not in call and "..." not in call:
                hits.append(f"{f.name}: {call}")
    assert not hits


# ------------------------------------------------------------------------------------ resume and run files
def test_resume_never_loses_the_runs_history(world, tmp_path, capsys):
    cache = _cache(world, tmp_path)
    run = tmp_path / "run"
    assert _finetune(world, cache, run, "--max-steps", "1") == 0
    record = json.loads((run / "run.json").read_text())
    # resume on a finished run: says so, appends to the history, keeps the original record
    capsys.readouterr()
    assert _finetune(world, cache, run, "--max-steps", "1", "--resume") == 0
    out = capsys.readouterr().out
    assert "was already complete (1 steps); checkpoint" in out and "checkpoint None" not in out
    after = json.loads((run / "run.json").read_text())
    assert after["argv"] == record["argv"] and after["time"] == record["time"]
    assert [h["event"] for h in after["history"]] == ["resume"]
    # config.json deleted: --resume refuses (it would train with the command line's settings)
    (run / "config.json").unlink()
    assert _finetune(world, cache, run, "--max-steps", "2", "--resume") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "config.json: missing, cannot resume" in err
    # and a fresh start into that folder refuses too: run.json and the checkpoints are kept
    assert _finetune(world, cache, run, "--max-steps", "2") == 1
    assert "already holds a run with checkpoints" in capsys.readouterr().err
    assert json.loads((run / "run.json").read_text()) == after and not (run / "config.json").exists()


def test_zero_epochs_says_nothing_to_train(world, tmp_path, capsys):
    cache = _cache(world, tmp_path)
    assert _finetune(world, cache, tmp_path / "run", "--set", "finetune.epochs=0") == 0
    out = capsys.readouterr().out
    assert "nothing to train" in out and "checkpoint None" not in out


def test_disk_full_while_writing_a_checkpoint(tmp_path, monkeypatch):
    import errno

    import torch

    from calico.engine import CheckpointError, save_atomic
    from calico.engine import checkpoint as ckpt_mod

    path = save_atomic({"w": torch.ones(4)}, tmp_path / "last.pt")
    good = path.read_bytes()

    def full(obj, f):
        f.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", full)
    with pytest.raises(CheckpointError) as exc:
        save_atomic({"w": torch.ones(250_000)}, path)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"{tmp_path}: cannot write checkpoint last.pt (No space left")
    assert "needs about 1.0 MB" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"] and path.read_bytes() == good


# ------------------------------------------------------------------------------------- real-data defaults
def test_finetune_without_map_expansion_turns_segmentation_off(real_cfg, tmp_path, capsys):
    """The real scene has no map expansion: the default (with_seg) fine-tune trains detection only."""
    rc = main(["finetune", "--config", "cpu", "--dataroot", real_cfg.data.dataroot, "--version", "v1.0-mini",
               "--out", str(tmp_path / "run"), "--modality", "L", "--max-steps", "1", "--no-eval",
               "--set", f"data.cache_dir={real_cfg.data.cache_dir}", "finetune.train_split=mini_val",
               "data.num_workers=0"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "has no map ground truth (nuScenes map expansion): map segmentation is off" in err
    rc = main(["finetune", "--config", "cpu", "--dataroot", real_cfg.data.dataroot, "--version", "v1.0-mini",
               "--out", str(tmp_path / "run2"), "--modality", "L", "--max-steps", "1", "--no-eval",
               "--set", f"data.cache_dir={real_cfg.data.cache_dir}", "finetune.train_split=mini_val",
               "model.with_det=false"])
    assert rc == 1 and "nothing to train" in capsys.readouterr().err


# ------------------------------------------------------------------------------ folders that cannot be used
def test_out_that_is_a_file_or_under_a_file(world, tmp_path, capsys):
    cache = _cache(world, tmp_path)
    assert _pool(world, cache) == 0
    capsys.readouterr()
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in (afile, afile / "run"):
        assert _finetune(world, cache, out, "--max-steps", "1") == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith(f"calico finetune: error: --out {out}: ")
        assert _pretrain(world, cache, out, "--set", "pretrain.epochs=1") == 1
        assert f"--out {out}: " in capsys.readouterr().err
        for cmd in (["evaluate", "--ckpt", str(tmp_path / "none.pt"), "--split", "val"],
                    ["robustness", "--ckpt", str(tmp_path / "none.pt")]):
            assert main([*cmd, "--dataroot", str(world[0]), "--out", str(out)]) == 1
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and f"--out {out}: " in err, err
    assert afile.read_text() == "x"


def test_cache_dir_that_is_a_file(world, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["prepare", "--dataroot", str(world[0]), "--version", "v1.0-synth", "--cache-dir", str(afile)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "afile: cannot create the cache folder" in err
    assert _pool(world, afile) == 1
    assert "afile: cannot create the cache folder" in capsys.readouterr().err


def test_missing_dataroot_leaves_no_empty_cache_folder(tmp_path, monkeypatch, capsys):
    from calico.config import DataConfig
    from calico.data.paths import cache_dir
    from calico.errors import DataError

    monkeypatch.setenv("CALICO_CACHE", str(tmp_path / "usercache"))
    with pytest.raises(DataError, match="dataroot does not exist"):
        cache_dir(DataConfig(dataroot=str(tmp_path / "nope")))
    assert main(["pool", "--dataroot", str(tmp_path / "nope")]) == 1
    assert "dataroot does not exist" in capsys.readouterr().err
    assert not (tmp_path / "usercache").exists()


def test_evaluate_max_samples_zero(tmp_path, capsys):
    assert main(["evaluate", "--ckpt", str(tmp_path / "x.pt"), "--dataroot", str(tmp_path), "--split", "val",
                 "--out", str(tmp_path / "ev"), "--max-samples", "0"]) == 1
    assert "--max-samples 0: must be >= 1" in capsys.readouterr().err


def test_evaluate_with_another_configs_checkpoint_says_so_in_one_line():
    from calico.errors import CalicoError
    from calico.eval.cli import build_from_checkpoint
    from calico.models import build_model

    small = get_config("cpu", ["model.modality=L", "model.lidar_channels=16", "model.with_seg=false"])
    other = get_config("cpu", ["model.modality=L+C"])
    ckpt = {"model": build_model(small.model, small.data).state_dict()}
    with pytest.raises(CalicoError) as exc:
        build_from_checkpoint(ckpt, other, "run/last.pt")
    msg = str(exc.value)
    assert "\n" not in msg and len(msg) < 1200, msg
    assert msg.startswith("run/last.pt: weights do not match the model built from the config (trained with another")
    assert "shape mismatches (first: " in msg and "missing (first: " in msg


# ------------------------------------------------------------------------------------------ images
def _world_copy(world, tmp_path):
    import shutil

    dst = tmp_path / "data"
    shutil.copytree(world[0], dst, ignore=shutil.ignore_patterns(".calico"))
    return dst


def test_prepare_decodes_images_truncated_after_the_header(world, tmp_path, capsys):
    data = _world_copy(world, tmp_path)
    img = sorted((data / "samples" / "CAM_BACK").glob("*.jpg"))[1]
    raw = img.read_bytes()
    img.write_bytes(raw[: len(raw) // 2])  # valid header, truncated scan
    assert main(["prepare", "--dataroot", str(data), "--version", "v1.0-synth", "--cache-dir",
                 str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err
    assert f"{img}: cannot decode image" in err and "truncated" in err.lower()


def test_image_of_another_size_than_its_calibration(world, tmp_path):
    import numpy as np
    from PIL import Image

    from calico.data.dataset import NuScenesDataset
    from calico.errors import DataError

    data = _world_copy(world, tmp_path)
    cfg = get_config("cpu", [f"data.dataroot={data}", "data.version=v1.0-synth", "data.sweeps=1",
                             f"data.cache_dir={tmp_path / 'cache'}"])
    ds = NuScenesDataset(cfg, load_images=True, with_regions=False)
    want = ds.load_cameras(0)["intrinsics"]
    img = data / ds.records[0]["cams"]["CAM_FRONT"]["path"]
    with Image.open(img) as im:
        w, h = im.size
        im.resize((w * 2, h * 2)).save(img)  # the same view at twice the calibration's size
    with pytest.warns(UserWarning, match=rf"image is {2 * w}x{2 * h} but its calibration is for {w}x{h} "
                                         r"images: intrinsics scaled"):
        got = ds.load_cameras(0)["intrinsics"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    with Image.open(img) as im:
        im.resize((w * 2, h)).save(img)  # another aspect ratio: refused
    with pytest.raises(DataError, match=rf"{img.name}: image is {2 * w}x{h} but its calibration .* aspect"):
        ds.load_cameras(0)


# ------------------------------------------------------------------------------------------ tables
@pytest.mark.parametrize("table, content, expect", [
    ("calibrated_sensor", "drop_translation", "table calibrated_sensor.json row {token!r} has no translation"),
    ("sample_annotation", "drop_translation", "table sample_annotation.json row {token!r} has no translation"),
    ("calibrated_sensor", {"a": 1}, "table calibrated_sensor.json is a JSON dict, not a list of rows"),
    ("ego_pose", [1, 2], "table ego_pose.json row 0 is not an object with a 'token': 1"),
])
def test_tables_of_the_wrong_shape_are_named(world, tmp_path, capsys, table, content, expect):
    data = _world_copy(world, tmp_path)
    path = data / "v1.0-synth" / f"{table}.json"
    token = None
    if content == "drop_translation":
        rows = json.loads(path.read_text())
        token = rows[0]["token"]
        del rows[0]["translation"]
        content = rows
    path.write_text(json.dumps(content))
    assert main(["prepare", "--dataroot", str(data), "--version", "v1.0-synth", "--cache-dir",
                 str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("calico prepare: error: ") and expect.format(token=token) in err, err


def test_pool_plot_of_a_cloud_with_no_points(tmp_path):
    from types import SimpleNamespace

    import numpy as np

    from calico.errors import CalicoError
    from calico.pooling.plot import plot_sample

    ds = SimpleNamespace(records=[{"token": "tok", "scene_name": "s", "gt_boxes": np.zeros((0, 9), np.float32)}],
                         load_points=lambda i: np.zeros((0, 5), np.float32), cfg=get_config("cpu"),
                         index_of=lambda sample: int(sample))  # NuScenesDataset.index_of: token or index
    png = plot_sample(ds, "0", tmp_path / "p.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(CalicoError, match="cannot write the picture"):
        plot_sample(ds, "0", tmp_path / "afile" / "p.png")


def test_out_in_a_read_only_folder(tmp_path, monkeypatch):
    """(Tests run as root, where chmod does not stop writes: the refused write is simulated.)"""
    import errno
    from pathlib import Path

    from calico.errors import CalicoError
    from calico.utils.runinfo import writable_dir

    def refuse(self, data):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_bytes", refuse)
    with pytest.raises(CalicoError, match=r"^--out .*ro: cannot create or write this folder \(Permission denied\)$"):
        writable_dir(tmp_path / "ro")


def _load_index_in_child(cfg_data, queue):  # module level: picklable for multiprocessing
    from calico.data.prepare import load_index

    try:
        queue.put(("ok", load_index(cfg_data)["path"]))
    except Exception as exc:  # noqa: BLE001 - the parent asserts on it
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def test_parallel_jobs_build_the_index_once(world, tmp_path, monkeypatch):
    """`calico study --jobs 2` starts two runs on a cache with a stale index: both used to rebuild it at once,
    and one read an index.npz of the other writer ('belongs to another index.json'). Now one builds, the
    others wait and read what it wrote."""
    import json
    import multiprocessing as mp

    import calico.data.prepare as prep
    from calico.config import get_config

    cache = _cache(world, tmp_path)
    (cache / "index.json").write_text(json.dumps({"format": 1}))  # stale: every job wants to rebuild
    cfg = get_config("cpu", [f"data.dataroot={world[0]}", "data.version=v1.0-synth", f"data.cache_dir={cache}"])
    builds, real_prepare = tmp_path / "builds.txt", prep.prepare

    def counted_prepare(*args, **kwargs):  # inherited by the forked children
        with open(builds, "a") as fh:
            fh.write("build\n")
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(prep, "prepare", counted_prepare)
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_load_index_in_child, args=(cfg.data, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(kind == "ok" for kind, _ in results), results
    assert builds.read_text().count("build") == 1
    assert prep.read_index(cache)["format"] == prep.INDEX_FORMAT
