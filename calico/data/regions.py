"""On-disk region cache: ``<cache_dir>/regions/<settings hash>/<token>.npy`` plus a manifest of the settings.

Every setting the region ids depend on (the pooling config, and the loader's sweeps, ego crop and non-finite
policy, which decide the points) is hashed into the folder name: regions pooled with other settings live in
their own folder, are never read by a run with different settings, and are never deleted by another
``calico pool``. ``check_dataset`` validates a dataset's files (present, readable, one id per loader point);
``calico pool`` recomputes what fails it and ``calico pretrain`` runs it before step 1.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from calico.errors import DataError

MANIFEST = "manifest.json"


def cache_settings(cfg) -> dict[str, Any]:
    """Everything the cached regions of ``cfg`` (a ``calico.config.Config``) depend on."""
    return {"pooling": dataclasses.asdict(cfg.pooling), "sweeps": int(cfg.data.sweeps),
            "ego_crop": float(cfg.data.ego_crop), "nonfinite_points": cfg.data.nonfinite_points}


def config_hash(settings: dict[str, Any]) -> str:
    """Short hash of ``cache_settings(cfg)``: the name of the settings' region folder."""
    blob = json.dumps(settings, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def regions_root(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / "regions"


def regions_dir(cache_dir: str | Path, settings: dict[str, Any]) -> Path:
    """The folder holding the regions pooled with ``settings`` (it may not exist yet)."""
    return regions_root(cache_dir) / config_hash(settings)


def open_cache(cache_dir: str | Path, settings: dict[str, Any]) -> Path:
    """Create the settings' region folder and its manifest; other settings' folders are left alone."""
    d = regions_dir(cache_dir, settings)
    mf = d / MANIFEST
    try:
        d.mkdir(parents=True, exist_ok=True)
        if not mf.is_file():
            tmp = d / f".{MANIFEST}.tmp{os.getpid()}"
            tmp.write_text(json.dumps({"config_hash": d.name, **settings}, indent=1, sort_keys=True))
            os.replace(tmp, mf)
    except OSError as exc:
        raise DataError(f"cannot write the region cache ({exc.strerror or exc}); pass a writable --cache-dir",
                        str(d)) from exc
    return d


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = tuple(v) if isinstance(v, list) else v
    return out


def other_settings(cache_dir: str | Path, settings: dict[str, Any]) -> str:
    """'' or a note naming the nearest cached settings and how they differ (e.g. ``pooling.eps=3.0 (run: 0.75)``)."""
    root = regions_root(cache_dir)
    want = _flat(settings)
    best: tuple[int, str, list[str]] | None = None
    for mf in sorted(root.glob(f"*/{MANIFEST}")) if root.is_dir() else []:
        try:
            have = _flat({k: v for k, v in json.loads(mf.read_text()).items() if k != "config_hash"})
        except (OSError, ValueError):
            continue
        diff = [f"{k if k.startswith('pooling.') else 'data.' + k}={have.get(k)!r} (this run: {want.get(k)!r})"
                for k in sorted(set(want) | set(have)) if have.get(k) != want.get(k)]
        if diff and (best is None or len(diff) < best[0]):
            best = (len(diff), mf.parent.name, diff)
    if best is None:
        return ""
    shown = ", ".join(best[2][:4]) + (f", ... (+{len(best[2]) - 4})" if len(best[2]) > 4 else "")
    return f"regions are cached only for other settings (nearest: {root / best[1]}: {shown}); pass --set to match"


def save_regions(folder: str | Path, token: str, regions: np.ndarray) -> None:
    """Write atomically (tmp + rename), so an interrupted run never leaves a truncated file."""
    d = Path(folder)
    tmp = d / f".{token}.tmp{os.getpid()}.npy"
    np.save(tmp, regions.astype(np.int32))
    os.replace(tmp, d / f"{token}.npy")


def has_regions(folder: str | Path, token: str) -> bool:
    return (Path(folder) / f"{token}.npy").is_file()


def check_file(folder: str | Path, token: str, num_points: int | None = None) -> str | None:
    """None when ``<folder>/<token>.npy`` is a readable 1-D integer array (of ``num_points`` entries when
    given); else the problem in a few words."""
    path = Path(folder) / f"{token}.npy"
    if not path.is_file():
        return "missing"
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        return f"unreadable ({exc})"
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        return f"not a 1-D integer array ({arr.dtype}, shape {arr.shape})"
    if num_points is not None and len(arr) != num_points:
        return f"{len(arr)} region ids but the loader gives {num_points} points"
    return None


def load_regions(folder: str | Path, token: str, num_points: int) -> np.ndarray | None:
    """Cached region ids (int64, length ``num_points``) of a sample, or None when not cached.

    Raises DataError naming the file when it is unreadable or its length differs from the loader's points.
    """
    path = Path(folder) / f"{token}.npy"
    if not path.is_file():
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"unreadable region cache ({exc}); re-run `calico pool`", str(path)) from exc
    if arr.ndim != 1 or len(arr) != num_points:
        raise DataError(f"region cache has {arr.shape} entries but the loader gives {num_points} points; "
                        "re-run `calico pool` (it recomputes bad files)", str(path))
    return arr.astype(np.int64)


class _Checker:
    """``check[i] -> (path, problem or None)`` for sample ``i`` (a map-style dataset for a DataLoader)."""

    def __init__(self, dataset, folder: Path, lengths: bool):
        self.ds, self.folder, self.lengths = dataset, folder, lengths

    def __len__(self) -> int:
        return len(self.ds.records)

    def __getitem__(self, i: int) -> tuple[str, str | None]:
        token = self.ds.records[i]["token"]
        n = len(self.ds.load_points(i)) if self.lengths and has_regions(self.folder, token) else None
        return str(self.folder / f"{token}.npy"), check_file(self.folder, token, n)


def check_dataset(dataset, lengths: bool = True, num_workers: int = 0) -> tuple[Path, list[tuple[str, str]]]:
    """The dataset's region folder and its bad files ``[(path, problem)]``: missing, unreadable or (with
    ``lengths``: loads every sample's points, on ``num_workers`` DataLoader workers) of another length than
    the loader's points."""
    from torch.utils.data import DataLoader

    folder = regions_dir(dataset.cache, cache_settings(dataset.cfg))
    if not folder.is_dir():
        return folder, [(str(folder), "missing")]
    checker = _Checker(dataset, folder, lengths)
    results = (DataLoader(checker, batch_size=None, num_workers=num_workers) if num_workers > 0
               else (checker[i] for i in range(len(checker))))
    return folder, [(path, why) for path, why in results if why]
