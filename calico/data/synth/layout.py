"""Procedural layout of one scene: a four-lane main road, an optional crossroad with zebra crossings and
stop lines, raised sidewalks, a car park, a construction lot, buildings, trees, poles, hedges, walls,
optional work zones (barrier rows and cone tapers on the road margin), and traffic (right-hand, one constant speed per lane so that nothing in a lane ever collides).

Main road along x, centred on y = 0, lanes at y = -5.25, -1.75 (eastbound) and 1.75, 5.25 (westbound);
sidewalks at 7 <= |y| <= 11.5; buildings, car park and lot beyond. The ego drives east in lane ``ego_lane_y``.
"""

from __future__ import annotations

import numpy as np

from .objects import jitter_size
from .world import DIRT, PARKING, RASTER_RES, ROAD, SIDEWALK, WHITE, YELLOW, SceneWorld, clutter, thing

ROAD_HALF, WALK_OUT = 7.0, 11.5
LANES = {-5.25: +1, -1.75: +1, 1.75: -1, 5.25: -1}  # lane centre y -> direction along x
MARGIN = 110.0  # m of world around the ego path (LiDAR range 70 m plus room)


def _free_interval(rng, lo, hi, length, forbidden) -> float | None:
    """Start of a [s, s+length] inside [lo, hi] avoiding the ``forbidden`` intervals, or None."""
    for _ in range(30):
        s = rng.uniform(lo, hi - length)
        if all(s + length < a or s > b for a, b in forbidden):
            return float(s)
    return None


def build_scene(rng: np.random.Generator, duration: float, work_zones: bool = False) -> SceneWorld:
    """A random scene for an ego drive of ``duration`` seconds; ``work_zones`` adds ``_work_zones``."""
    ego_speed = float(rng.uniform(3.0, 9.0))
    path = ego_speed * duration
    x0, x1, y0, y1 = -MARGIN, path + MARGIN, -MARGIN, MARGIN
    nx, ny = int(np.ceil((x1 - x0) / RASTER_RES)), int(np.ceil((y1 - y0) / RASTER_RES))
    raster = np.zeros((ny, nx), dtype=np.uint8)
    xs = x0 + (np.arange(nx) + 0.5) * RASTER_RES
    ys = y0 + (np.arange(ny) + 0.5) * RASTER_RES

    def sl(a, b, axis_vals, lo):  # slice of raster cells with centres in [a, b]
        i0 = max(0, int(np.ceil((a - lo) / RASTER_RES - 0.5)))
        i1 = max(i0, int(np.floor((b - lo) / RASTER_RES - 0.5)) + 1)
        return slice(i0, min(i1, len(axis_vals)))

    def fill(r, code):
        raster[sl(r[1], r[3], ys, y0), sl(r[0], r[2], xs, x0)] = code

    layers: dict[str, list] = {k: [] for k in ("drivable_area", "road_segment", "lane", "ped_crossing", "walkway",
                                               "stop_line", "carpark_area", "road_divider", "lane_divider")}
    has_cross = rng.random() < 0.85
    xc = float(rng.uniform(-20.0, path + 40.0)) if has_cross else None
    forbidden = [(xc - 13, xc + 13)] if has_cross else []

    # Roads, lanes, sidewalks.
    layers["drivable_area"].append((x0, -ROAD_HALF, x1, ROAD_HALF))
    fill((x0, -ROAD_HALF, x1, ROAD_HALF), ROAD)
    for s in (-1, 1):
        fill((x0, min(s * ROAD_HALF, s * WALK_OUT), x1, max(s * ROAD_HALF, s * WALK_OUT)), SIDEWALK)
    main_pieces = [(x0, xc - ROAD_HALF), (xc + ROAD_HALF, x1)] if has_cross else [(x0, x1)]
    for a, b in main_pieces:
        layers["road_segment"].append((a, -ROAD_HALF, b, ROAD_HALF))
        for ly in LANES:
            layers["lane"].append((a, ly - 1.75, b, ly + 1.75))
        layers["road_divider"].append([(a, 0.0), (b, 0.0)])
        layers["lane_divider"] += [[(a, -3.5), (b, -3.5)], [(a, 3.5), (b, 3.5)]]
        for s in (-1, 1):
            layers["walkway"].append((a, min(s * ROAD_HALF, s * WALK_OUT), b, max(s * ROAD_HALF, s * WALK_OUT)))
    if has_cross:
        layers["drivable_area"].append((xc - ROAD_HALF, y0, xc + ROAD_HALF, y1))
        layers["road_segment"].append((xc - ROAD_HALF, -ROAD_HALF, xc + ROAD_HALF, ROAD_HALF))
        fill((xc - ROAD_HALF, y0, xc + ROAD_HALF, y1), ROAD)
        for s in (-1, 1):
            fill((min(xc + s * ROAD_HALF, xc + s * WALK_OUT), y0, max(xc + s * ROAD_HALF, xc + s * WALK_OUT), -ROAD_HALF),
                 SIDEWALK)
            fill((min(xc + s * ROAD_HALF, xc + s * WALK_OUT), ROAD_HALF, max(xc + s * ROAD_HALF, xc + s * WALK_OUT), y1),
                 SIDEWALK)
            arm = (ROAD_HALF, y1) if s > 0 else (y0, -ROAD_HALF)
            layers["road_segment"].append((xc - ROAD_HALF, arm[0], xc + ROAD_HALF, arm[1]))
            layers["road_divider"].append([(xc, arm[0]), (xc, arm[1])])
            layers["lane_divider"] += [[(xc - 3.5, arm[0]), (xc - 3.5, arm[1])], [(xc + 3.5, arm[0]), (xc + 3.5, arm[1])]]
            for lx in (-5.25, -1.75, 1.75, 5.25):
                layers["lane"].append((xc + lx - 1.75, arm[0], xc + lx + 1.75, arm[1]))
            for e in (-1, 1):
                layers["walkway"].append((min(xc + e * ROAD_HALF, xc + e * WALK_OUT), arm[0],
                                          max(xc + e * ROAD_HALF, xc + e * WALK_OUT), arm[1]))
            # zebra crossings: across the main road west/east of the junction, across the crossroad arms
            layers["ped_crossing"].append((min(xc + s * 8, xc + s * 11), -ROAD_HALF, max(xc + s * 8, xc + s * 11), ROAD_HALF))
            layers["ped_crossing"].append((xc - ROAD_HALF, min(s * 7.5, s * 11), xc + ROAD_HALF, max(s * 7.5, s * 11)))
        layers["stop_line"] += [(xc - 12.0, -ROAD_HALF, xc - 11.6, 0.0), (xc + 11.6, 0.0, xc + 12.0, ROAD_HALF),
                                (xc - ROAD_HALF, 11.6, xc, 12.0), (xc, -12.0, xc + ROAD_HALF, -11.6)]

    # Car park and construction lot on opposite sides.
    park_side = int(rng.choice([-1, 1]))
    park_len = float(rng.uniform(30, 50))
    px = _free_interval(rng, -60.0, path + 60.0, park_len, forbidden)
    park = None
    if px is not None:
        park = (px, min(park_side * WALK_OUT, park_side * 38.5), px + park_len, max(park_side * WALK_OUT, park_side * 38.5))
        fill(park, PARKING)
        layers["carpark_area"].append(park)
        layers["drivable_area"].append(park)
        forbidden_park = [(px - 2, px + park_len + 2)]
    else:
        forbidden_park = []
    lot_len = float(rng.uniform(30, 42))
    lx = _free_interval(rng, -60.0, path + 60.0, lot_len, forbidden)
    lot = None
    if lx is not None:
        lot = (lx, min(-park_side * 12.0, -park_side * 34.0), lx + lot_len, max(-park_side * 12.0, -park_side * 34.0))
        fill(lot, DIRT)

    # Road markings (painted after the surfaces they sit on).
    def paint_line_x(y, a, b, width, code, dashed):
        rows = sl(y - width / 2, y + width / 2, ys, y0)
        cols = sl(a, b, xs, x0)
        mask = (np.mod(xs[cols], 9.0) < 3.0) if dashed else np.ones(cols.stop - cols.start, bool)
        raster[rows, cols] = np.where(mask[None, :], code, raster[rows, cols])

    def paint_line_y(x, a, b, width, code, dashed):
        cols = sl(x - width / 2, x + width / 2, xs, x0)
        rows = sl(a, b, ys, y0)
        mask = (np.mod(ys[rows], 9.0) < 3.0) if dashed else np.ones(rows.stop - rows.start, bool)
        raster[rows, cols] = np.where(mask[:, None], code, raster[rows, cols])

    for a, b in main_pieces:
        for y in (-0.15, 0.15):
            paint_line_x(y, a, b, 0.12, YELLOW, False)
        for y in (-3.5, 3.5):
            paint_line_x(y, a, b, 0.15, WHITE, True)
    if has_cross:
        for s in (-1, 1):
            arm = (ROAD_HALF, y1) if s > 0 else (y0, -ROAD_HALF)
            for x in (xc - 0.15, xc + 0.15):
                paint_line_y(x, arm[0], arm[1], 0.12, YELLOW, False)
            for x in (xc - 3.5, xc + 3.5):
                paint_line_y(x, arm[0], arm[1], 0.15, WHITE, True)
        for r in layers["ped_crossing"]:
            horizontal = (r[2] - r[0]) < (r[3] - r[1])  # stripes run along the walking direction
            sub = raster[sl(r[1], r[3], ys, y0), sl(r[0], r[2], xs, x0)]
            coord = ys[sl(r[1], r[3], ys, y0)][:, None] if horizontal else xs[sl(r[0], r[2], xs, x0)][None, :]
            sub[np.broadcast_to(np.mod(coord, 1.0) < 0.5, sub.shape)] = WHITE
        for r in layers["stop_line"]:
            fill(r, WHITE)
    if park is not None:
        for x in np.arange(px, px + park_len, 2.7):
            for yy in ((WALK_OUT + 0.3, WALK_OUT + 5.5), (38.5 - 5.5, 38.5 - 0.3)):
                fill((x, min(park_side * yy[0], park_side * yy[1]), x + 0.12, max(park_side * yy[0], park_side * yy[1])), WHITE)

    world = SceneWorld(slope=(float(rng.uniform(-0.015, 0.015)), float(rng.uniform(-0.006, 0.006))),
                       extent=(x0, x0 + nx * RASTER_RES, y0, y0 + ny * RASTER_RES), raster=raster,
                       raised=raster == SIDEWALK, layers=layers, ego_speed=ego_speed,
                       ego_lane_y=float(rng.choice([-5.25, -1.75])))
    _populate(world, rng, path, xc, park, park_side, lot, forbidden + forbidden_park)
    if work_zones:  # from a spawned stream: everything else in the scene is the default world's
        _work_zones(world, rng.spawn(1)[0], xc)
    return world


def _work_zones(world: SceneWorld, rng, xc) -> None:
    """Issue 17's hard cases, opt-in: on each side of the road 1-2 rows of 6-12 barriers end to end (0-0.1 m
    apart) along the road margin, each row followed by a taper of 4-8 cones. Rows of barriers are one DBSCAN
    cluster, longer than any object, and cones stand low next to them."""
    x0, x1, _, _ = world.extent
    taken = [] if xc is None else [(xc - 14.0, xc + 14.0)]
    for s in (-1, 1):
        for _ in range(int(rng.integers(1, 3))):
            n = int(rng.integers(6, 13))
            length = n * 2.6 + 12.0
            start = _free_interval(rng, x0 + 10, x1 - 10, length, taken)
            if start is None:
                continue
            taken.append((start - 2.0, start + length + 2.0))
            x, y = start, s * 6.75  # between the outer lane (up to |y| 6.5) and the kerb (7.0)
            for _ in range(n):
                wlh = jitter_size("barrier", rng)
                thing(world, "barrier", rng, (x + wlh[0] / 2, y), np.pi / 2, wlh, parked=True)
                x += wlh[0] + float(rng.uniform(0.0, 0.1))
            for _ in range(int(rng.integers(4, 9))):
                x += float(rng.uniform(1.2, 2.0))
                thing(world, "traffic_cone", rng, (x, y), 0.0, jitter_size("traffic_cone", rng), parked=True)


def _seq(rng, lo, hi, gap):
    """Positions along [lo, hi] with random gaps drawn from ``gap`` (min, max)."""
    out, x = [], lo + rng.uniform(0, gap[1])
    while x < hi:
        out.append(x)
        x += rng.uniform(*gap)
    return out


def _populate(world: SceneWorld, rng, path, xc, park, park_side, lot, no_build) -> None:
    x0, x1, y0, y1 = world.extent
    cross_zone = [] if xc is None else [(xc - 12.5, xc + 12.5)]

    def free(x, zones):
        return all(not (a <= x <= b) for a, b in zones)

    # Traffic: one speed per lane; the ego's lane moves with the ego.
    for ly, direction in LANES.items():
        if ly == world.ego_lane_y:
            speed = world.ego_speed
        else:
            speed = 0.0 if rng.random() < 0.15 else float(rng.uniform(3.0, 7.0 if abs(ly) > 3 else 10.0))
        outer = abs(ly) > 3
        kinds = (["car"] * 11 + ["bus"] * 2 + ["truck"] * 2 + ["motorcycle"] * 2 + ["bicycle"] * 3) if outer else \
            (["car"] * 15 + ["truck"] * 3 + ["bus"] + ["motorcycle"])
        x = x0 + rng.uniform(0, 15)
        while x < x1 - 5:
            name = kinds[rng.integers(len(kinds))]
            if name == "bicycle" and speed > 7:
                name = "car"
            wlh = jitter_size(name, rng)
            cx = x + wlh[1] / 2
            if ly == world.ego_lane_y and -12.0 - wlh[1] / 2 < cx < 14.0 + wlh[1] / 2:
                x = 14.0 + rng.uniform(0, 10)
                continue
            thing(world, name, rng, (cx, ly), 0.0 if direction > 0 else np.pi, wlh,
                  vel=(direction * speed, 0.0), rider=name in ("bicycle", "motorcycle"))
            x += wlh[1] + rng.uniform(4.0, 30.0)

    # Crossroad: queues waiting at the stop lines, cars driving away.
    if xc is not None:
        for s in (-1, 1):
            for lx in (1.75, 5.25):
                ys_ = _seq(rng, 12.8, 60.0, (7.0, 14.0))
                for y in ys_[: rng.integers(0, 4)]:
                    wlh = jitter_size("car", rng)
                    thing(world, "car", rng, (xc - s * lx, s * (y + wlh[1] / 2)), -s * np.pi / 2, wlh)
                v = float(rng.uniform(3.0, 8.0))
                for y in _seq(rng, 15.0, 90.0, (12.0, 30.0))[:2]:
                    name = "car" if rng.random() < 0.8 else "truck"
                    thing(world, name, rng, (xc + s * lx, s * y), s * np.pi / 2, jitter_size(name, rng), vel=(0.0, s * v))

    # Sidewalks: two walking strips (opposite directions), one strip of standing people and parked cycles.
    for s in (-1, 1):
        for strip_y, direction in ((8.1, 1), (9.0, -1)):
            v = float(rng.uniform(1.0, 1.6))
            for x in _seq(rng, x0 + 5, x1 - 5, (3.0, 22.0)):
                thing(world, "pedestrian", rng, (x, s * strip_y), 0.0 if direction > 0 else np.pi,
                      jitter_size("pedestrian", rng), vel=(direction * v, 0.0))
        x = x0 + rng.uniform(0, 10)
        while x < x1 - 5:
            r = rng.random()
            if r < 0.45:
                thing(world, "pedestrian", rng, (x, s * 10.5), float(rng.uniform(-np.pi, np.pi)),
                      jitter_size("pedestrian", rng))
                x += rng.uniform(2.0, 12.0)
            elif r < 0.6 and free(x, cross_zone):
                name = "bicycle" if rng.random() < 0.7 else "motorcycle"
                for _ in range(int(rng.integers(2, 6))):
                    thing(world, name, rng, (x, s * 10.5), s * np.pi / 2, jitter_size(name, rng), parked=True)
                    x += 0.9 if name == "bicycle" else 1.2
                x += rng.uniform(3.0, 10.0)
            else:
                x += rng.uniform(3.0, 10.0)
        # Kerb line: trees and street lights, not inside the junction.
        for x in _seq(rng, x0 + 3, x1 - 3, (7.0, 16.0)):
            if free(x, cross_zone):
                if rng.random() < 0.7:
                    clutter(world, "tree", rng, (x, s * 7.35))
                else:
                    clutter(world, "pole", rng, (x, s * 7.35), yaw=0.0 if s > 0 else np.pi)

    # Car park: two rows of bays, mostly occupied by parked cars.
    if park is not None:
        px0, px1 = park[0], park[2]
        for row_y, facing in ((11.5 + 0.3 + 2.55, 1), (38.5 - 0.3 - 2.55, -1)):
            for x in np.arange(px0 + 1.35, px1 - 1.3, 2.7):
                if rng.random() < 0.7:
                    wlh = jitter_size("car", rng)
                    wlh = (wlh[0], min(wlh[1], 4.95), wlh[2])
                    thing(world, "car", rng, (x, park_side * row_y), park_side * facing * np.pi / 2 + np.pi,
                          wlh, parked=True)

    # Construction lot: heavy vehicles, trailers, barrier line along the front, cones at the entrance.
    if lot is not None:
        lx0, lx1 = lot[0], lot[2]
        s = -park_side
        x = lx0 + 1.5
        while x < lx1 - 3.0:
            name = ["construction_vehicle", "trailer", "truck", "construction_vehicle"][rng.integers(4)]
            wlh = jitter_size(name, rng)
            if x + wlh[0] > lx1:
                break
            thing(world, name, rng, (x + wlh[0] / 2, s * (20.0 + wlh[1] / 2)), s * np.pi / 2 + rng.normal(0, 0.05),
                  wlh, parked=True)
            x += wlh[0] + rng.uniform(1.0, 4.0)
        gate = rng.uniform(lx0 + 5, lx1 - 10)
        for x in np.arange(lx0 + 1.3, lx1 - 1.3, 2.7):
            if not gate <= x <= gate + 5:
                thing(world, "barrier", rng, (x, s * 12.6), 0.0 if s < 0 else np.pi, jitter_size("barrier", rng),
                      parked=True)
        for k in range(int(rng.integers(3, 8))):
            thing(world, "traffic_cone", rng, (gate + 0.5 + k * 0.7, s * rng.uniform(13.2, 16.0)), 0.0,
                  jitter_size("traffic_cone", rng), parked=True)

    # Buildings behind the sidewalks (not in front of the car park, lot or crossroad), hedges and walls in gaps.
    for s in (-1, 1):
        zones = list(cross_zone) + [(a - 1, b + 1) for a, b in no_build]
        if park is not None and s == park_side:
            zones.append((park[0] - 1, park[2] + 1))
        if lot is not None and s == -park_side:
            zones.append((lot[0] - 1, lot[2] + 1))
        x = x0 + rng.uniform(0, 8)
        while x < x1:
            length = float(rng.uniform(10, 35))
            if free(x, zones) and free(x + length, zones) and all(not (x < a < x + length) for a, _ in zones):
                depth, setback = float(rng.uniform(10, 20)), float(rng.uniform(0.8, 3.0))
                clutter(world, "building", rng, (x + length / 2, s * (WALK_OUT + setback + depth / 2)),
                        length=length, depth=depth, height=float(rng.uniform(5, 25)))
                x += length
            gap = float(rng.uniform(2, 9))
            if gap > 4 and free(x + gap / 2, zones):
                clutter(world, "hedge" if rng.random() < 0.5 else "wall", rng, (x + gap / 2, s * (WALK_OUT + 0.6)),
                        length=gap - 1.0)
            x += gap
        if xc is not None:  # along the crossroad arms
            arm = (40.0, y1) if s > 0 else (y0, -40.0)
            for e in (-1, 1):
                for y in _seq(rng, arm[0], arm[1] - 20, (22.0, 32.0)):
                    clutter(world, "building", rng, (xc + e * (WALK_OUT + 9.0), y + 9.0), length=15.0,
                            depth=float(rng.uniform(8, 14)), height=float(rng.uniform(5, 20)))
