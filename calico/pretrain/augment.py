"""The PRC view augmentation T (paper §2.2, §3.1): random rotation about z, scaling and flips.

T is linear (no translation), so a view is ``x_view = A @ x`` with ``A = F @ S @ R`` (rotate, then scale,
then flip). It only moves coordinates; region ids, intensity and dt are carried along untouched, so row
``i`` of both views is the same physical point and its region is known in both.

Flip convention (mmdet3d's ``RandomFlip3D``): "flip along X" and "flip along Y" are drawn independently,
each with probability ``flip_prob`` (0.5), so a view may be unflipped, flipped in one axis or in both.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from calico.config import PretrainConfig


def random_transform(
    generator: torch.Generator,
    rot_range: float = 90.0,
    scale_range: tuple[float, float] = (0.9, 1.1),
    flip_prob: float = 0.5,
) -> Tensor:
    """Draw one view transform: a float64 4x4 homogeneous matrix (last column zero translation).

    Rotation angle ~ U(-rot_range, rot_range) degrees about +z, scale ~ U(scale_range), flips as above.
    """
    u = torch.rand(4, generator=generator, dtype=torch.float64)
    angle = math.radians((2.0 * float(u[0]) - 1.0) * rot_range)
    scale = scale_range[0] + float(u[1]) * (scale_range[1] - scale_range[0])
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    flip = torch.diag(torch.tensor([
        -1.0 if float(u[2]) < flip_prob else 1.0,  # flip along X: x -> -x
        -1.0 if float(u[3]) < flip_prob else 1.0,  # flip along Y: y -> -y
        1.0,
    ], dtype=torch.float64))
    mat = torch.eye(4, dtype=torch.float64)
    mat[:3, :3] = flip @ (scale * rot)
    return mat


def apply_transform(xyz: Tensor, mat: Tensor) -> Tensor:
    """``(P, 3)`` coordinates transformed by a 3x3 or 4x4 matrix (computed in float64, returned in xyz's dtype)."""
    lin = mat[:3, :3].to(torch.float64)
    out = xyz.to(torch.float64) @ lin.t().to(xyz.device)
    if mat.shape == (4, 4):
        out = out + mat[:3, 3].to(device=xyz.device, dtype=torch.float64)
    return out.to(xyz.dtype)


def augment_batch_points(
    points: Tensor, batch_size: int, cfg: PretrainConfig, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """One view of a collated batch: ``points`` (ΣP, 6+) with columns 1..3 = xyz.

    Each frame gets its own T. Returns the transformed copy of ``points`` (other columns untouched) and the
    per-frame transforms ``(B, 4, 4)`` float64.
    """
    if points.dim() != 2 or points.shape[1] < 4:
        raise ValueError(f"augment_batch_points: points must be (P, >=4) batch_idx,x,y,z,..., got {tuple(points.shape)}")
    mats = torch.stack([
        random_transform(generator, cfg.rot_range, tuple(cfg.scale_range), cfg.flip_prob) for _ in range(batch_size)
    ])
    bidx = points[:, 0].long()
    lin = mats[:, :3, :3].to(device=points.device, dtype=torch.float64)[bidx]  # (P, 3, 3)
    xyz = torch.einsum("pij,pj->pi", lin, points[:, 1:4].to(torch.float64))
    out = points.clone()
    out[:, 1:4] = xyz.to(points.dtype)
    return out, mats
