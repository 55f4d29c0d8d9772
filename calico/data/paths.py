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


def cache_dir(data: DataConfig, create: bool = True) -> Path:
    """The writable folder for this dataset's derived files (created on demand)."""
    if data.cache_dir:
        path = Path(data.cache_dir).expanduser()
    else:
        root = Path(data.dataroot).expanduser().resolve()
        if os.access(root, os.W_OK):
            path = root / ".calico" / data.version
        else:
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", root.name)[:40]
            digest = hashlib.sha1(str(root).encode()).hexdigest()[:8]
            base = Path(os.environ.get("CALICO_CACHE", Path.home() / ".cache" / "calico"))
            path = base / f"{slug}-{digest}" / data.version
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
