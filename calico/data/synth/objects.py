"""Class-specific object shapes: each object is a few primitives in its own frame.

Object frame: origin at the centre of the box's bottom face, x along the length (the heading), y along
the width, z up, so that the annotation box is (l, w, h) around (0, 0, h/2) as in nuScenes (size = wlh).
Every primitive stays inside that box, so the LiDAR points of an object are inside its annotation box.
"""

from __future__ import annotations

import numpy as np

from .shapes import BOX, CYLINDER

# nuScenes category names and mean sizes (w, l, h) of the 10 detection classes.
CATEGORY = {
    "car": "vehicle.car", "truck": "vehicle.truck", "construction_vehicle": "vehicle.construction",
    "bus": "vehicle.bus.rigid", "trailer": "vehicle.trailer", "barrier": "movable_object.barrier",
    "motorcycle": "vehicle.motorcycle", "bicycle": "vehicle.bicycle", "pedestrian": "human.pedestrian.adult",
    "traffic_cone": "movable_object.trafficcone",
}
MEAN_WLH = {
    "car": (1.95, 4.6, 1.73), "truck": (2.5, 6.9, 2.8), "construction_vehicle": (2.8, 6.4, 3.2),
    "bus": (2.95, 11.2, 3.5), "trailer": (2.9, 12.3, 3.9), "barrier": (2.5, 0.5, 0.98),
    "motorcycle": (0.77, 2.1, 1.47), "bicycle": (0.6, 1.7, 1.3), "pedestrian": (0.67, 0.73, 1.77),
    "traffic_cone": (0.41, 0.41, 1.07),
}
# name: (rgb, LiDAR reflectivity 0..1, texture code) -- texture codes are interpreted by camera.py
MATERIALS: dict[str, tuple[tuple[int, int, int], float, int]] = {
    "glass": ((40, 55, 70), 0.08, 0), "tyre": ((25, 25, 25), 0.05, 0), "chrome": ((150, 150, 155), 0.5, 0),
    "truck_cargo": ((215, 215, 205), 0.35, 0), "bus_body": ((200, 60, 40), 0.35, 4),
    "construction": ((235, 170, 20), 0.45, 0), "steel": ((90, 90, 95), 0.3, 0),
    "barrier": ((220, 220, 215), 0.6, 2), "cone_orange": ((250, 100, 20), 0.7, 0),
    "cone_white": ((245, 245, 245), 0.9, 0), "skin": ((205, 160, 130), 0.25, 0),
    "bark": ((90, 65, 40), 0.2, 3), "leaves": ((55, 110, 45), 0.15, 3), "hedge": ((45, 95, 40), 0.15, 3),
    "pole": ((120, 120, 125), 0.4, 0), "wall": ((170, 150, 130), 0.3, 3), "rider": ((60, 60, 120), 0.2, 0),
}
CAR_COLOURS = [(180, 20, 20), (230, 230, 230), (20, 20, 25), (40, 70, 150), (130, 130, 135), (200, 180, 60),
               (50, 110, 70), (110, 30, 40)]
CLOTHES = [(30, 30, 80), (150, 30, 30), (40, 40, 40), (200, 200, 190), (60, 120, 60), (170, 120, 40)]
BUILDING_COLOURS = [(180, 170, 150), (150, 140, 130), (200, 195, 185), (120, 110, 100), (170, 120, 90)]

Prim = tuple  # (kind, x, y, z_centre, yaw, half_l, half_w, half_h, material name or rgb)


def jitter_size(name: str, rng: np.random.Generator) -> tuple[float, float, float]:
    """A nuScenes-like size (w, l, h) for ``name``: the class mean times a few percent of noise."""
    w, length, h = MEAN_WLH[name]
    f = np.clip(1.0 + rng.normal(0, 0.06, 3), 0.85, 1.15)
    return float(w * f[0]), float(length * f[1]), float(h * f[2])


def _box(x0, x1, y0, y1, z0, z1, mat) -> Prim:
    return (BOX, (x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2, 0.0, (x1 - x0) / 2, (y1 - y0) / 2, (z1 - z0) / 2, mat)


def _cyl(x, y, z0, z1, r, mat) -> Prim:
    return (CYLINDER, x, y, (z0 + z1) / 2, 0.0, r, r, (z1 - z0) / 2, mat)


def _wheels(w, r, xs, mat="tyre", tw=0.25) -> list[Prim]:
    out = []
    for x in xs:
        for s in (-1, 1):
            out.append(_box(x - r, x + r, s * w / 2 - (tw if s > 0 else 0), s * w / 2 + (tw if s < 0 else 0), 0, 2 * r, mat))
    return out


def build_shape(name: str, wlh: tuple[float, float, float], rng: np.random.Generator, rider: bool = False) -> list[Prim]:
    """Primitives for one object of detection class ``name`` with size ``wlh``."""
    w, l, h = wlh  # noqa: E741 (nuScenes' own names for the box sides)
    hl, hw = l / 2, w / 2
    colour = CAR_COLOURS[rng.integers(len(CAR_COLOURS))]
    if name == "car":
        r = 0.17 * h
        return [_box(-hl, hl, -hw, hw, 0.2 * h, 0.58 * h, colour),
                _box(-0.33 * l, 0.2 * l, -0.45 * w, 0.45 * w, 0.58 * h, h, "glass"),
                *_wheels(w, r, (-0.3 * l, 0.3 * l))]
    if name == "truck":
        return [_box(0.27 * l, hl, -hw, hw, 0.22 * h, 0.8 * h, colour),
                _box(-hl, 0.25 * l, -hw, hw, 0.25 * h, h, "truck_cargo"),
                _box(-hl, hl, -0.3 * w, 0.3 * w, 0.12 * h, 0.25 * h, "steel"),
                *_wheels(w, 0.13 * h, (-0.35 * l, 0.35 * l))]
    if name == "construction_vehicle":
        return [_box(-hl, 0.15 * l, -hw, hw, 0.0, 0.2 * h, "steel"),  # tracks
                _box(-hl, 0.15 * l, -0.45 * w, 0.45 * w, 0.2 * h, 0.55 * h, "construction"),
                _box(-0.25 * l, 0.1 * l, -0.4 * w, 0.1 * w, 0.55 * h, h, "construction"),
                _box(0.1 * l, hl, 0.1 * w, 0.25 * w, 0.5 * h, 0.65 * h, "construction"),  # boom
                _box(0.38 * l, hl, -0.4 * w, 0.4 * w, 0.05 * h, 0.3 * h, "steel")]  # bucket
    if name == "bus":
        return [_box(-hl, hl, -hw, hw, 0.12 * h, h, "bus_body"), *_wheels(w, 0.1 * h, (-0.3 * l, 0.3 * l))]
    if name == "trailer":
        return [_box(-hl, 0.42 * l, -hw, hw, 0.3 * h, h, colour if rng.random() < 0.3 else "truck_cargo"),
                _box(0.42 * l, hl, -0.05 * w, 0.05 * w, 0.3 * h, 0.36 * h, "steel"),
                *_wheels(w, 0.14 * h, (-0.4 * l, -0.3 * l))]
    if name == "barrier":  # length 0.5 across, width 2.5 along the barrier line
        return [_box(-hl, hl, -hw, hw, 0.0, 0.25 * h, "barrier"), _box(-0.2 * l, 0.2 * l, -hw, hw, 0.25 * h, h, "barrier")]
    if name == "traffic_cone":
        prims = [_box(-hl, hl, -hw, hw, 0.0, 0.05 * h, "cone_orange")]
        for i, rad in enumerate((0.38, 0.3, 0.22, 0.14)):
            prims.append(_cyl(0, 0, (0.05 + 0.2375 * i) * h, (0.05 + 0.2375 * (i + 1)) * h, rad * min(w, l),
                              "cone_white" if i % 2 else "cone_orange"))
        return prims
    if name == "pedestrian":
        cloth = CLOTHES[rng.integers(len(CLOTHES))]
        return [_box(-0.12, 0.12, -0.17, 0.17, 0.0, 0.48 * h, CLOTHES[rng.integers(len(CLOTHES))]),
                _cyl(0, 0, 0.48 * h, 0.84 * h, min(0.2, 0.45 * w), cloth),
                _box(-0.06, 0.06, -hw, hw, 0.5 * h, 0.8 * h, cloth),  # arms
                _cyl(0, 0, 0.86 * h, h, 0.1, "skin")]
    if name in ("bicycle", "motorcycle"):
        wheel_h = 0.5 * h if name == "bicycle" else 0.42 * h
        body = "steel" if name == "bicycle" else colour
        prims = [_box(-hl, -hl + 0.4 * l, -0.04, 0.04, 0.0, wheel_h, "tyre"),
                 _box(hl - 0.4 * l, hl, -0.04, 0.04, 0.0, wheel_h, "tyre"),
                 _box(-0.3 * l, 0.3 * l, -0.06 if name == "bicycle" else -0.2, 0.06 if name == "bicycle" else 0.2,
                      0.3 * h, 0.55 * h, body),
                 _box(0.25 * l, 0.32 * l, -hw, hw, 0.6 * h, 0.66 * h, "chrome")]  # handlebar
        if rider:
            prims += [_box(-0.18 * l, 0.0, -0.18, 0.18, 0.5 * h, 0.6 * h, "rider"),
                      _cyl(-0.05 * l, 0, 0.6 * h, 0.9 * h, 0.2, CLOTHES[rng.integers(len(CLOTHES))]),
                      _cyl(-0.02 * l, 0, 0.9 * h, h, 0.1, "skin")]
        return prims
    raise ValueError(f"unknown object class {name!r}")


def build_clutter(kind: str, rng: np.random.Generator, length: float = 0.0, depth: float = 0.0,
                  height: float = 0.0) -> list[Prim]:
    """Primitives of unlabelled structures: building, tree, pole, hedge, wall."""
    if kind == "building":
        colour = BUILDING_COLOURS[rng.integers(len(BUILDING_COLOURS))]
        return [(BOX, 0.0, 0.0, height / 2, 0.0, length / 2, depth / 2, height / 2, ("building", colour))]
    if kind == "tree":
        trunk_h = rng.uniform(3.0, 4.0)
        crown_r = rng.uniform(1.2, 2.2)
        crown_h = rng.uniform(2.5, 4.0)
        return [_cyl(0, 0, 0, trunk_h + 0.3, rng.uniform(0.12, 0.25), "bark"),
                _cyl(0, 0, trunk_h, trunk_h + crown_h, crown_r, "leaves"),
                _cyl(0, 0, trunk_h + crown_h, trunk_h + crown_h + 0.8, 0.6 * crown_r, "leaves")]
    if kind == "pole":
        hgt = rng.uniform(5.5, 8.0)
        return [_cyl(0, 0, 0, hgt, 0.1, "pole"), _box(-0.1, 0.1, -1.5, 0.0, hgt - 0.15, hgt, "pole")]
    if kind == "hedge":
        return [_box(-length / 2, length / 2, -0.4, 0.4, 0, rng.uniform(0.7, 1.3), "hedge")]
    if kind == "wall":
        return [_box(-length / 2, length / 2, -0.15, 0.15, 0, rng.uniform(1.0, 2.2), "wall")]
    raise ValueError(f"unknown clutter kind {kind!r}")
