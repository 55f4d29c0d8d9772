"""Map ground truth: cached masks are resampled onto the model's seg grid, whatever its range."""

from __future__ import annotations

import numpy as np
import pytest

from calico.data.maps import MASK_RANGE, load_map_mask
from calico.errors import DataError


def _cache(tmp_path, mask: np.ndarray):
    path = tmp_path / "m.npz"
    np.savez(path, shape=np.array(mask.shape), bits=np.packbits(mask.ravel()))
    return path


def test_resample_keeps_positions_for_any_seg_range(tmp_path):
    size = 200  # cached 200 x 200 over ±50 m: 0.5 m cells
    big = np.zeros((6, size, size), np.uint8)
    big[0, 140:160, 110:130] = 1  # a 10 x 10 m block around (10, 25)
    path = _cache(tmp_path, big)
    half = load_map_mask(path, 100, seg_range=25.0)  # ±25 m at 0.5 m: same metric grid as the cache, cropped
    assert np.array_equal(half[0], big[0, 50:150, 50:150])
    assert np.array_equal(load_map_mask(path, 100), big[:, 1::2, 1::2])  # the plain resize is unchanged


def test_range_beyond_the_cache_is_refused(tmp_path):
    path = _cache(tmp_path, np.zeros((6, 200, 200), np.uint8))
    with pytest.raises(DataError, match="seg_range=60"):
        load_map_mask(path, 100, seg_range=60.0)
    assert MASK_RANGE == 50.0
