"""Issue 17's failure modes on hand-made clouds: barrier rows, long trailers, low cones near the sensor."""

from __future__ import annotations

import numpy as np
import pytest

from calico.config import PoolingConfig, get_config, validate_config
from calico.pooling import semantic_pooling
from calico.pooling.metrics import evaluate_strict

Z0 = -1.8  # ground height in the LiDAR frame (sensor ~1.8 m up)


def _ground(rng, half=40.0, n=40000):
    g = rng.uniform(-half, half, (n, 2))
    return np.c_[g, Z0 + rng.normal(0, 0.02, n)]


def _surface_box(rng, centre, size, yaw, n):
    """``n`` points on the four vertical faces of a box (what a LiDAR sees of a solid object)."""
    w, ln, h = size  # w across, ln along the heading
    side = rng.integers(0, 4, n)
    a = rng.uniform(-0.5, 0.5, n)
    x = np.where(side < 2, np.where(side == 0, -0.5, 0.5) * ln, a * ln)
    y = np.where(side < 2, a * w, np.where(side == 2, -0.5, 0.5) * w)
    z = rng.uniform(0, h, n)
    c, s = np.cos(yaw), np.sin(yaw)
    return np.c_[centre[0] + c * x - s * y, centre[1] + s * x + c * y, Z0 + z]


def _visible_box(rng, centre, size, yaw, n):
    """``n`` points on the top and on the long face of a box towards the sensor (the origin)."""
    w, ln, h = size
    top = rng.random(n) < 0.3
    x = rng.uniform(-0.5, 0.5, n) * ln
    y = np.where(top, rng.uniform(-0.5, 0.5, n) * w, -0.5 * w * np.sign(np.dot(centre, [-np.sin(yaw), np.cos(yaw)])))
    z = np.where(top, h, rng.uniform(0, h, n))
    c, s = np.cos(yaw), np.sin(yaw)
    return np.c_[centre[0] + c * x - s * y, centre[1] + s * x + c * y, Z0 + z]


def _box(centre, size, yaw):
    w, ln, h = size
    return [centre[0], centre[1], Z0 + h / 2, w, ln, h, yaw]


def _found(pts, regions, boxes, name):
    st = evaluate_strict(pts[:, :3], regions, np.asarray(boxes), [name] * len(boxes))
    return st[name][0], st[name][1]


def _barrier_row(rng, n_barriers=8, yaw=0.5, gap=0.0):
    """A row of 2.5 m concrete barriers (0.5 m wide, 1 m high) ``gap`` apart, from 10 m from the sensor."""
    d = np.array([np.cos(yaw), np.sin(yaw)])
    start = np.array([8.0, 6.0])
    pts, boxes = [], []
    for i in range(n_barriers):
        c = start + d * (1.25 + (2.5 + gap) * i)
        pts.append(_visible_box(rng, c, (0.5, 2.5, 1.0), yaw, 150))
        boxes.append(_box(c, (0.5, 2.5, 1.0), yaw))
    return np.concatenate(pts), boxes


@pytest.mark.parametrize("gap", [0.0, 0.2])  # interlocked, or set down 0.2 m apart (DBSCAN bridges both)
def test_barrier_row_is_cut_into_pieces(gap):
    rng = np.random.default_rng(0)
    row, boxes = _barrier_row(rng, gap=gap)  # 20 m long
    pts = np.concatenate([_ground(rng), row]).astype(np.float32)
    n0 = len(pts) - len(row)
    r = semantic_pooling(pts)
    rr = r[n0:]
    assert (rr >= 0).mean() > 0.8  # the row is kept as regions (its bottom 0.2 m is ground) ...
    assert len(np.unique(rr[rr >= 0])) >= 6  # ... cut into several object-sized pieces
    found, total = _found(pts, r, boxes, "barrier")
    assert total == 8 and found >= 6
    # before: one 20 m cluster, rejected as too long, every barrier lost
    off = semantic_pooling(pts, PoolingConfig(row_piece_length=0))
    assert (off[n0:] < 0).all()


def test_wall_kerb_and_car_row_are_not_barrier_rows():
    rng = np.random.default_rng(1)
    wall = _surface_box(rng, (5.0, 12.0), (0.4, 20.0, 3.0), 0.3, 3000)  # taller than a barrier
    kerb = _surface_box(rng, (-6.0, -10.0), (0.3, 20.0, 0.3), 0.0, 2000)  # too low (and mostly ground)
    cars = np.concatenate([_surface_box(rng, (-12.0, 4.7 * i), (1.8, 4.5, 1.5), np.pi / 2, 600)
                           for i in range(4)])  # parked cars nose to tail, 0.2 m apart: re-clustered, not cut
    pts = np.concatenate([_ground(rng), wall, kerb, cars]).astype(np.float32)
    on = semantic_pooling(pts)
    off = semantic_pooling(pts, PoolingConfig(row_piece_length=0))
    assert np.array_equal(on, off)


def test_long_trailer_is_kept():
    rng = np.random.default_rng(2)
    c, size, yaw = (10.0, -12.0), (2.6, 12.0, 3.8), 0.4
    trailer = _surface_box(rng, c, size, yaw, 3000)
    pts = np.concatenate([_ground(rng), trailer]).astype(np.float32)
    r = semantic_pooling(pts)
    assert _found(pts, r, [_box(c, size, yaw)], "trailer") == (1, 1)
    t = r[-len(trailer):]
    assert len(np.unique(t[t >= 0])) == 1  # one region, not cut (its bottom 0.2 m is ground)
    assert (t >= 0).mean() > 0.9
    # before: at 23 degrees both the axis-aligned and the diagonal box of a 12 m trailer exceed 45 m^2
    old = semantic_pooling(pts, PoolingConfig(size_pca=False))
    assert _found(pts, old, [_box(c, size, yaw)], "trailer") == (0, 1)


def test_low_cone_near_the_sensor_is_not_ground():
    rng = np.random.default_rng(3)
    c, size = (4.0, 3.0), (0.35, 0.35, 0.4)  # a small cone 5 m from the sensor
    cone = _surface_box(rng, c, size, 0.0, 120)
    cone[:, :2] = c + (cone[:, :2] - c) * (1 - (cone[:, 2:3] - Z0) / 0.6)  # tapers upward
    pts = np.concatenate([_ground(rng), cone]).astype(np.float32)
    r, g = semantic_pooling(pts, return_ground=True)
    assert g[-len(cone):].mean() < 0.5  # below the 0.2 m threshold: the bottom half of a 0.4 m cone
    assert _found(pts, r, [_box(c, size, 0.0)], "traffic_cone") == (1, 1)
    # the former 0.25 m threshold took more than half of it for ground and lost it
    old = semantic_pooling(pts, PoolingConfig(ground_thresh=0.25, ground_thresh_near=0.25))
    assert _found(pts, old, [_box(c, size, 0.0)], "traffic_cone") == (0, 1)


def test_ground_threshold_grows_with_range():
    from calico.pooling.ground import ground_mask

    rng = np.random.default_rng(4)
    g = _ground(rng)
    probe = np.array([[3.0, 0.0, Z0 + 0.15], [30.0, 0.0, Z0 + 0.15]])  # 0.15 m up, near and far
    m, _ = ground_mask(np.concatenate([g, probe]), thresh=0.2, thresh_near=0.1, near_range=20.0)
    assert not m[-2] and m[-1]


@pytest.mark.parametrize("key,value", [("row_piece_length", -1.0), ("row_max_width", -0.5),
                                       ("ground_thresh_near", -0.1), ("ground_near_range", -5.0),
                                       ("row_min_height", 2.0)])
def test_new_options_are_validated(key, value):
    cfg = get_config("paper")
    setattr(cfg.pooling, key, value)
    with pytest.raises(ValueError, match=key):
        validate_config(cfg)


def _rings(rng, spacing_deg, n_beams, elev0=-10.0, az=2000, max_range=60.0):
    """A spinning LiDAR at the origin over flat ground (1.8 m below): each beam's returns, up to ``max_range``."""
    pts = []
    for b in range(n_beams):
        e = np.radians(elev0 + b * spacing_deg)
        a = rng.uniform(-np.pi, np.pi, az)
        r = np.where(e < 0, -Z0 / np.tan(-e) if e < 0 else np.inf, np.inf)
        r = np.minimum(r, max_range) * rng.uniform(0.98, 1.0, az)
        pts.append(np.c_[r * np.cos(a), r * np.sin(a), np.where(e < 0, Z0, r * np.tan(e))])
    return np.concatenate(pts)


@pytest.mark.parametrize("spacing", [1.33, 0.4])
def test_ring_spacing_is_read_from_the_cloud(spacing):
    from calico.pooling.rings import estimate_ring_spacing

    rng = np.random.default_rng(5)
    xyz = _rings(rng, spacing, int(14 / spacing))
    assert abs(estimate_ring_spacing(xyz) - spacing) < 0.05
    assert estimate_ring_spacing(rng.uniform(-30, 30, (20000, 3))) == 0.0  # no rings: scaling off


def test_far_truck_seen_as_ring_slices_is_one_region():
    rng = np.random.default_rng(6)
    c, rng_m = (45.0, 0.0), 45.0
    gap = rng_m * np.tan(np.radians(1.33))  # 1.04 m between the rings of an HDL-32E at 45 m
    zs = np.arange(0.3, 3.0, gap)  # three slices of the truck's near face
    truck = np.concatenate([np.c_[np.full(80, c[0] - 1.25), rng.uniform(-3.5, 3.5, 80), np.full(80, Z0 + z)]
                            for z in zs])
    pts = np.concatenate([_ground(rng, half=60, n=60000), truck]).astype(np.float32)
    box = [[c[0], c[1], Z0 + 1.5, 2.5, 7.0, 3.0, np.pi / 2]]
    on = semantic_pooling(pts, PoolingConfig(ring_spacing_deg=1.33))
    assert _found(pts, on, box, "truck") == (1, 1)
    assert len(np.unique(on[-len(truck):])) == 1
    off = semantic_pooling(pts, PoolingConfig(ring_scaling=False))  # one cluster per ring: no region holds half
    assert _found(pts, off, box, "truck") == (0, 1)
