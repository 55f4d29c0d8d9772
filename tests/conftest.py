"""Shared fixtures: the real nuScenes scene from ../shared (skipped when absent) and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
REAL_SCENE = REPO.parent / "shared" / "data" / "nuscenes-scene-0916"

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
