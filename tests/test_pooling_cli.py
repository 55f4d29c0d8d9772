"""`calico pool` on a tiny synthetic world (cache, resume, shards, evaluate, plot); synth ground labels;
the numba DBSCAN against sklearn; pooling on bad and huge input."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.cluster import DBSCAN

from calico.cli import main as calico_main
from calico.config import PoolingConfig
from calico.pooling import semantic_pooling
from calico.pooling.dbscan import dbscan


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """2 scenes x 2 keyframes, 1 sweep, tiny images, with per-point labels; prepared into its own cache."""
    from calico.data.synth import generate

    root = tmp_path_factory.mktemp("pool_world")
    generate(root / "data", scenes=2, samples_per_scene=2, sweeps=1, image_size=(16, 28), progress=False,
             labels=True)
    cache = root / "cache"
    assert calico_main(["prepare", "--dataroot", str(root / "data"), "--version", "v1.0-synth",
                        "--cache-dir", str(cache)]) == 0
    return root / "data", cache


def _pool(world, *extra):
    data, cache = world
    return calico_main(["pool", "--dataroot", str(data), "--version", "v1.0-synth", "--cache-dir", str(cache),
                        "--sweeps", "1", *extra])


def test_pool_cache_resume_and_shards(world, capsys):
    _, cache = world
    assert _pool(world, "--shard", "0/2") == 0
    (regions,) = (cache / "regions").iterdir()  # the folder of these settings
    first = sorted(p.name for p in regions.glob("*.npy"))
    assert len(first) == 2  # samples 0 and 2 of 4
    assert _pool(world, "--shard", "1/2") == 0
    files = sorted(p.name for p in regions.glob("*.npy"))
    assert len(files) == 4 and set(first) < set(files)  # the two shards cover all samples once
    stamps = {p.name: p.stat().st_mtime_ns for p in regions.glob("*.npy")}
    capsys.readouterr()
    assert _pool(world) == 0  # everything cached: nothing recomputed
    assert "4 of 4 samples already cached" in capsys.readouterr().out
    assert stamps == {p.name: p.stat().st_mtime_ns for p in regions.glob("*.npy")}
    arr = np.load(next(regions.glob("*.npy")))
    assert arr.ndim == 1 and arr.min() >= -1 and arr.max() >= 0  # some semantic-rich points


def test_pool_evaluate_and_plot(world, capsys, tmp_path):
    assert _pool(world, "--evaluate") == 0
    out = capsys.readouterr().out
    assert "| **overall** |" in out and "region purity" in out and "ms/frame" in out
    png = tmp_path / "regions.png"
    assert _pool(world, "--plot", "0", "--out", str(png)) == 0
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"


def test_pool_bad_shard(world, capsys):
    assert _pool(world, "--shard", "2/2") != 0
    assert "--shard 2/2: need 0 <= i < n" in capsys.readouterr().err


def test_synth_ground_labels_and_ground_mask(world):
    import json

    from calico.data.synth import ground_truth_labels
    from calico.data.synth.labels import GROUND
    from calico.pooling.ground import ground_mask

    data, _ = world
    sd = json.loads((data / "v1.0-synth" / "sample_data.json").read_text())
    f = next(r["filename"] for r in sd if r["is_key_frame"] and "LIDAR_TOP" in r["filename"])
    pts = np.fromfile(data / f, np.float32).reshape(-1, 5)
    lab = ground_truth_labels(data, f)
    assert lab.shape == (len(pts),) and (lab == GROUND).mean() > 0.2 and (lab >= 0).any()
    keep = np.hypot(pts[:, 0], pts[:, 1]) > 1.0
    g, _ = ground_mask(pts[keep, :3])
    truth = lab[keep] == GROUND
    assert (g & truth).sum() / (g | truth).sum() > 0.85  # ground IoU against what the rays hit


@pytest.mark.parametrize("seed", range(6))
def test_numba_dbscan_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 1500))
    xyz = rng.uniform(0, rng.uniform(2, 15), (n, 3))
    if seed % 2:
        xyz = np.round(xyz, 1)  # ties: many pairs exactly at a grid distance
    eps, m = float(rng.uniform(0.3, 1.2)), int(rng.integers(2, 10))
    ours = dbscan(xyz, eps, m)
    ref = DBSCAN(eps=eps, min_samples=m).fit(xyz)
    assert np.array_equal(ours, ref.labels_)  # same clusters, same numbering, same border choices
    core = np.zeros(n, bool)
    core[ref.core_sample_indices_] = True
    assert (ours[core] >= 0).all()


def test_numba_dbscan_huge_extent_equals_sklearn():
    # blobs kilometres apart: more BEV columns than the dense column table allows (binary-search path)
    rng = np.random.default_rng(7)
    centres = rng.uniform(-5000, 5000, (6, 3)) * [1, 1, 0.001]
    xyz = np.concatenate([c + rng.normal(0, 0.5, (300, 3)) for c in centres] + [rng.uniform(-1, 1, (50, 3))])
    assert ((xyz.max(0) - xyz.min(0))[:2] / (0.75 / np.sqrt(3))).prod() > 1 << 24
    assert np.array_equal(dbscan(xyz, 0.75, 5), DBSCAN(eps=0.75, min_samples=5).fit_predict(xyz))


def test_dbscan_rejects_bad_input():
    with pytest.raises(ValueError, match="non-finite"):
        dbscan(np.array([[0, 0, 0], [np.nan, 0, 0]], float))
    with pytest.raises(ValueError, match="eps"):
        dbscan(np.zeros((3, 3)), eps=0.0)
    with pytest.raises(ValueError, match="too large"):
        dbscan(np.array([[0, 0, 0], [1e17, 1e17, 1e17]], float), 0.1)


def test_two_million_points_finish(tmp_path):
    # 2 M points: a dense blob on one spot (all mutual neighbours) plus a spread cloud; must not hang
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.normal(0, 0.05, (1_000_000, 4)) + [5, 5, 0, 0],
                          rng.uniform(-60, 60, (1_000_000, 4)) * [1, 1, 0.05, 1]]).astype(np.float32)
    t = time.perf_counter()
    r = semantic_pooling(pts, PoolingConfig())
    assert time.perf_counter() - t < 60
    assert r.shape == (len(pts),) and r.dtype == np.int64
    # absurd but finite coordinates are semantic-less rather than an overflow
    pts[:10, 0] = 1e30
    r = semantic_pooling(pts[:5000], PoolingConfig())
    assert (r[:10] == -1).all()
