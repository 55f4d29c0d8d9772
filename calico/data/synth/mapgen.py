"""Map layers in the nuScenes map-expansion JSON format (read by the devkit's ``NuScenesMap``).

The devkit accepts only the four real map names, so every synthetic scene is drawn into one map
(``MAP_NAME``), each at its own global offset and rotation, far enough apart not to overlap. Boston
was chosen because the synthetic traffic is right-hand. Geometry is stored as the devkit expects: a
``node`` table of points, ``line`` and ``polygon`` tables referring to nodes, and semantic layers
referring to polygons/lines.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .tokens import Tokens
from .world import SceneWorld

MAP_NAME = "boston-seaport"
CANVAS_EDGE = [2979.5, 2118.1]  # the real map's size (m); used by the devkit only for whole-map queries
POLYGON_LAYERS = ("drivable_area", "road_segment", "lane", "ped_crossing", "walkway", "stop_line", "carpark_area")
LINE_LAYERS = ("road_divider", "lane_divider")


class MapBuilder:
    """Accumulates the layers of all scenes, then writes ``maps/expansion/<MAP_NAME>.json``."""

    def __init__(self, tokens: Tokens):
        self.tok = tokens
        self.tables: dict[str, list] = {k: [] for k in ("node", "line", "polygon", *POLYGON_LAYERS, *LINE_LAYERS,
                                                        "road_block", "traffic_light", "lane_connector")}
        self.drivable_polys: list[str] = []

    def _nodes(self, pts: np.ndarray) -> list[str]:
        out = []
        for x, y in pts:
            token = self.tok.new("map-node")
            self.tables["node"].append({"token": token, "x": float(x), "y": float(y)})
            out.append(token)
        return out

    def _polygon(self, pts: np.ndarray) -> str:
        token = self.tok.new("map-polygon")
        self.tables["polygon"].append({"token": token, "exterior_node_tokens": self._nodes(pts), "holes": []})
        return token

    def add_scene(self, world: SceneWorld) -> None:
        """Add one scene's rectangles and polylines, transformed to the global map frame."""
        rot, trans = world.to_global()

        def glob(pts):
            pts = np.asarray(pts, dtype=np.float64)
            return pts @ rot[:2, :2].T + trans[:2]

        for layer in POLYGON_LAYERS:
            for x0, y0, x1, y1 in world.layers[layer]:
                poly = self._polygon(glob([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]))
                if layer == "drivable_area":
                    self.drivable_polys.append(poly)
                    continue
                rec = {"token": self.tok.new(f"map-{layer}"), "polygon_token": poly}
                if layer == "road_segment":
                    rec.update(is_intersection=False, drivable_area_token="")
                elif layer == "lane":
                    rec.update(lane_type="CAR", from_edge_line_token="", to_edge_line_token="",
                               left_lane_divider_segments=[], right_lane_divider_segments=[])
                elif layer == "ped_crossing":
                    rec.update(road_segment_token="")
                elif layer == "walkway":
                    pass
                elif layer == "stop_line":
                    rec.update(stop_line_type="STOP_SIGN", ped_crossing_tokens=[], traffic_light_tokens=[],
                               road_block_token="")
                elif layer == "carpark_area":
                    rec.update(orientation=0.0, road_block_token="")
                self.tables[layer].append(rec)
        for layer in LINE_LAYERS:
            for line in world.layers[layer]:
                token = self.tok.new("map-line")
                nodes = self._nodes(glob(line))
                self.tables["line"].append({"token": token, "node_tokens": nodes})
                rec = {"token": self.tok.new(f"map-{layer}"), "line_token": token}
                if layer == "road_divider":
                    rec["road_segment_token"] = ""
                else:
                    rec["lane_divider_segments"] = [{"node_token": n, "segment_type": "DOUBLE_DASHED_WHITE"}
                                                    for n in nodes]
                self.tables[layer].append(rec)

    def write(self, dataroot: Path) -> Path:
        tables = dict(self.tables)
        tables["drivable_area"] = [{"token": self.tok.new("map-drivable"), "polygon_tokens": self.drivable_polys}]
        obj = {"version": "1.3", "canvas_edge": CANVAS_EDGE, **tables, "arcline_path_3": {}, "connectivity": {}}
        path = dataroot / "maps" / "expansion" / f"{MAP_NAME}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj))
        return path
