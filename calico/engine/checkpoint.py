"""Training checkpoints (atomic, exact-resume) and loading pre-trained weights into named model parts.

Checkpoint format (a plain dict of plain state_dicts, loadable with ``torch.load(..., weights_only=True)``)::

    {"format": "calico-train/1",
     "module": trained module state_dict,     # what Trainer optimises; used by --resume
     "optimizer", "scheduler", "scaler": their state_dicts,
     "epoch", "step_in_epoch", "global_step": ints (the position *after* the last finished step),
     "rng": [per-rank {"python", "numpy", "torch", "cuda"}], "world_size": int,
     ...extra entries from the caller, e.g.
     "parts": {part_name: state_dict}          # pre-training: what `calico finetune --init` loads
     "model": full model state_dict            # fine-tuning}
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from calico.errors import CalicoError

FORMAT = "calico-train/1"


class CheckpointError(CalicoError):
    """A checkpoint that cannot be used: missing, unreadable, wrong layout or shapes."""


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` through a temporary file and ``os.replace``: never a half-written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch wraps some write errors (ENOSPC) in RuntimeError
        tmp.unlink(missing_ok=True)
        if isinstance(exc, RuntimeError) and not _is_write_error(exc):
            raise
        need = _tensor_bytes(obj)
        try:
            free = f", {shutil.disk_usage(path.parent).free / 1e6:.0f} MB free"
        except OSError:
            free = ""
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise CheckpointError(f"{path.parent}: cannot write checkpoint {path.name} ({why}; it needs about "
                              f"{need / 1e6:.1f} MB{free}); {path.name} was left as it was") from exc
    return path


def _is_write_error(exc: RuntimeError) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("no space", "file write failed", "unexpected pos", "disk quota", "errno"))


def _tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors/arrays in a (nested) checkpoint dict: what writing it needs, roughly."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def load_file(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` and a clear error when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle/zip errors come in many types; all mean "not a usable checkpoint"
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    return ckpt


# ---------------------------------------------------------------------------------------------- RNG state
def get_rng_state() -> dict[str, Any]:
    """Every global RNG as tensors/tuples (so the checkpoint stays ``weights_only``-loadable)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``get_rng_state`` returned; its tensors may sit on any device (a checkpoint loaded with
    ``map_location="cuda"`` puts them on the GPU, where neither numpy nor the CPU generator can read them)."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# ------------------------------------------------------------------------------------------ init loading
@dataclass
class PartReport:
    loaded: int = 0
    total: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


@dataclass
class InitReport:
    """What ``load_init`` did, per named part (keys are relative to the part)."""

    path: str
    kind: str  # "parts" (pre-training checkpoint) or "model" (fine-tuning checkpoint)
    parts: dict[str, PartReport] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"init from {self.path} ({self.kind} checkpoint):"]
        for name, r in self.parts.items():
            lines.append(f"  {name}: loaded {r.loaded}/{r.total} tensors")
            for label, keys in (("missing", r.missing), ("unexpected", r.unexpected)):
                if keys:
                    shown = ", ".join(keys[:8]) + (f", ... (+{len(keys) - 8})" if len(keys) > 8 else "")
                    lines.append(f"    {label} ({len(keys)}): {shown}")
        return "\n".join(lines)


def _strip_prefix(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def _checkpoint_parts(ckpt: dict[str, Any], part_names: list[str], path: Path) -> tuple[str, dict]:
    """Normalise either checkpoint kind to ``{part_or_"(other)": state_dict relative to it}``."""
    if isinstance(ckpt.get("parts"), dict):
        return "parts", {name: _strip_prefix(dict(sd), "module.") for name, sd in ckpt["parts"].items()}
    if isinstance(ckpt.get("model"), dict):
        flat = _strip_prefix(dict(ckpt["model"]), "module.")
        grouped: dict[str, dict[str, torch.Tensor]] = {}
        for key, value in flat.items():
            head, _, rest = key.partition(".")
            if head in part_names and rest:
                grouped.setdefault(head, {})[rest] = value
            else:
                grouped.setdefault("(other)", {})[key] = value
        return "model", grouped
    raise CheckpointError(f"{path}: neither a pre-training checkpoint ('parts') nor a fine-tuning one "
                          f"('model'); top-level keys: {sorted(ckpt)[:10]}")


def _refuse_empty(path: Path, report: InitReport, part_names: list[str], groups: dict) -> None:
    """One line when nothing, or nothing of a part both sides have, would load (see ``load_init``)."""
    hint = "another config or model (check model.modality and the model sizes)? pass --init-partial to accept"
    if sum(r.loaded for r in report.parts.values()) == 0:
        keys = [f"{name}.{k}" if name != "(other)" else k for name, sd in groups.items() for k in sd]
        raise CheckpointError(f"{path}: no tensor matches this model ({len(keys)} checkpoint keys, first: "
                              f"{', '.join(keys[:3]) or 'none'}; model parts: {', '.join(part_names)}); {hint}")
    empty = [name for name, r in report.parts.items() if name in part_names and name in groups and r.loaded == 0]
    if empty:
        r = report.parts[empty[0]]
        raise CheckpointError(f"{path}: part {empty[0]} loads 0 of its {r.total} tensors (checkpoint keys: "
                              f"{', '.join(r.unexpected[:3])}{', ...' if len(r.unexpected) > 3 else ''}); {hint}")


def load_init(model: nn.Module, ckpt_path: str | Path, parts: list[str] | None = None,
              verbose: bool = True, partial: bool = False) -> InitReport:
    """Load pre-trained weights into the named parts of ``model`` (``model.part_names()``).

    Accepts a pre-training checkpoint (``{"parts": {name: state_dict}}``) or a fine-tuning one
    (``{"model": state_dict}``). ``parts`` restricts loading to those part names. Missing and unexpected
    keys are reported per part; any shape mismatch is refused (nothing is loaded) with the key and both
    shapes in the message. Parts the checkpoint does not cover keep their initialisation.

    A checkpoint from which nothing loads, or a part of it (named in ``parts``, or present in both the
    checkpoint and the model) of which no tensor loads, is refused (nothing is loaded) unless ``partial``
    (``--init-partial``): it almost always means another config or another model.
    """
    path = Path(ckpt_path)
    part_names = list(model.part_names()) if hasattr(model, "part_names") else []
    kind, groups = _checkpoint_parts(load_file(path), part_names, path)
    if parts is not None:
        unknown = [p for p in parts if p not in groups]
        if unknown:
            raise CheckpointError(f"{path}: has no part(s) {unknown}; it holds {sorted(groups)}")
        groups = {p: groups[p] for p in parts}
    report = InitReport(path=str(path), kind=kind)
    to_load: list[tuple[nn.Module, dict[str, torch.Tensor]]] = []
    errors: list[str] = []
    for name, sd in groups.items():
        if name == "(other)":
            target: nn.Module | None = model
        else:
            target = getattr(model, name, None) if name in part_names else None
        if not isinstance(target, nn.Module):
            report.parts[name] = PartReport(unexpected=sorted(sd))
            continue
        own = target.state_dict()
        if name == "(other)":  # keys outside any part: compare with the model's non-part keys only
            own = {k: v for k, v in own.items() if k.partition(".")[0] not in part_names}
        for key, value in sd.items():
            if key in own and tuple(own[key].shape) != tuple(value.shape):
                label = key if name == "(other)" else f"{name}.{key}"
                errors.append(f"{label}: checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)}")
        matched = [k for k in sd if k in own]
        report.parts[name] = PartReport(loaded=len(matched), total=len(own),
                                        missing=sorted(k for k in own if k not in sd),
                                        unexpected=sorted(k for k in sd if k not in own))
        to_load.append((target, {k: sd[k] for k in matched}))
    if errors:
        raise CheckpointError(f"{path}: shape mismatch, refusing to load:\n  " + "\n  ".join(errors))
    if not partial:
        _refuse_empty(path, report, part_names, groups)
    for target, sd in to_load:
        target.load_state_dict(sd, strict=False)
    for name in part_names:
        if name not in report.parts and hasattr(model, name) and (parts is None or name in parts):
            own = getattr(model, name).state_dict()
            report.parts[name] = PartReport(total=len(own), missing=sorted(own))
    if verbose:
        print(report)
    return report
