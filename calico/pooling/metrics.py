"""Pooling quality against ground-truth boxes: object recall, region purity, semantic-rich share.

A GT box with at least ``min_box_points`` points is *found* when one region holds >= 50 % of the box's
points and >= 50 % of that region lies inside the box. Region purity is the share of semantic-rich points
that lie inside some GT box.

``evaluate_strict`` is issue 17's rule, on the keyframe points only: a box with >= 5 keyframe points is found
when one region holds >= 50 % of the box's points and >= 50 % of that region's (keyframe) points lie in the box
enlarged by 10 % (each of w, l, h); it also counts boxes that no semantic-rich point touches.
``evaluate_points`` scores "semantic-rich" (region id >= 0) point by point against per-point truth
(``calico.data.point_labels``): precision and recall of rich vs object points, and what the rich points are.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from calico.data.geometry import points_in_boxes


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


def evaluate_strict(xyz: np.ndarray, regions: np.ndarray, boxes: np.ndarray, names: list[str],
                    min_box_points: int = 5, enlarge: float = 1.1) -> dict[str, list[int]]:
    """Per class ``[found, boxes, untouched]`` under the strict rule (see the module docstring)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 7)
    inside = points_in_boxes(xyz, boxes)
    big = boxes.copy()
    big[:, 3:6] *= enlarge
    inside_big = points_in_boxes(xyz, big)
    rich = regions >= 0
    r = int(regions.max()) + 1 if rich.any() else 0
    region_size = np.bincount(regions[rich], minlength=r)
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for b, name in enumerate(names):
        idx = np.flatnonzero(inside[:, b])
        if len(idx) < min_box_points:
            continue
        out[name][1] += 1
        lab = regions[idx]
        lab = lab[lab >= 0]
        if len(lab) == 0:
            out[name][2] += 1
            continue
        best = int(np.argmax(np.bincount(lab, minlength=r)))
        held = int((lab == best).sum())
        in_big = int((regions[inside_big[:, b]] == best).sum())
        if held * 2 >= len(idx) and in_big * 2 >= region_size[best]:
            out[name][0] += 1
    return dict(out)


def evaluate_points(regions: np.ndarray, is_object: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """Point-wise counts: rich, object, rich & object; with class-format ``labels`` also rich and total points
    per label value (CLASSES index, or the negative codes of ``calico.data.point_labels``)."""
    rich = regions >= 0
    out = {"rich": int(rich.sum()), "object": int(is_object.sum()), "rich_object": int((rich & is_object).sum()),
           "per_label": {}}
    if labels is not None:
        for v in np.unique(labels).tolist():
            m = labels == v
            out["per_label"][int(v)] = [int((rich & m).sum()), int(m.sum())]
    return out


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
    out = {
        "frames": len(frames),
        "recall": {k: (found[k] / total[k], total[k]) for k in sorted(total)},
        "recall_overall": n_found / n_total if n_total else float("nan"),
        "boxes": n_total,
        "purity": sum(f["rich_in_box"] for f in frames) / rich if rich else float("nan"),
        "rich_share": rich / max(1, sum(f["points"] for f in frames)),
        "regions_per_frame": sum(f["regions"] for f in frames) / max(1, len(frames)),
    }
    strict = [f["strict"] for f in frames if "strict" in f]
    if strict:
        acc: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for st in strict:
            for name, counts in st.items():
                acc[name] = [a + c for a, c in zip(acc[name], counts)]
        n = [sum(v[i] for v in acc.values()) for i in range(3)]
        out["strict"] = {k: (v[0] / v[1], v[2] / v[1], v[1]) for k, v in sorted(acc.items()) if v[1]}
        out["strict_overall"] = (n[0] / n[1], n[2] / n[1], n[1]) if n[1] else (float("nan"), float("nan"), 0)
    pts = [f["points_truth"] for f in frames if "points_truth" in f]
    if pts:
        rich, obj, both = (sum(p[k] for p in pts) for k in ("rich", "object", "rich_object"))
        per_label: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for p in pts:
            for v, (a, b) in p["per_label"].items():
                per_label[v] = [per_label[v][0] + a, per_label[v][1] + b]
        out["points"] = {"frames": len(pts), "precision": both / rich if rich else float("nan"),
                         "recall": both / obj if obj else float("nan"), "rich": rich, "object": obj,
                         "per_label": dict(sorted(per_label.items()))}
    return out


def format_summary(s: dict, title: str = "") -> str:
    """Markdown table of a ``summarize`` result."""
    lines = [f"**{title}**" if title else "", "", "| class | boxes (>=5 pts) | recall |", "|---|---:|---:|"]
    for k, (rec, tot) in s["recall"].items():
        lines.append(f"| {k} | {tot} | {rec:.3f} |")
    lines.append(f"| **overall** | {s['boxes']} | **{s['recall_overall']:.3f}** |")
    lines += ["", f"frames {s['frames']}; region purity {s['purity']:.3f}; semantic-rich share "
              f"{s['rich_share']:.3f}; regions/frame {s['regions_per_frame']:.1f}"]
    if "strict" in s:
        lines += ["", "strict rule (keyframe points; one region >= 50 % of the box, >= 50 % of the region in the "
                      "box +10 %):", "", "| class | boxes (>=5 pts) | found | no region touches the box |",
                  "|---|---:|---:|---:|"]
        for k, (rec, untouched, tot) in s["strict"].items():
            lines.append(f"| {k} | {tot} | {rec:.3f} | {untouched:.3f} |")
        rec, untouched, tot = s["strict_overall"]
        lines.append(f"| **overall** | {tot} | **{rec:.3f}** | {untouched:.3f} |")
    if "points" in s:
        p = s["points"]
        lines += ["", f"point-wise truth ({p['frames']} keyframes): semantic-rich vs object points: precision "
                      f"{p['precision']:.3f}, recall {p['recall']:.3f} ({p['rich']} rich, {p['object']} object points)"]
        if p["per_label"]:
            from calico.config import CLASSES
            from calico.data.point_labels import BACKGROUND, EGO_ROOF, GROUND, OTHER_OBJECT

            names = {BACKGROUND: "background", GROUND: "ground", EGO_ROOF: "ego", OTHER_OBJECT: "other object"}
            rich = max(1, p["rich"])
            lines += ["", "| point label | points | share rich (recall) | share of all rich points |",
                      "|---|---:|---:|---:|"]
            for v, (r, n) in p["per_label"].items():
                name = CLASSES[v] if v >= 0 else names.get(v, str(v))
                lines.append(f"| {name} | {n} | {r / max(1, n):.3f} | {r / rich:.3f} |")
    return "\n".join(lines)
