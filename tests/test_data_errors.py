"""Bad input never gives an opaque traceback: each case names the file and the problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from calico.cli import main
from calico.config import get_config
from calico.data.dataset import NuScenesDataset
from calico.data.pointcloud import load_pcd_bin
from calico.data.prepare import prepare
from calico.errors import DataError


def _mirror(src: Path, dst: Path) -> Path:
    """A writable copy of the scene: tables copied, sample files linked (so single files can be broken)."""
    shutil.copytree(src / "v1.0-mini", dst / "v1.0-mini")
    shutil.copytree(src / "maps", dst / "maps")
    for f in (src / "samples").rglob("*"):
        if f.is_file() and "RADAR" not in f.parts[-2]:
            t = dst / f.relative_to(src)
            t.parent.mkdir(parents=True, exist_ok=True)
            t.symlink_to(f)
    return dst


def _cfg(root: Path, tmp: Path):
    cfg = get_config("cpu")
    cfg.data.dataroot, cfg.data.version, cfg.data.cache_dir = str(root), "v1.0-mini", str(tmp / "cache")
    return cfg


def _first_lidar(root: Path) -> Path:
    return sorted((root / "samples" / "LIDAR_TOP").iterdir())[0]


def _replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def test_missing_dataroot_and_version(tmp_path, capsys):
    assert main(["prepare", "--dataroot", str(tmp_path / "nope"), "--version", "v1.0-mini"]) == 1
    assert "dataroot does not exist" in capsys.readouterr().err
    (tmp_path / "v1.0-trainval").mkdir()
    assert main(["prepare", "--dataroot", str(tmp_path), "--version", "v1.0-mini"]) == 1
    assert "version folder 'v1.0-mini' not found" in capsys.readouterr().err


def test_truncated_pcd_fails_or_skips(real_root, tmp_path):
    root = _mirror(real_root, tmp_path / "d")
    bad = _first_lidar(root)
    _replace(bad, bad.read_bytes()[:-7])
    with pytest.raises(DataError, match=r"not a multiple of 20") as exc:
        prepare(_cfg(root, tmp_path).data, progress=False)
    assert bad.name in str(exc.value) and "--skip-bad" in str(exc.value)
    index = prepare(_cfg(root, tmp_path).data, skip_bad=True, progress=False)
    # The first keyframe's cloud is also a sweep of the second keyframe: only the first sample goes, the
    # second loses that sweep (issue 18).
    assert len(index["records"]) == 40 and len(index["skipped_samples"]) == 1
    assert index["bad_sweeps_left_out"] == 1
    second = index["records"][0]
    assert all(not sw["path"].endswith(bad.name) for sw in second["sweeps"])
    assert [p for p, _ in index["bad_files"]] == [str(bad)]


def test_nan_and_empty_clouds(tmp_path):
    pts = np.ones((10, 5), np.float32)
    pts[3, 1] = np.nan
    f = tmp_path / "nan.pcd.bin"
    pts.tofile(f)
    with pytest.raises(DataError, match="NaN/Inf") as exc:
        load_pcd_bin(str(f))
    assert "nan.pcd.bin" in str(exc.value)
    assert len(load_pcd_bin(str(f), nonfinite="drop")) == 9
    e = tmp_path / "empty.pcd.bin"
    e.write_bytes(b"")
    with pytest.raises(DataError, match="empty file"):
        load_pcd_bin(str(e))


def test_unreadable_image_named(real_root, tmp_path):
    root = _mirror(real_root, tmp_path / "d")
    cfg = _cfg(root, tmp_path)
    prepare(cfg.data, progress=False)
    img = sorted((root / "samples" / "CAM_FRONT").iterdir())[0]
    _replace(img, b"\xff\xd8garbage")  # passes the magic check, fails decoding at load time
    ds = NuScenesDataset(cfg)
    i = next(k for k, r in enumerate(ds.records) if r["cams"]["CAM_FRONT"]["path"].endswith(img.name))
    with pytest.raises(DataError, match="unreadable image") as exc:
        ds[i]
    assert img.name in str(exc.value)
    img.unlink()
    with pytest.raises(DataError, match="image file does not exist"):
        prepare(cfg.data, progress=False)


def test_devkit_assertion_becomes_clear_error(real_root, tmp_path):
    root = _mirror(real_root, tmp_path / "d")
    shutil.rmtree(root / "maps")
    with pytest.raises(DataError, match="devkit refused the dataset: map mask"):
        prepare(_cfg(root, tmp_path).data, progress=False)


def test_dangling_token_named(real_root, tmp_path):
    root = _mirror(real_root, tmp_path / "d")
    table = root / "v1.0-mini" / "sample_annotation.json"
    anns = json.loads(table.read_text())
    anns[0]["instance_token"] = "deadbeef" * 4
    table.write_text(json.dumps(anns))
    with pytest.raises(DataError, match="token"):
        prepare(_cfg(root, tmp_path).data, progress=False)


def test_dataloader_worker_error_is_clean(real_root, tmp_path):
    import torch

    from calico.data.dataset import collate

    root = _mirror(real_root, tmp_path / "d")
    cfg = _cfg(root, tmp_path)
    prepare(cfg.data, progress=False)
    ds = NuScenesDataset(cfg, load_images=False)
    path = root / ds.records[0]["lidar_path"]
    _replace(path, path.read_bytes()[:-3])
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=1, collate_fn=collate)
    with pytest.raises(DataError) as exc:
        next(iter(loader))
    assert path.name in str(exc.value) and "not a multiple of 20" in str(exc.value)
