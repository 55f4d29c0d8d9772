"""bf16 autocast on CPU: what AMP on a GPU would hit (dtype mixes, coordinates rounded to bf16), seen here.

Training on CPU runs fp32 (``TrainConfig.amp`` acts on CUDA only); these tests use CPU autocast because its
bf16 op lists match CUDA's for the ops that matter here (``grid_sample`` runs in float32 under both).
tests/test_gpu.py repeats the step comparison on CUDA.
"""

from __future__ import annotations

import pytest
import torch
from model_steps import AMP_RTOL, TINY, loss_and_grads, setup

from calico.config import get_config
from calico.models import build_model, make_dummy_batch
from calico.models.bev import resample_bev, sample_bev
from calico.pretrain.methods import project_to_images


def _ramp(S: int = 180, dtype=torch.bfloat16) -> torch.Tensor:
    """(1, 2, S, S) map whose channel 0 is the column index and channel 1 the row index (exact in bf16)."""
    j = torch.arange(S, dtype=torch.float32)
    return torch.stack([j.expand(S, S), j[:, None].expand(S, S)])[None].to(dtype)


def test_sample_bev_reads_bf16_maps_at_float32_coordinates():
    S = 180
    fmap = _ramp(S)
    # points a third of the way between cell centres: bf16 coordinates would be off by up to ~0.35 cell
    col = torch.tensor([10.33, 100.33, 170.33, 177.66])
    xy = torch.stack([(col + 0.5) / S * 2 - 1, (col[[1, 2, 3, 0]] + 0.5) / S * 2 - 1], 1)
    bidx = torch.zeros(4, dtype=torch.long)
    for ctx in (torch.autocast("cpu", dtype=torch.bfloat16), torch.autocast("cpu", enabled=False)):
        with ctx:
            out = sample_bev(fmap, xy, bidx)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out[:, 0], col, atol=1e-3, rtol=0)
        torch.testing.assert_close(out[:, 1], col[[1, 2, 3, 0]], atol=1e-3, rtol=0)


def test_resample_bev_of_a_bf16_map_is_float32():
    fmap = _ramp(96)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = resample_bev(fmap, (-48.0, -48.0, 48.0, 48.0), 24.0, 40)
    assert out.dtype == torch.float32
    # cell centres of [-24, 24] with 1.2 m cells land at columns (x + 48) - 0.5 of the 1 m source grid
    x = -24 + (torch.arange(40, dtype=torch.float32) + 0.5) * 1.2
    torch.testing.assert_close(out[0, 0, 0], x + 48 - 0.5, atol=1e-3, rtol=0)


FIG4 = ["model.lidar_backbone=voxelnet", "model.det_head=transfusion"]


@pytest.mark.parametrize("task,modality,parts", [("finetune", "L+C", []), ("prc", "L", []), ("rad", "L+C", []),
                                                 ("finetune", "L", FIG4), ("prc", "L", FIG4)])
def test_step_under_cpu_bf16_autocast_matches_fp32(task, modality, parts):
    """... also with the sparse VoxelNet (its spconv encoder runs fp32 under autocast: no bf16 kernels) and the
    TransFusion head."""
    module, batch = setup(task, modality, extra=[*TINY, *parts], num_points=2000)
    fp32, ok32 = loss_and_grads(module, batch, bf16=False)
    bf16, ok16 = loss_and_grads(module, batch, bf16=True)
    assert ok32 and ok16, (fp32, bf16)
    assert abs(bf16 - fp32) <= AMP_RTOL * abs(fp32), (fp32, bf16)


def test_camera_geometry_stays_float32_under_autocast():
    """LSS frustum points and SimIPU's projection: bf16 einsums put a frustum point at 60 m ~0.25 m off."""
    cfg = get_config("cpu", TINY)
    vt = build_model(cfg.model, cfg.data).view_transform
    batch = make_dummy_batch(cfg, batch_size=1, num_points=500)
    intr, c2l = batch["intrinsics"], batch["cam2lidar"]
    ref = vt.frustum_points(intr, c2l, 8, 22)
    xyz = batch["points"][:, 1:4]
    bidx = batch["points"][:, 0].long()
    ref_proj = project_to_images(xyz, bidx, batch["lidar2img"], cfg.data.image_size)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        geom = vt.frustum_points(intr, c2l, 8, 22)
        proj = project_to_images(xyz, bidx, batch["lidar2img"], cfg.data.image_size)
    assert geom.dtype == torch.float32 and torch.equal(geom, ref)
    for a, b in zip(proj, ref_proj):
        assert torch.equal(a, b)
