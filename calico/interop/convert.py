"""Checkpoint conversion between calico and mmdetection3d / OpenPCDet (key maps: ``calico.interop.keymaps``).

``export_checkpoint`` writes a calico run checkpoint as the other framework's file; ``load_init_any`` is what
``calico finetune --init`` calls: a calico checkpoint goes to ``calico.engine.load_init``, a foreign one is
detected, mapped back and loaded, with the same per-part report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from calico.config import Config, config_from_dict
from calico.engine.checkpoint import (
    FORMAT,
    CheckpointError,
    InitReport,
    PartReport,
    load_file,
    load_init,
    save_atomic,
)
from calico.interop.keymaps import CONTAINER, EPS, FORMATS, NAMES, NOTES, RULES, SIGNATURE, render


@dataclass
class Mapping:
    ours: str
    theirs: str
    layout: str


# ------------------------------------------------------------------------------------------ detection
def _strip_module(sd: dict[str, Any]) -> dict[str, Any]:
    if sd and all(isinstance(k, str) and k.startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}
    return sd


def detect_format(obj: dict[str, Any]) -> str:
    """"calico", "mmdet3d", "openpcdet" or "unknown", from the container and the key prefixes."""
    if obj.get("format") == FORMAT or isinstance(obj.get("parts"), dict) or isinstance(obj.get("model"), dict):
        return "calico"
    sd = foreign_state(obj)
    votes = {fmt: sum(k.startswith(SIGNATURE[fmt]) for k in sd) for fmt in FORMATS}
    best = max(votes, key=lambda f: votes[f])
    return best if votes[best] else "unknown"


def foreign_state(obj: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The state dict inside a foreign checkpoint (``state_dict``, ``model_state`` or the dict itself)."""
    for container in CONTAINER.values():
        if isinstance(obj.get(container), dict):
            return _strip_module(dict(obj[container]))
    return _strip_module({k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)})


def calico_state(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """A calico checkpoint's weights as one flat model state dict (pre-training ``parts`` or fine-tuning ``model``)."""
    if isinstance(ckpt.get("model"), dict):
        return _strip_module(dict(ckpt["model"]))
    return {f"{part}.{k}": v for part, sd in ckpt["parts"].items() for k, v in _strip_module(dict(sd)).items()}


# ------------------------------------------------------------------------------------------ the map
def _holds(model: nn.Module, when: str, key: str) -> bool:
    """The conditions rules carry (``Rule.when``)."""
    if not when:
        return True
    if when == "resnet":
        return str(model.cfg.camera_backbone).startswith(when)
    if when == "swin":
        return str(model.cfg.camera_backbone).startswith(when) and swin_windows(model) is None
    if when == "conv_up":  # our stride-1 FPN branch is a Conv2d (a ConvTranspose2d is not one)
        return isinstance(model.get_submodule(key.rsplit(".", 1)[0]), nn.Conv2d)
    raise ValueError(f"unknown rule condition {when!r}")


def swin_windows(model: nn.Module) -> str | None:
    """Why our timm Swin has no mmdet counterpart, or None: timm shrinks a stage's attention window to a feature
    map smaller than it (small images), mmdet keeps one square window for every stage."""
    sizes = {tuple(m.window_size) for m in model.camera_backbone.net.modules() if hasattr(m, "relative_position_bias_table")}
    if len(sizes) == 1 and len({*next(iter(sizes))}) == 1:
        return None
    return (f"timm fitted the Swin attention windows to these images ({', '.join(map(str, sorted(sizes)))}); mmdet's "
            f"SwinTransformer has one square window: the Swin is not mapped (larger data.image_size keeps 7x7)")


def build_map(model: nn.Module, fmt: str, keys: list[str] | None = None) -> tuple[list[Mapping], list[str]]:
    """(mappings, keys with no counterpart) for ``keys`` (default: every key of ``model.state_dict()``)."""
    if fmt not in RULES:
        raise CheckpointError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    rules = [(re.compile(r.ours), r) for r in RULES[fmt]]
    down2 = getattr(model.cfg, "camera_bev_downsample", 0) == 2  # BEVFusion's LSS only has a 2x downsample
    mapped, unmapped = [], []
    for key in keys if keys is not None else list(model.state_dict()):
        hit = None
        for rx, rule in rules:
            m = rx.fullmatch(key)
            if m and _holds(model, rule.when, key) and (".bev_conv." not in key or down2):
                hit = Mapping(key, render(rule.theirs, m.groupdict()), rule.layout)
                break
        (mapped.append(hit) if hit else unmapped.append(key))
    return mapped, unmapped


def to_theirs(t: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "swap01":
        return t.transpose(0, 1).contiguous()
    if layout == "swapHW":  # BEVFusion's bev_pool writes rows along x; ours run along y (calico.models.bev)
        return t.transpose(-1, -2).contiguous()
    if layout == "bn_eps":
        return t + (EPS["ours"] - EPS["mmdet3d_lss"])
    if layout in ("unfold", "unfold_norm"):  # (.., [position, channel]) -> (.., [channel, position])
        x = t.reshape(-1, 4, t.shape[-1] // 4)[:, _UNFOLD]
        return x.transpose(1, 2).reshape(t.shape).contiguous()
    return t.clone()


# 2x2 patch positions: timm concatenates (h0w0, h1w0, h0w1, h1w1); nn.Unfold runs (h0w0, h0w1, h1w0, h1w1)
_UNFOLD = [0, 2, 1, 3]


def to_ours(t: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "bn_eps":  # a variance below the eps difference cannot be represented: clamp at 0
        return (t - (EPS["ours"] - EPS["mmdet3d_lss"])).clamp(min=0)
    if layout in ("unfold", "unfold_norm"):
        x = t.reshape(-1, t.shape[-1] // 4, 4).transpose(1, 2)[:, _UNFOLD]
        return x.reshape(t.shape).contiguous()
    return to_theirs(t, layout)  # the transposes are their own inverse


def _groups(keys: list[str]) -> str:
    """Keys grouped by module (``lidar_backbone.neck.out (6)``): a readable list of what did not map."""
    counts: dict[str, int] = {}
    for k in keys:
        parts = k.split(".")
        depth = {"lidar_backbone": 3, "camera_backbone": 2, "view_transform": 2}.get(parts[0], 1)
        head = ".".join(parts[:depth])
        counts[head] = counts.get(head, 0) + 1
    return ", ".join(f"{h}.* ({n})" for h, n in counts.items())


# ------------------------------------------------------------------------------------------ export
@dataclass
class ExportReport:
    source: str
    out: str
    fmt: str
    mapped: list[Mapping] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    absent_parts: list[str] = field(default_factory=list)
    their_config: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        name = NAMES[self.fmt]
        n = len(self.mapped)
        lines = [f"{self.source} -> {self.out} ({name}): {n} tensors mapped"]
        by_part: dict[tuple[str, str], int] = {}
        for m in self.mapped:
            key = (m.ours.split(".")[0], m.theirs.split(".")[0])
            by_part[key] = by_part.get(key, 0) + 1
        for (ours, theirs), count in by_part.items():
            lines.append(f"  {ours} -> {theirs}: {count}")
        changes = sorted({m.layout for m in self.mapped if m.layout})
        for change in changes:
            keys = [m.theirs for m in self.mapped if m.layout == change]
            lines.append(f"  layout {change}: {len(keys)} tensor(s), e.g. {keys[0]}")
        if self.unmapped:
            lines.append(f"  no counterpart in {name} ({len(self.unmapped)} tensors): {_groups(self.unmapped)}")
        if self.absent_parts:
            lines.append(f"  not in this checkpoint: {', '.join(self.absent_parts)}")
        for module, cfg in self.their_config.items():
            lines.append(f"  {name} config {module}: {cfg}")
        lines += [f"  note: {note}" for note in self.notes + NOTES[self.fmt]]
        return "\n".join(lines)


def _config_of(ckpt: dict[str, Any], path: Path, cfg: Config | None) -> Config:
    if cfg is not None:
        return cfg
    if isinstance(ckpt.get("config"), dict):
        return config_from_dict(ckpt["config"])
    run_cfg = path.parent / "config.json"
    if run_cfg.is_file():
        from calico.config import get_config

        return get_config(str(run_cfg))
    raise CheckpointError(f"{path}: holds no config and has no config.json beside it; pass --config")


def _check_fits(state: dict[str, torch.Tensor], model: nn.Module, path: Path, cfg_name: str) -> list[str]:
    """Refuse (one line) a checkpoint whose tensors are not this config's model; returns the absent parts."""
    own = model.state_dict()
    parts = sorted({k.split(".")[0] for k in state})
    wrong = [k for k in state if k in own and tuple(own[k].shape) != tuple(state[k].shape)]
    if wrong:
        k = wrong[0]
        raise CheckpointError(f"{path}: does not fit config {cfg_name!r}: {k} is {tuple(state[k].shape)} in the "
                              f"checkpoint, {tuple(own[k].shape)} in the model ({len(wrong)} tensors differ)")
    extra = [k for k in state if k not in own]
    missing = [k for k in own if k.split(".")[0] in parts and k not in state]
    if extra or missing:
        what = f"{extra[0]} is not in the model" if extra else f"{missing[0]} is missing from the checkpoint"
        raise CheckpointError(f"{path}: does not fit config {cfg_name!r}: {what} "
                              f"({len(extra)} extra, {len(missing)} missing keys; check model.modality and sizes)")
    return [p for p in getattr(model, "part_names", list)() if p not in parts]


def export_checkpoint(ckpt_path: str | Path, fmt: str, out: str | Path, cfg: Config | None = None) -> ExportReport:
    """Write the LiDAR branch (and, for mmdet3d, the camera branch) of a calico checkpoint as ``fmt``'s file."""
    from calico.interop.frameworks import their_config
    from calico.models import build_model

    path = Path(ckpt_path)
    ckpt = load_file(path)
    kind = detect_format(ckpt)
    if kind != "calico":
        what = NAMES.get(kind, "not a calico checkpoint")
        raise CheckpointError(f"{path}: is {'an ' + what + ' checkpoint' if kind in NAMES else what}; calico export "
                              f"reads calico run checkpoints (calico finetune --init reads foreign ones)")
    cfg = _config_of(ckpt, path, cfg)
    model = build_model(cfg.model, cfg.data)
    state = calico_state(ckpt)
    absent = _check_fits(state, model, path, cfg.name)
    # buffers the other side saves and we recompute (Swin's relative_position_index) come from the built model
    derived = {n: b for n, b in model.named_buffers() if n not in model.state_dict() and n.endswith("_index")
               and n.split(".")[0] in {k.split(".")[0] for k in state}}
    mapped, unmapped = build_map(model, fmt, list(state) + list(derived))
    unmapped = [k for k in unmapped if k not in derived]
    theirs = {m.theirs: to_theirs({**state, **derived}[m.ours], m.layout) for m in mapped}
    if not theirs:
        raise CheckpointError(f"{path}: nothing in it has a {NAMES[fmt]} counterpart (parts: "
                              f"{', '.join(sorted({k.split('.')[0] for k in state}))})")
    report = ExportReport(str(path), str(out), fmt, mapped, unmapped, absent, their_config(cfg, fmt, model))
    if fmt == "mmdet3d" and str(cfg.model.camera_backbone).startswith("swin") and "camera_backbone" not in absent:
        report.notes = [why] if (why := swin_windows(model)) else []
    meta = {"calico": {"source": str(path), "config": cfg.to_dict(), "mapped": len(mapped),
                       "no_counterpart": unmapped}}
    obj = ({"meta": meta, "state_dict": theirs} if fmt == "mmdet3d"
           else {"model_state": theirs, "epoch": 0, "calico": meta["calico"]})
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_atomic(obj, out)
    return report


# ------------------------------------------------------------------------------------------ import
def load_foreign(model: nn.Module, path: Path, obj: dict[str, Any], fmt: str, verbose: bool = True,
                 partial: bool = False) -> InitReport:
    """Map a foreign checkpoint's keys back onto ``model`` and load what maps; refuses shape mismatches."""
    name = NAMES[fmt]
    theirs = foreign_state(obj)
    own = model.state_dict()
    mapped, _ = build_map(model, fmt)
    mapped += [m for m in build_map(model, fmt, [n for n, _ in model.named_buffers() if n not in own])[0]]
    found = [m for m in mapped if m.theirs in theirs]
    recomputed = {m.theirs for m in found if m.ours not in own}  # e.g. Swin's relative_position_index
    found = [m for m in found if m.ours in own]
    wrong = [m for m in found if tuple(to_ours(theirs[m.theirs], m.layout).shape) != tuple(own[m.ours].shape)]
    if wrong:
        m = wrong[0]
        raise CheckpointError(f"{path}: {name} checkpoint does not fit this model: {m.theirs} "
                              f"{tuple(theirs[m.theirs].shape)} maps to {m.ours} {tuple(own[m.ours].shape)} "
                              f"({len(wrong)} of {len(found)} mapped tensors differ; another config?)")
    if not found and not partial:
        expect = mapped[0].theirs if mapped else "nothing (no part of this model has a counterpart)"
        raise CheckpointError(f"{path}: {name} checkpoint has none of the tensors this model maps (expects e.g. "
                              f"{expect}; it holds {', '.join(list(theirs)[:3]) or 'no tensor'}); pass "
                              f"--init-partial to accept")
    sd = {m.ours: to_ours(theirs[m.theirs], m.layout) for m in found}
    model.load_state_dict(sd, strict=False)
    report = InitReport(path=str(path), kind=name)
    for part in getattr(model, "part_names", list)():
        keys = [k for k in own if k.startswith(part + ".")]
        report.parts[part] = PartReport(loaded=sum(k in sd for k in keys), total=len(keys),
                                        missing=[k[len(part) + 1:] for k in keys if k not in sd])
    used = {m.theirs for m in found} | recomputed
    report.parts["(other)"] = PartReport(unexpected=[k for k in theirs if k not in used])
    if verbose:
        print(report)
        for note in _geometry_notes(obj, model):
            print(f"  note: {note}")
        leftover = [k for k in theirs if k not in used]
        if leftover:
            heads = sorted({k.split(".")[0] for k in leftover})
            print(f"  no counterpart here ({len(leftover)} {name} tensors): {', '.join(heads)}")
    return report


GEOMETRY = ("data.point_cloud_range", "model.voxel_size", "model.max_points_per_voxel", "data.image_size",
            "model.depth_bound")


def _geometry_notes(obj: dict[str, Any], model: nn.Module) -> list[str]:
    """Settings that change what the weights mean without changing their shapes, where a calico export recorded
    its config and it differs from this model's (a note, not a refusal: fine-tuning on another grid is allowed)."""
    meta = obj.get("calico") or (obj.get("meta") or {}).get("calico") or {}
    cfg = meta.get("config") if isinstance(meta, dict) else None
    if not isinstance(cfg, dict) or not hasattr(model, "cfg"):
        return []
    ours = {"model": model.cfg, "data": getattr(model, "data", None)}
    notes = []
    for key in GEOMETRY:
        section, name = key.split(".")
        theirs, here = cfg.get(section, {}).get(name), getattr(ours[section], name, None)
        if theirs is None or here is None:
            continue
        if (list(theirs) if isinstance(theirs, (list, tuple)) else theirs) != \
                (list(here) if isinstance(here, (list, tuple)) else here):
            notes.append(f"exported with {key}={tuple(theirs) if isinstance(theirs, list) else theirs} "
                         f"(this model: {here})")
    return notes


def load_init_any(model: nn.Module, path: str | Path, verbose: bool = True, partial: bool = False) -> InitReport:
    """``calico.engine.load_init`` for calico checkpoints; mmdetection3d / OpenPCDet files are detected and mapped."""
    path = Path(path)
    obj = load_file(path)
    fmt = detect_format(obj)
    if fmt == "calico":
        return load_init(model, path, verbose=verbose, partial=partial)
    if fmt == "unknown":
        raise CheckpointError(f"{path}: neither a calico checkpoint ('parts' or 'model') nor an mmdetection3d / "
                              f"OpenPCDet one (no key starts with {', '.join(SIGNATURE['mmdet3d'][:2])}, "
                              f"{', '.join(SIGNATURE['openpcdet'][:2])}); top-level keys: {sorted(obj)[:6]}")
    return load_foreign(model, path, obj, fmt, verbose=verbose, partial=partial)
