"""View augmentation T and point sampling for PRC / RAD."""

from __future__ import annotations

import math

import pytest
import torch

from calico.config import get_config
from calico.pretrain.augment import apply_transform, augment_batch_points, random_transform
from calico.pretrain.sampling import in_bev_range, ring_quota, sample_points


def test_random_transform_ranges_and_determinism():
    g = torch.Generator().manual_seed(0)
    scales, flips = [], set()
    for _ in range(400):
        m = random_transform(g, 90.0, (0.9, 1.1))
        lin = m[:3, :3]
        assert torch.all(m[:3, 3] == 0) and torch.equal(m[3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=m.dtype))
        s = math.sqrt(abs(float(torch.det(lin[:2, :2]))))
        assert lin[2].tolist() == pytest.approx([0.0, 0.0, s])  # z is only scaled (global scaling)
        scales.append(s)
        flips.add(bool(torch.det(lin[:2, :2]) < 0))  # det < 0: exactly one axis flipped
    assert 0.9 <= min(scales) and max(scales) <= 1.1 and max(scales) - min(scales) > 0.15
    assert flips == {True, False}
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(random_transform(g1), random_transform(g2))


def test_rotation_only_angles_in_range():
    g = torch.Generator().manual_seed(1)
    angles = []
    for _ in range(300):
        m = random_transform(g, 90.0, (1.0, 1.0), flip_prob=0.0)
        angles.append(math.degrees(math.atan2(float(m[1, 0]), float(m[0, 0]))))
    assert -90.0 <= min(angles) < -80.0 and 80.0 < max(angles) <= 90.0


def test_apply_transform_hand_case():
    # 90 deg rotation, scale 2: (1, 0, 3) -> (0, 2, 3)
    m = torch.eye(4, dtype=torch.float64)
    m[:2, :2] = torch.tensor([[0.0, -2.0], [2.0, 0.0]])
    out = apply_transform(torch.tensor([[1.0, 0.0, 3.0]]), m)
    assert torch.allclose(out, torch.tensor([[0.0, 2.0, 3.0]]))


def test_augment_batch_points_per_frame_transform_and_carried_columns():
    cfg = get_config("cpu").pretrain
    pts = torch.tensor([[0, 1.0, 2.0, 0.5, 0.3, 0.0], [1, -3.0, 1.0, 0.1, 0.9, 0.05], [1, 2.0, 2.0, 0.0, 0.1, 0.1]])
    out, mats = augment_batch_points(pts, 2, cfg, torch.Generator().manual_seed(0))
    assert mats.shape == (2, 4, 4)
    assert torch.equal(out[:, [0, 4, 5]], pts[:, [0, 4, 5]])
    for i in range(3):
        b = int(pts[i, 0])
        assert torch.allclose(out[i, 1:4], apply_transform(pts[i: i + 1, 1:4], mats[b])[0], atol=1e-6)
    # norms in BEV scale by the frame's scale (rotation / flip preserve it)
    s1 = math.sqrt(abs(float(torch.det(mats[1, :2, :2]))))
    assert out[1, 1:3].norm().item() == pytest.approx(s1 * pts[1, 1:3].norm().item(), rel=1e-6)


def _batch():
    # frame 0: regions 0 (3 pts), 2 (2 pts), 4 less; frame 1: region 0 (2 pts), 1 less, one point out of range
    bidx = torch.tensor([0] * 9 + [1] * 4)
    regions = torch.tensor([0, 0, 0, 2, 2, -1, -1, -1, -1, 0, 0, -1, 0])
    xy = torch.zeros(13, 2)
    return bidx, regions, xy


def test_sample_points_counts_uniqueness_and_offsets():
    bidx, regions, xy = _batch()
    xy2 = xy.clone()
    rng = (-10.0, -10.0, 10.0, 10.0)
    s = sample_points(bidx, regions, [xy, xy2], rng, 2, num_rich=4, num_less=2, generator=torch.Generator().manual_seed(0))
    # frame 0: 4 of 5 rich, 2 of 4 less; frame 1: 3 rich (point 12 is rich and in range), 1 less
    assert s.num_rich == 4 + 3 and s.num_less == 2 + 1 and len(s) == 10
    assert s.index.unique().numel() == len(s)  # never duplicated
    assert torch.equal(s.batch_idx, bidx[s.index])
    frame0 = s.regions[s.batch_idx == 0]
    frame1 = s.regions[s.batch_idx == 1]
    # frame 1's region 0 becomes 0 + (max id of frame 0 = 2) + 1 = 3
    assert set(frame1[frame1 >= 0].tolist()) == {3}
    assert set(frame0[frame0 >= 0].tolist()) <= {0, 2}
    assert torch.all((s.regions < 0) == (regions[s.index] < 0))
    # rich first within a frame
    assert frame0[:4].min() >= 0 and torch.all(frame0[4:] == -1)


def test_sample_points_requires_every_view_in_range_and_is_deterministic():
    bidx, regions, xy = _batch()
    xy2 = xy.clone()
    xy2[12] = torch.tensor([100.0, 0.0])
    xy1 = xy.clone()
    xy1[12] = 0.0
    rng = (-10.0, -10.0, 10.0, 10.0)
    s = sample_points(bidx, regions, [xy1, xy2], rng, 2, 8, 8, torch.Generator().manual_seed(0))
    assert 12 not in s.index.tolist() and s.num_rich == 5 + 2
    t = sample_points(bidx, regions, [xy1, xy2], rng, 2, 3, 1, torch.Generator().manual_seed(7))
    u = sample_points(bidx, regions, [xy1, xy2], rng, 2, 3, 1, torch.Generator().manual_seed(7))
    assert torch.equal(t.index, u.index)
    allowed = torch.ones(13, dtype=torch.bool)
    allowed[:3] = False
    v = sample_points(bidx, regions, [xy1], rng, 2, 8, 8, torch.Generator().manual_seed(0), allowed=allowed)
    assert not set(v.index.tolist()) & {0, 1, 2}


def test_in_bev_range_half_open():
    xy = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, 0.999]])
    assert in_bev_range(xy, (-1.0, -1.0, 1.0, 1.0)).tolist() == [True, False, True]


def test_sample_points_bad_shapes():
    with pytest.raises(ValueError, match="view xy"):
        sample_points(torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long), [torch.zeros(2, 2)],
                      (-1, -1, 1, 1), 1, 1, 1, torch.Generator())


# ---------------------------------------------------------------------------------------------------
# "cell" draw
# ---------------------------------------------------------------------------------------------------

GRID = (20, 20)  # 1 m cells over RANGE
RANGE = (-10.0, -10.0, 10.0, 10.0)


def _cloud(n=3000, seed=0, frames=2):
    g = torch.Generator().manual_seed(seed)
    bidx = torch.randint(0, frames, (n,), generator=g)
    xy = (torch.rand(n, 2, generator=g) * 2 - 1) * 9.5
    regions = torch.randint(-1, 6, (n,), generator=g)
    regions[regions < 2] = -1  # ~half semantic-less
    return bidx, regions, xy


def _cells(xy):
    i = torch.floor((xy[:, 1] - RANGE[1]) / 1.0).long()
    j = torch.floor((xy[:, 0] - RANGE[0]) / 1.0).long()
    return i * GRID[1] + j


def test_cell_one_row_per_cell_and_per_cell_region_for_rich():
    bidx, regions, xy = _cloud()
    s = sample_points(bidx, regions, [xy], RANGE, 2, 150, 150, torch.Generator().manual_seed(0), mode="cell",
                      grid_shape=GRID)
    assert s.index.unique().numel() == len(s)
    cell = _cells(xy)[s.index]
    raw = regions[s.index]
    for b in range(2):
        fr = s.batch_idx == b
        rich, less = fr & (raw >= 0), fr & (raw < 0)
        # rich: one per (cell, region); semantic-less: one per cell, never in a drawn rich row's cell
        pairs = cell[rich] * 100 + raw[rich]
        assert pairs.unique().numel() == int(rich.sum())
        assert cell[less].unique().numel() == int(less.sum())
        assert not set(cell[less].tolist()) & set(cell[rich].tolist())
        # rich rows first within the frame
        r = s.regions[fr]
        assert torch.all(r[: int(rich.sum())] >= 0) and torch.all(r[int(rich.sum()):] == -1)
    # batch-unique region ids: frame 1's ids are offset past frame 0's
    f1 = s.regions[(s.batch_idx == 1) & (s.regions >= 0)]
    assert f1.min() > int(regions[bidx == 0].max())


def test_cell_fills_quota_when_enough_cells_and_is_deterministic():
    bidx, regions, xy = _cloud(n=6000)
    kw = dict(mode="cell", grid_shape=GRID)
    s = sample_points(bidx, regions, [xy], RANGE, 2, 60, 50, torch.Generator().manual_seed(1), **kw)
    assert s.num_rich == 2 * 60 and s.num_less == 2 * 50
    t = sample_points(bidx, regions, [xy], RANGE, 2, 60, 50, torch.Generator().manual_seed(1), **kw)
    u = sample_points(bidx, regions, [xy], RANGE, 2, 60, 50, torch.Generator().manual_seed(2), **kw)
    assert torch.equal(s.index, t.index) and torch.equal(s.regions, t.regions)
    assert not torch.equal(s.index, u.index)
    # asking for more than there are distinct cells gives every cell once (no duplicates, no shared cells)
    big = sample_points(bidx, regions, [xy], RANGE, 2, 0, 10_000, torch.Generator().manual_seed(0), **kw)
    n_cells = sum(int(_cells(xy)[(bidx == b) & (regions < 0)].unique().numel()) for b in range(2))
    assert big.num_less == n_cells


def test_cell_respects_allowed_and_every_view_in_range():
    bidx, regions, xy = _cloud(n=2000)
    xy2 = xy.clone()
    xy2[:500, 0] += 30.0  # out of range in view 2 only
    allowed = torch.ones(2000, dtype=torch.bool)
    allowed[500:800] = False
    s = sample_points(bidx, regions, [xy, xy2], RANGE, 2, 10_000, 10_000, torch.Generator().manual_seed(0),
                      allowed=allowed, mode="cell", grid_shape=GRID)
    assert len(s) > 0 and s.index.min() >= 800
    # the old small case: point 12 leaves the grid in view 2
    b, r, z = _batch()
    z2 = z.clone()
    z2[12] = torch.tensor([100.0, 0.0])
    t = sample_points(b, r, [z, z2], RANGE, 2, 8, 8, torch.Generator().manual_seed(0), mode="cell", grid_shape=GRID)
    assert 12 not in t.index.tolist()
    # all points of _batch sit in one cell: frame 0 keeps one row per region (0 and 2), no semantic-less row
    assert sorted(r[t.index[t.batch_idx == 0]].tolist()) == [0, 2]


def test_cell_balances_range_rings():
    # many near points, few far ones: the far share rises from ~its point share to ~its ring share
    g = torch.Generator().manual_seed(0)
    near = torch.randn(20_000, 2, generator=g) * 4.0
    ang = torch.rand(600, generator=g) * 2 * math.pi
    rad = 20.0 + torch.rand(600, generator=g) * 25.0
    far = torch.stack([rad * torch.cos(ang), rad * torch.sin(ang)], 1)
    xy = torch.cat([near, far])
    bidx = torch.zeros(xy.shape[0], dtype=torch.long)
    regions = torch.full((xy.shape[0],), -1, dtype=torch.long)
    rng, grid = (-50.0, -50.0, 50.0, 50.0), (200, 200)
    u = sample_points(bidx, regions, [xy], rng, 1, 0, 400, torch.Generator().manual_seed(0))
    c = sample_points(bidx, regions, [xy], rng, 1, 0, 400, torch.Generator().manual_seed(0), mode="cell",
                      grid_shape=grid)
    far_u = float((xy[u.index].norm(dim=1) > 20).float().mean())
    far_c = float((xy[c.index].norm(dim=1) > 20).float().mean())
    assert len(c) == 400 and far_u < 0.06 and far_c > 0.5


def test_ring_quota_hand_cases():
    assert ring_quota([100, 5, 50, 0, 2], 60) == [27, 5, 26, 0, 2]  # 2 and 5 kept whole, rest split evenly
    assert ring_quota([100, 100, 100], 10) == [4, 3, 3]  # remainder to the nearest ring
    assert ring_quota([1, 2], 10) == [1, 2]
    assert ring_quota([], 5) == [] and ring_quota([3, 3], 0) == [0, 0]


def test_uniform_is_the_default_and_bad_mode_is_refused():
    bidx, regions, xy = _cloud(n=500)
    a = sample_points(bidx, regions, [xy], RANGE, 2, 20, 20, torch.Generator().manual_seed(0))
    b = sample_points(bidx, regions, [xy], RANGE, 2, 20, 20, torch.Generator().manual_seed(0), mode="uniform",
                      grid_shape=GRID)
    assert torch.equal(a.index, b.index)
    with pytest.raises(ValueError, match="grid_shape"):
        sample_points(bidx, regions, [xy], RANGE, 2, 1, 1, torch.Generator(), mode="cell")
    with pytest.raises(ValueError, match="mode"):
        sample_points(bidx, regions, [xy], RANGE, 2, 1, 1, torch.Generator(), mode="grid")


def test_cell_uses_the_first_views_cells():
    # view 1 puts every point in one cell, view 2 spreads them: one row per cell of view 1 only
    n = 200
    bidx = torch.zeros(n, dtype=torch.long)
    regions = torch.full((n,), -1, dtype=torch.long)
    spread = (torch.rand(n, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 9.0
    one_cell = torch.full((n, 2), 0.5)
    a = sample_points(bidx, regions, [one_cell, spread], RANGE, 1, 0, 50, torch.Generator().manual_seed(0),
                      mode="cell", grid_shape=GRID)
    b = sample_points(bidx, regions, [spread, one_cell], RANGE, 1, 0, 50, torch.Generator().manual_seed(0),
                      mode="cell", grid_shape=GRID)
    assert len(a) == 1 and len(b) == 50
