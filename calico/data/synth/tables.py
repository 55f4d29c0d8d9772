"""The static nuScenes tables (sensor, category, attribute, visibility) and small record helpers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .objects import CATEGORY
from .tokens import Tokens

ATTRIBUTES = ("vehicle.moving", "vehicle.parked", "vehicle.stopped", "pedestrian.moving", "pedestrian.standing",
              "pedestrian.sitting_lying_down", "cycle.with_rider", "cycle.without_rider")
# nuScenes visibility bins: fraction of the object visible over all six cameras.
VISIBILITY = (("1", "v0-40", 0.0), ("2", "v40-60", 0.4), ("3", "v60-80", 0.6), ("4", "v80-100", 0.8))
MOVING_SPEED = 0.2  # m/s, above this an object is annotated as moving


def static_tables(tok: Tokens, sensor_names: list[str]) -> dict[str, list]:
    """sensor, category, attribute and visibility tables."""
    sensor = [{"token": tok.new("sensor"), "channel": name, "modality": "lidar" if name.startswith("LIDAR") else "camera"}
              for name in sensor_names]
    category = [{"token": tok.new("category"), "name": name, "description": f"synthetic {det}", "index": i}
                for i, (det, name) in enumerate(CATEGORY.items())]
    attribute = [{"token": tok.new("attribute"), "name": name, "description": name} for name in ATTRIBUTES]
    visibility = [{"token": t, "level": level, "description": f"visibility of whole object is {level[1:]}%"}
                  for t, level, _ in VISIBILITY]
    return {"sensor": sensor, "category": category, "attribute": attribute, "visibility": visibility}


def attribute_name(name: str, speed: float, rider: bool, parked: bool) -> str | None:
    """The nuScenes attribute consistent with the object's class and motion (None for barriers, cones)."""
    if name in ("bicycle", "motorcycle"):
        return "cycle.with_rider" if rider else "cycle.without_rider"
    if name == "pedestrian":
        return "pedestrian.moving" if speed > MOVING_SPEED else "pedestrian.standing"
    if name in ("barrier", "traffic_cone"):
        return None
    if speed > MOVING_SPEED:
        return "vehicle.moving"
    return "vehicle.parked" if parked else "vehicle.stopped"


def visibility_token(fraction: float) -> str:
    """Token of the nuScenes visibility bin containing ``fraction`` (0..1)."""
    out = VISIBILITY[0][0]
    for token, _, lo in VISIBILITY:
        if fraction >= lo:
            out = token
    return out


def yaw_quaternion(yaw: float) -> list[float]:
    """[w, x, y, z] of a rotation by ``yaw`` about +z."""
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def link(records: list[dict]) -> None:
    """Set prev/next tokens along a time-ordered list of records."""
    for i, rec in enumerate(records):
        rec["prev"] = records[i - 1]["token"] if i > 0 else ""
        rec["next"] = records[i + 1]["token"] if i + 1 < len(records) else ""


def close_scene(tables: dict[str, list], tok: Tokens, samples: list[dict], chains: dict[str, list[dict]],
                instances: dict, category_token: dict, scene: dict) -> None:
    """Finish one scene's tables: link samples, sample_data chains and each instance's annotations (in time
    order), add the instance records (``category_token[key]`` per ``instances`` key) and the scene record
    (``scene``: token, log_token, name, description)."""
    link(samples)
    for chain in chains.values():
        link(chain)
    tables["sample"] += samples
    for key, anns in instances.items():
        link(anns)
        inst = {"token": tok.new("instance"), "category_token": category_token[key],
                "nbr_annotations": len(anns), "first_annotation_token": anns[0]["token"],
                "last_annotation_token": anns[-1]["token"]}
        for a in anns:
            a["instance_token"] = inst["token"]
        tables["instance"].append(inst)
        tables["sample_annotation"] += anns
    tables["scene"].append({**scene, "nbr_samples": len(samples), "first_sample_token": samples[0]["token"],
                            "last_sample_token": samples[-1]["token"]})


def write_tables(table_dir: Path, tables: dict[str, list]) -> None:
    table_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        (table_dir / f"{name}.json").write_text(json.dumps(rows, indent=0))


def write_map_table(root: Path, tok: Tokens, tables: dict) -> None:
    """map.json with a tiny blank semantic-prior PNG (the devkit opens it lazily; the synthetic world's BEV
    layers are in maps/expansion, a converted dataset may have none)."""
    from PIL import Image

    token = tok.new("map")
    fname = f"maps/{token}.png"
    (root / "maps").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(root / fname)
    tables["map"] = [{"token": token, "log_tokens": [r["token"] for r in tables["log"]], "category": "semantic_prior",
                      "filename": fname}]
