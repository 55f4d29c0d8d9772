"""Bottom rule with support (calico/pooling/filters.py): a roof ring over its car is kept, canopy is not."""

from __future__ import annotations

import numpy as np

from calico.config import PoolingConfig
from calico.pooling import semantic_pooling
from calico.pooling.filters import support_below


def _ring(rng, x0, x1, y0, y1, z, n):
    """A thin horizontal slab of returns (one LiDAR ring on a surface) at height z."""
    return np.c_[rng.uniform((x0, y0), (x1, y1), (n, 2)), z + rng.normal(0, 0.02, n)]


def _scene(rng):
    """Flat ground at z = -1.8; far car seen by two rings ~0.9 m apart (roof at 1.7 m above ground, side ring
    at 0.8 m), a canopy slab 2.6 m up over bare road."""
    g = rng.uniform(-45, 45, (30000, 2))
    ground = np.c_[g, -1.8 + rng.normal(0, 0.02, len(g))]
    roof = _ring(rng, 40, 42, 0, 1.6, -0.1, 60)
    side = _ring(rng, 39.8, 40.2, 0, 1.8, -1.0, 30)
    canopy = _ring(rng, -30, -27, 5, 8, 0.8, 120)
    return ground, roof, side, canopy


def test_roof_ring_over_its_car_is_kept_canopy_dropped():
    rng = np.random.default_rng(0)
    ground, roof, side, canopy = _scene(rng)
    pts = np.r_[ground, roof, side, canopy]
    n0 = len(ground)
    s_roof, s_canopy = slice(n0, n0 + 60), slice(n0 + 90, None)
    off = semantic_pooling(pts, PoolingConfig(bottom_support_gap=0.0))
    assert (off[s_roof] < 0).all()  # bottom 1.7 m above ground: "floating" without the support test
    on = semantic_pooling(pts)
    assert (on[s_roof] >= 0).mean() > 0.9 and len(np.unique(on[s_roof])) == 1
    assert (on[s_canopy] < 0).all() and (off[s_canopy] < 0).all()  # nothing under it: still floating


def test_support_band_and_own_cluster():
    # per 1 m cell: label 1 rests 0.8 m above label 0 (support); label 2 is 3 m above label 3 (beyond the
    # 1.5 m band: canopy over a car); label 4's own lower point gives it no support
    xyz = np.array([[0.2, 0.2, 0.0], [0.3, 0.3, 0.4], [0.4, 0.4, 1.2],
                    [5.2, 5.2, 3.0], [5.3, 5.3, 0.0], [9.2, 9.2, 0.0], [9.3, 9.3, 1.0]])
    lab = np.array([0, 0, 1, 2, 3, 4, 4])
    sup = support_below(xyz, lab, cell=1.0, gap=0.5, max_gap=1.5)
    assert sup.tolist() == [False, False, True, False, False, False, False]
    assert support_below(np.zeros((0, 3)), np.zeros(0, np.int64), 1.0, 0.5).shape == (0,)
