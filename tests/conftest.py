"""Shared fixtures: the real nuScenes scene from ../shared (skipped when absent) and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# CI puts ../shared beside the checkout; helper worktrees sit one level deeper.
REAL_SCENE = next((p / "shared" / "data" / "nuscenes-scene-0916" for p in (REPO.parent, REPO.parents[1])
                   if (p / "shared" / "data" / "nuscenes-scene-0916").exists()),
                  REPO.parent / "shared" / "data" / "nuscenes-scene-0916")

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def real_root() -> Path:
    if not (REAL_SCENE / "v1.0-mini" / "sample.json").exists():
        pytest.skip(f"real nuScenes scene not found at {REAL_SCENE}")
    return REAL_SCENE


@pytest.fixture(scope="session")
def real_cfg(real_root, tmp_path_factory):
    """A cpu Config pointing at the real scene with a private cache, prepared once per session."""
    from calico.config import get_config
    from calico.data.prepare import prepare

    cfg = get_config("cpu")
    cfg.data.dataroot = str(real_root)
    cfg.data.version = "v1.0-mini"
    cfg.data.cache_dir = str(tmp_path_factory.mktemp("cache0916"))
    prepare(cfg.data, progress=False)
    return cfg


def prepared_tiny_world(tmp_path_factory, name: str, samples_per_scene: int) -> tuple[Path, Path]:
    """A 2-scene synthetic world (train 1, val 1), ``samples_per_scene`` keyframes, 1 sweep, tiny images,
    indexed into its own cache; returns ``(dataroot, cache_dir)``. Module fixtures wrap it."""
    from calico.cli import main
    from calico.data.synth import generate

    root = tmp_path_factory.mktemp(name)
    generate(root / "data", scenes=2, samples_per_scene=samples_per_scene, sweeps=1, image_size=(16, 28),
             progress=False)
    cache = root / "cache"
    assert main(["prepare", "--dataroot", str(root / "data"), "--version", "v1.0-synth",
                 "--cache-dir", str(cache)]) == 0
    return root / "data", cache
