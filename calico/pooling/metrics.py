"""Pooling quality against ground-truth boxes: object recall, region purity, semantic-rich share.

A GT box with at least ``min_box_points`` points is *found* when one region holds >= 50 % of the box's
points and >= 50 % of that region lies inside the box. Region purity is the share of semantic-rich points
that lie inside some GT box.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def points_in_boxes(xyz: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, B) bool: point n inside box b; boxes (B, >=7) ``x, y, z, w, l, h, yaw`` (nuScenes ``wlh``)."""
    if len(boxes) == 0 or len(xyz) == 0:
        return np.zeros((len(xyz), len(boxes)), dtype=bool)
    d = xyz[:, None, :3] - boxes[None, :, :3]
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    along = d[..., 0] * c + d[..., 1] * s  # along the box's length axis (yaw direction)
    across = -d[..., 0] * s + d[..., 1] * c
    return ((np.abs(along) <= boxes[:, 4] / 2) & (np.abs(across) <= boxes[:, 3] / 2)
            & (np.abs(d[..., 2]) <= boxes[:, 5] / 2))


def evaluate_frame(xyz: np.ndarray, regions: np.ndarray, boxes: np.ndarray, names: list[str],
                   min_box_points: int = 5) -> dict:
    """Per-frame counts: per-class found/total boxes, rich points, rich points in boxes, regions."""
    inside = points_in_boxes(xyz, boxes)
    rich = regions >= 0
    r = int(regions.max()) + 1 if rich.any() else 0
    region_size = np.bincount(regions[rich], minlength=r)
    per_class: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for b, name in enumerate(names):
        idx = np.flatnonzero(inside[:, b])
        if len(idx) < min_box_points:
            continue
        per_class[name][1] += 1
        lab = regions[idx]
        lab = lab[lab >= 0]
        if len(lab) == 0:
            continue
        counts = np.bincount(lab, minlength=r)
        best = int(np.argmax(counts))
        if counts[best] * 2 >= len(idx) and counts[best] * 2 >= region_size[best]:
            per_class[name][0] += 1
    return {
        "per_class": dict(per_class),
        "points": len(xyz),
        "rich": int(rich.sum()),
        "rich_in_box": int((rich & inside.any(axis=1)).sum()) if len(boxes) else 0,
        "regions": r,
    }


def summarize(frames: list[dict]) -> dict:
    """Aggregate ``evaluate_frame`` outputs: recall per class and overall, purity, rich share, regions."""
    found: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for f in frames:
        for name, (fo, to) in f["per_class"].items():
            found[name] += fo
            total[name] += to
    n_found, n_total = sum(found.values()), sum(total.values())
    rich = sum(f["rich"] for f in frames)
    return {
        "frames": len(frames),
        "recall": {k: (found[k] / total[k], total[k]) for k in sorted(total)},
        "recall_overall": n_found / n_total if n_total else float("nan"),
        "boxes": n_total,
        "purity": sum(f["rich_in_box"] for f in frames) / rich if rich else float("nan"),
        "rich_share": rich / max(1, sum(f["points"] for f in frames)),
        "regions_per_frame": sum(f["regions"] for f in frames) / max(1, len(frames)),
    }


def format_summary(s: dict, title: str = "") -> str:
    """Markdown table of a ``summarize`` result."""
    lines = [f"**{title}**" if title else "", "", "| class | boxes (>=5 pts) | recall |", "|---|---:|---:|"]
    for k, (rec, tot) in s["recall"].items():
        lines.append(f"| {k} | {tot} | {rec:.3f} |")
    lines.append(f"| **overall** | {s['boxes']} | **{s['recall_overall']:.3f}** |")
    lines += ["", f"frames {s['frames']}; region purity {s['purity']:.3f}; semantic-rich share "
              f"{s['rich_share']:.3f}; regions/frame {s['regions_per_frame']:.1f}"]
    return "\n".join(lines)
