"""``ensure_world``: generate a synthetic world once and reuse it while its settings are unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

WORLD_VERSION = "v1.0-synth"


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def ensure_world(root: Path, settings: dict[str, Any]) -> dict:
    """``generate(root, **settings)`` unless ``root/calico_world.json`` records the same settings; returns the
    generation summary. ``settings``: ``generate``'s keyword arguments (``version`` defaults to WORLD_VERSION)."""
    from calico.data.synth.generate import generate

    settings = {"version": WORLD_VERSION, **settings}
    stamp = Path(root) / "calico_world.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("settings") == _jsonable(settings):
        print(f"reusing the synthetic world in {root}")
        return json.loads(stamp.read_text())["summary"]
    print(f"generating the synthetic world in {root} ...")
    summary = generate(root, progress=True, **settings)
    stamp.write_text(json.dumps({"settings": _jsonable(settings), "summary": _jsonable(summary)}, indent=1))
    return summary
