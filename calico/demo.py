"""``calico demo``: the main job on the synthetic world (no download).

Generates (or reuses) a synthetic nuScenes-format world, indexes it, and prints a summary of it.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from calico.config import CLASSES, get_config

WORLD_VERSION = "v1.0-synth"


def world_settings(quick: bool) -> dict:
    if quick:
        return {"scenes": 3, "samples_per_scene": 4, "sweeps": 2, "image_size": (225, 400)}
    return {"scenes": 8, "samples_per_scene": 10, "sweeps": 3, "image_size": (225, 400)}


def ensure_world(root: Path, seed: int, quick: bool) -> dict:
    """Generate the synthetic world into ``root`` unless the same one is already there."""
    from calico.data.synth import generate

    settings = {**world_settings(quick), "seed": seed, "version": WORLD_VERSION}
    stamp = root / "calico_world.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("settings") == _jsonable(settings):
        print(f"reusing the synthetic world in {root}")
        return json.loads(stamp.read_text())["summary"]
    print(f"generating the synthetic world in {root} ...")
    summary = generate(root, progress=True, **settings)
    stamp.write_text(json.dumps({"settings": _jsonable(settings), "summary": _jsonable(summary)}, indent=1))
    return summary


def _jsonable(x):
    return json.loads(json.dumps(x, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="work/demo", help="folder for the world, runs and the report")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smaller world: CI's end-to-end smoke test")


def run(args: argparse.Namespace) -> int:
    from calico.data.prepare import prepare

    t0 = time.time()
    out = Path(args.out)
    root = out / "world"
    ensure_world(root, args.seed, args.quick)
    cfg = get_config("cpu")
    cfg.data.dataroot, cfg.data.version = str(root), WORLD_VERSION
    index = prepare(cfg.data, progress=True)
    recs = index["records"]
    per_class = Counter(n for r in recs for n in r["gt_names"])
    splits = json.loads((root / WORLD_VERSION / "splits.json").read_text())
    print(f"\nsynthetic world: {root}")
    print(f"  scenes: {len({r['scene_name'] for r in recs})} "
          f"(train {len(splits.get('train', []))}, val {len(splits.get('val', []))}), keyframes: {len(recs)}")
    print("  boxes per class: " + ", ".join(f"{c} {per_class.get(c, 0)}" for c in CLASSES))
    print(f"  index: {index['path']}" + (f"; map masks: {index['map_masks']}" if "map_masks" in index else ""))
    print(f"done in {time.time() - t0:.0f} s")
    return 0
