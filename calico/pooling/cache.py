"""On-disk region cache: ``<cache_dir>/regions/<token>.npy`` plus a manifest that detects stale caches."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from calico.data.errors import DataError

MANIFEST = "manifest.json"


def config_hash(pooling_cfg, sweeps: int) -> str:
    """Short hash of everything the cached regions depend on (pooling config and sweep count)."""
    blob = json.dumps({"pooling": dataclasses.asdict(pooling_cfg), "sweeps": sweeps}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def regions_dir(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / "regions"


def open_cache(cache_dir: str | Path, pooling_cfg, sweeps: int) -> Path:
    """Create (or validate) the region folder; a manifest written by another config empties it."""
    d = regions_dir(cache_dir)
    d.mkdir(parents=True, exist_ok=True)
    want = {"config_hash": config_hash(pooling_cfg, sweeps), "sweeps": sweeps,
            "pooling": dataclasses.asdict(pooling_cfg)}
    mf = d / MANIFEST
    if mf.is_file():
        try:
            have = json.loads(mf.read_text())
        except json.JSONDecodeError:
            have = {}
        if have.get("config_hash") != want["config_hash"]:
            for f in d.glob("*.npy"):  # stale: computed with other settings
                f.unlink()
    mf.write_text(json.dumps(want, indent=1))
    return d


def save_regions(cache_dir: str | Path, token: str, regions: np.ndarray) -> None:
    """Write atomically (tmp + rename), so an interrupted run never leaves a truncated file."""
    d = regions_dir(cache_dir)
    tmp = d / f".{token}.tmp.npy"
    np.save(tmp, regions.astype(np.int32))
    os.replace(tmp, d / f"{token}.npy")


def has_regions(cache_dir: str | Path, token: str) -> bool:
    return (regions_dir(cache_dir) / f"{token}.npy").is_file()


def load_regions(cache_dir: str | Path, token: str, num_points: int) -> np.ndarray | None:
    """Cached region ids (int64, length ``num_points``) of a sample, or None when not cached.

    Raises DataError naming the file when it is unreadable or its length differs from the loader's points.
    """
    path = regions_dir(cache_dir) / f"{token}.npy"
    if not path.is_file():
        return None
    try:
        arr = np.load(path)
    except (ValueError, OSError) as exc:
        raise DataError(f"unreadable region cache ({exc}); re-run `calico pool`", str(path)) from exc
    if arr.ndim != 1 or len(arr) != num_points:
        raise DataError(f"region cache has {arr.shape} entries but the loader gives {num_points} points; "
                        "re-run `calico pool` (sweeps or crop changed?)", str(path))
    return arr.astype(np.int64)
