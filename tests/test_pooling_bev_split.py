"""BEV split of kept clusters (calico/pooling/bev_split.py): people side by side are cut, a car is not."""

from __future__ import annotations

import numpy as np

from calico.config import PoolingConfig
from calico.pooling import semantic_pooling
from calico.pooling.bev_split import bev_split


def _column(rng, cx, cy, n=200):
    """A pedestrian-like column: 0.5 m wide, 0.3 m deep, 1.7 m tall, standing on z = -1.8."""
    return rng.uniform((cx - 0.25, cy - 0.15, -1.75), (cx + 0.25, cy + 0.15, -0.05), (n, 3))


def _scene(rng):
    g = rng.uniform(-20, 20, (20000, 2))
    ground = np.c_[g, -1.8 + rng.normal(0, 0.02, len(g))]
    peds = np.r_[_column(rng, 5, 0), _column(rng, 5, 0.6)]  # bodies 0.3 m apart: one cluster at eps 0.35
    car = rng.uniform((8, 3, -1.4), (12.2, 4.8, -0.3), (800, 3))
    return np.r_[ground, peds, car]


def test_two_pedestrians_become_two_regions_car_stays_one():
    pts = _scene(np.random.default_rng(0))
    a, b, car = slice(20000, 20200), slice(20200, 20400), slice(20400, None)
    off = semantic_pooling(pts, PoolingConfig(bev_split_eps=0.0))
    ra, rb = off[a][off[a] >= 0], off[b][off[b] >= 0]
    assert set(ra) == set(rb) and len(set(ra)) == 1  # without the step: one merged region
    on = semantic_pooling(pts, PoolingConfig(bev_split_eps=0.2))
    ra, rb = on[a][on[a] >= 0], on[b][on[b] >= 0]
    assert len(set(ra)) == 1 and len(set(rb)) == 1 and set(ra) != set(rb)
    assert len(set(on[car])) == 1 and on[car][0] >= 0  # the car is one region, not cut


def test_fragments_join_the_nearest_piece_and_small_pieces_do_not_cut():
    rng = np.random.default_rng(1)
    xyz = np.r_[_column(rng, 0, 0, 60), _column(rng, 0, 0.6, 60), [[0.0, 1.2, -1.0]]]  # a stray point by b
    labels = np.zeros(len(xyz), np.int64)
    out = bev_split(xyz, labels, 0.2, 5, 0.2, 10, 8.0)
    assert len(set(out[:60])) == 1 and len(set(out[60:120])) == 1 and out[0] != out[60]
    assert out[-1] == out[60]  # noise joins the nearest big piece, not dropped
    # a 10-point lump next to 120 points is below the 20 % share: no cut
    xyz2 = np.r_[_column(rng, 0, 0, 120), _column(rng, 0, 0.6, 10)]
    assert (bev_split(xyz2, np.zeros(130, np.int64), 0.2, 5, 0.2, 10, 8.0) == 0).all()
    # clusters longer than max_extent are left alone
    assert (bev_split(xyz, labels, 0.2, 5, 0.2, 10, 0.5) == 0).all()
