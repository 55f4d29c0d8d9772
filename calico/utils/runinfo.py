"""Run folders: the resolved config, git hash, seed and environment of every training run.

A run folder is self-describing: ``config.json`` reloads with ``calico.config.get_config(path)`` and
``run.json`` records what produced it (git commit and dirty flag, seed, command line, versions).
Resuming appends to ``run.json``'s ``history`` instead of overwriting the original record.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import random
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]


def git_info(root: Path | str = REPO_ROOT) -> dict[str, Any]:
    """``{"commit": sha or "unknown", "dirty": bool | None}`` for the checkout holding ``root``."""
    def _git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = _git("rev-parse", "HEAD")
    if not commit:
        return {"commit": "unknown", "dirty": None}
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit.strip(), "dirty": bool(status.strip()) if status is not None else None}


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds all CUDA devices


def _environment() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
    }


def writable_dir(path: str | Path, flag: str = "--out") -> Path:
    """Create ``path`` (and parents) and check a file can be written there; else one-line ``CalicoError``."""
    from calico.errors import CalicoError

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CalicoError(f"{flag} {p}: is a file, not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / f".calico-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CalicoError(f"{flag} {p}: cannot create or write this folder ({exc.strerror or exc})") from exc
    return p


def make_run_dir(out: str | Path, cfg: Any, argv: list[str] | None = None, *, resume: bool = False) -> Path:
    """Create the run folder ``out`` and record the run in ``config.json`` and ``run.json``.

    ``cfg`` is a ``calico.config.Config`` (anything with ``to_dict()`` and ``seed``). A fresh run refuses a
    folder that already holds a run with checkpoints, so results are never silently mixed; with
    ``resume=True`` the existing record gets a history entry instead. Only rank 0 should call this.
    """
    from calico.errors import CalicoError

    run = Path(out)
    info = {
        "time": _dt.datetime.now().isoformat(timespec="seconds"),
        "argv": list(sys.argv if argv is None else argv),
        "seed": int(getattr(cfg, "seed", 0)),
        "git": git_info(),
        **_environment(),
    }
    run_json = run / "run.json"
    if resume:
        if not run_json.is_file():
            raise CalicoError(f"{run}: cannot resume, no run.json there (not a calico run folder)")
        record = json.loads(run_json.read_text())
        record.setdefault("history", []).append({"event": "resume", **info})
        _write_json(run_json, record)
        return run
    # a folder whose run never wrote a checkpoint (e.g. failed at start-up) may be reused; one with
    # checkpoints is never overwritten (its config.json and run.json history would be lost)
    if any(run.glob("*.pt")):
        raise CalicoError(f"{run}: already holds a run with checkpoints; pass --resume or choose another --out")
    writable_dir(run)
    _write_json(run / "config.json", cfg.to_dict())
    _write_json(run_json, {**info, "history": []})
    return run


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)
