"""Where derived files (index, pooled regions, map masks) live for a dataset.

Datasets are often read-only (a shared mount), so derived files go to ``cfg.cache_dir`` when set,
else ``<dataroot>/.calico/<version>`` when the dataroot is writable, else a per-user cache keyed by the
dataroot's absolute path.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from calico.config import DataConfig
from calico.errors import DataError


def cache_dir(data: DataConfig, create: bool = True) -> Path:
    """The writable folder for this dataset's derived files (created on demand)."""
    if data.cache_dir:
        path = Path(data.cache_dir).expanduser()
    else:
        root = Path(data.dataroot).expanduser().resolve()
        if create and not root.is_dir():  # no cache folder for a dataset that is not there
            raise DataError("dataroot does not exist or is not a folder", str(root))
        if os.access(root, os.W_OK):
            path = root / ".calico" / data.version
        else:
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", root.name)[:40]
            digest = hashlib.sha1(str(root).encode()).hexdigest()[:8]
            base = Path(os.environ.get("CALICO_CACHE", Path.home() / ".cache" / "calico"))
            path = base / f"{slug}-{digest}" / data.version
    if create:
        if path.exists() and not path.is_dir():
            raise DataError("cannot create the cache folder (a file is in the way); pass a writable --cache-dir",
                            str(path))
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create the cache folder ({exc.strerror or exc}); pass a writable --cache-dir",
                            str(path)) from exc
    return path


def check_writable(path: Path) -> Path:
    """``path`` (a folder) takes a new file; else a ``DataError`` naming it (before minutes of work)."""
    probe = path / f".calico-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise DataError(f"cache folder is not writable ({exc.strerror or exc}); pass a writable --cache-dir",
                        str(path)) from exc
    return path
