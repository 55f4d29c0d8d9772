"""Pillarisation: the pure-PyTorch scatter and spconv's PointToVoxel agree on the same cloud."""

from __future__ import annotations

import pytest
import torch

from calico.models.voxelize import grid_shape, pillarize

PC_RANGE = (-8.0, -8.0, -5.0, 8.0, 8.0, 3.0)
VOXEL = (0.5, 0.5, 8.0)


def _cloud(n: int = 6000, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(n, 3, generator=g) * torch.tensor([20.0, 20.0, 10.0]) - torch.tensor([10.0, 10.0, 6.0])
    xyz[: n // 3, :2] = torch.rand(n // 3, 2, generator=g) * 2.0  # a dense patch: >10 points per pillar
    feats = torch.rand(n, 2, generator=g)
    b = torch.randint(0, batch, (n, 1), generator=g).float()
    return torch.cat([b, xyz, feats], 1)


def test_torch_pillars_keep_first_points_in_input_order():
    pts = torch.tensor([[0, 0.1, 0.1, 0.0, 1.0, 0.0], [0, 0.2, 0.2, 0.0, 2.0, 0.0], [0, 0.3, 0.3, 0.0, 3.0, 0.0],
                        [0, 1.1, 0.1, 0.0, 4.0, 0.0], [0, 50.0, 0.0, 0.0, 5.0, 0.0]])
    p = pillarize(pts, PC_RANGE, VOXEL, max_points=2, max_voxels=10, batch_size=1)
    ny, nx = grid_shape(PC_RANGE, VOXEL)
    assert (ny, nx) == (32, 32)
    assert p.coords.tolist() == [[0, 16, 16], [0, 16, 18]]  # (batch, iy, ix); the point at x=50 is dropped
    assert p.num_points.tolist() == [2, 1]
    assert p.features[0, :, 3].tolist() == [1.0, 2.0]  # first two in input order; the third is dropped


def test_torch_max_voxels_keeps_earliest_pillars():
    pts = torch.tensor([[0, 5.1, 0.1, 0.0, 1.0, 0.0], [0, 0.1, 0.1, 0.0, 2.0, 0.0], [0, 3.1, 0.1, 0.0, 3.0, 0.0]])
    p = pillarize(pts, PC_RANGE, VOXEL, max_points=2, max_voxels=2, batch_size=1)
    assert sorted(p.features[:, 0, 3].tolist()) == [1.0, 2.0]


@pytest.mark.parametrize("max_voxels", [2000, 150])
def test_torch_matches_spconv(max_voxels):
    pytest.importorskip("spconv.pytorch.utils")
    pts = _cloud()
    a = pillarize(pts, PC_RANGE, VOXEL, 10, max_voxels, 2, backend="torch")
    b = pillarize(pts, PC_RANGE, VOXEL, 10, max_voxels, 2, backend="spconv")
    assert a.num_points.max() == 10  # the cap is exercised
    assert torch.equal(a.coords, b.coords)
    assert torch.equal(a.num_points, b.num_points)
    assert torch.equal(a.features, b.features)
