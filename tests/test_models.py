"""Model tests: shapes per modality, heads/targets/decoding agreement by overfitting, geometry of pillars,
LSS and the BEV raster, and hand-checked losses."""

from __future__ import annotations

import math

import pytest
import torch

from calico.config import CLASSES, MAP_CLASSES, get_config
from calico.models import PART_NAMES, build_model, make_dummy_batch, param_report
from calico.models.bev import bev_coords, resample_bev, sample_bev, seg_cell_centers
from calico.models.camera import LSSTransform
from calico.models.centerpoint import circle_nms, gaussian_focal_loss, gaussian_radius
from calico.models.dummy import ring_calibration
from calico.models.seg_head import SegHead

# smaller than the cpu preset so the suite stays quick on a shared 2-core machine: 48x48 BEV over ±24 m
TINY = [
    "data.point_cloud_range=(-24.0, -24.0, -5.0, 24.0, 24.0, 3.0)", "data.image_size=(64, 176)",
    "model.bev_size=48", "model.seg_range=24.0", "model.seg_size=40", "model.head_channels=16",
    "model.depth_bound=(1.0, 33.0, 2.0)", "model.max_detections=100", "model.nms_pre_max=100",
]


def tiny_cfg(modality: str = "L+C", *extra: str):
    return get_config("cpu", TINY + [f"model.modality={modality}", *extra])


@pytest.mark.parametrize("modality", ["L", "C", "L+C"])
def test_shapes_loss_decode(modality):
    torch.manual_seed(0)
    cfg = tiny_cfg(modality)
    model = build_model(cfg.model, cfg.data)
    batch = make_dummy_batch(cfg, batch_size=2, num_points=1500, num_boxes=3)
    feats = model.extract(batch)
    S = cfg.model.bev_size
    if "L" in modality:
        assert feats["lidar_bev"].shape == (2, cfg.model.lidar_channels, S, S)
    else:
        assert feats["lidar_bev"] is None
    if "C" in modality:
        assert feats["camera_bev"].shape == (2, cfg.model.camera_channels, S, S)
    else:
        assert feats["camera_bev"] is None
    out = model(batch)
    assert out["seg"].shape == (2, len(MAP_CLASSES), cfg.model.seg_size, cfg.model.seg_size)
    total, stats = model.loss(out, batch)
    assert torch.isfinite(total) and stats["total"] == pytest.approx(float(total.detach()))
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads), "some parameter got no gradient"
    dets = model.decode(out)
    assert len(dets) == 2
    for d in dets:
        assert d["boxes"].shape[1] == 9 and d["boxes"].shape[0] == d["scores"].shape[0] == d["labels"].shape[0]
        assert (d["scores"][:-1] >= d["scores"][1:]).all()
    report = param_report(model)
    for name in model.part_names():
        assert f"| {name} |" in report
    assert set(model.part_names()) <= set(PART_NAMES)


def test_camera_branch_drives_only_camera_parts():
    """L+C: F^Camera does not depend on the points, F^LiDAR does not depend on the images."""
    cfg = tiny_cfg("L+C")
    model = build_model(cfg.model, cfg.data).eval()
    batch = make_dummy_batch(cfg, batch_size=1, num_points=800, num_boxes=1)
    with torch.no_grad():
        a = model.extract(batch)
        batch2 = dict(batch, images=batch["images"] * 0.5)
        b = model.extract(batch2)
    assert torch.equal(a["lidar_bev"], b["lidar_bev"])
    assert not torch.allclose(a["camera_bev"], b["camera_bev"])


def test_overfit_then_decode_recovers_boxes():
    """Heads, targets and decoding agree: after overfitting one batch, decode finds every box (right class,
    centre within one BEV cell)."""
    torch.manual_seed(0)
    cfg = get_config("cpu", [  # a 32x32 BEV over ±16 m with thin channels: quick to overfit
        "data.point_cloud_range=(-16.0, -16.0, -5.0, 16.0, 16.0, 3.0)", "model.bev_size=32", "model.modality=L",
        "model.with_seg=false", "model.nms=maxpool", "model.score_threshold=0.3", "model.head_channels=16",
        "model.decoder_channels=32", "model.lidar_channels=32", "model.max_detections=100"])
    model = build_model(cfg.model, cfg.data)
    batch = make_dummy_batch(cfg, batch_size=1, num_points=1000, num_boxes=3, seed=3)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        out = model(batch)
        total, _ = model.loss(out, batch)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(total.detach()))
    assert losses[-1] < 0.1 * losses[0], losses[::5]
    with torch.no_grad():
        det = model.decode(model(batch))[0]  # train-mode BN: the statistics the model was fitted with
    cell = (cfg.data.point_cloud_range[3] - cfg.data.point_cloud_range[0]) / cfg.model.bev_size
    for box, label in zip(batch["gt_boxes"][0], batch["gt_labels"][0]):
        d = (det["boxes"][:, :2] - box[:2]).norm(dim=1)
        hit = (d < cell) & (det["labels"] == label)
        assert hit.any(), f"{CLASSES[int(label)]} at {box[:2].tolist()} not recovered"
        best = int(torch.nonzero(hit)[0])
        assert det["boxes"][best, 3:6] == pytest.approx(box[3:6], rel=0.35)


def test_heatmap_target_peaks_at_box_centre():
    cfg = tiny_cfg("L")
    head = build_model(cfg.model, cfg.data).det_head
    box = torch.tensor([[3.3, -7.9, -1.0, 1.9, 4.6, 1.7, 0.3, 1.0, -2.0]])
    t = head.targets([box], [torch.tensor([CLASSES.index("truck")])], torch.device("cpu"))[1]  # truck's task
    hm = t["heatmap"][0, 0]  # truck is class 0 of task 1
    cell = 1.0
    ix, iy = math.floor((3.3 + 24) / cell), math.floor((-7.9 + 24) / cell)
    assert hm.max() == 1 and tuple(torch.nonzero(hm == 1)[0].tolist()) == (iy, ix)
    assert t["heatmap"][0, 1].max() == 0  # construction_vehicle channel untouched
    assert int(t["ind"][0, 0]) == iy * 48 + ix and t["mask"][0, 0] == 1
    expected = [27.3 - ix, 16.1 - iy, -1.0, math.log(1.9), math.log(4.6), math.log(1.7),
                math.sin(0.3), math.cos(0.3), 1.0, -2.0]
    assert t["box"][0, 0].tolist() == pytest.approx(expected, abs=1e-5)


def test_gaussian_radius_hand_checked():
    # 4x4 cells, overlap 0.1: r3 = (-1.6 + sqrt(1.6^2 + 4*0.4*14.4)) / 2 = 1.7298 is the smallest root
    assert gaussian_radius(4.0, 4.0, 0.1) == pytest.approx(1.7298, abs=1e-4)


def test_gaussian_focal_loss_hand_checked():
    pred = torch.tensor([0.5, 0.2])
    target = torch.tensor([1.0, 0.5])
    # positive: -log(0.5) * 0.5^2 = 0.17329; negative: -log(0.8) * 0.2^2 * 0.5^4 = 0.000558; one peak
    assert float(gaussian_focal_loss(pred, target)) == pytest.approx(0.17329 + 0.000558, abs=1e-5)


def test_seg_focal_loss_hand_checked():
    cfg = tiny_cfg("L")
    head = SegHead(cfg.model, cfg.data, 8)
    S = cfg.model.seg_size
    logits = torch.zeros(1, 6, S, S)
    # p = 0.5, target 1: alpha * (1 - p)^2 * log 2 = 0.25 * 0.25 * 0.693147 per cell, summed over 6 classes
    loss, stats = head.loss(logits, torch.ones(1, 6, S, S, dtype=torch.uint8))
    assert float(loss) == pytest.approx(6 * 0.25 * 0.25 * math.log(2), rel=1e-5)
    with pytest.raises(ValueError, match="map_masks"):
        head.loss(logits, torch.ones(1, 6, S + 1, S + 1))


def test_circle_nms_suppresses_near_duplicates():
    xy = torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.5, 0.0], [3.0, 0.0]]).numpy()
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6]).numpy()
    labels = torch.tensor([0, 0, 1, 0]).numpy()
    keep = circle_nms(xy, scores, labels, thresh=1.0)  # squared distance 0.25 <= 1: suppressed
    assert sorted(keep.tolist()) == [0, 2, 3]


def test_sample_bev_reads_cell_centre():
    cfg = tiny_cfg("L")
    S = cfg.model.bev_size
    fmap = torch.randn(2, 3, S, S)
    x0, y0 = cfg.data.point_cloud_range[:2]
    cell = 1.0
    ij = torch.tensor([[0, 0], [5, 17], [47, 47], [30, 2]])  # (row=y, col=x)
    xy = torch.stack([x0 + (ij[:, 1] + 0.5) * cell, y0 + (ij[:, 0] + 0.5) * cell], 1).float()
    bidx = torch.tensor([0, 1, 1, 0])
    got = sample_bev(fmap, bev_coords(xy, cfg.data), bidx)
    expected = fmap[bidx, :, ij[:, 0], ij[:, 1]]
    assert torch.allclose(got, expected, atol=1e-6)


def test_seg_raster_convention_matches_bev():
    """A BEV map holding each cell's (x, y) resamples onto the seg grid as the seg cells' (x, y)."""
    cfg = tiny_cfg("L")
    S = cfg.model.bev_size
    c = -24 + torch.arange(S) + 0.5
    ys, xs = torch.meshgrid(c, c, indexing="ij")
    fmap = torch.stack([xs, ys])[None]
    got = resample_bev(fmap, (-24.0, -24.0, 24.0, 24.0), cfg.model.seg_range * 0.9, cfg.model.seg_size)
    sx, sy = seg_cell_centers(cfg.model)
    sx, sy = sx * 0.9, sy * 0.9
    assert torch.allclose(got[0, 0], sx, atol=1e-4) and torch.allclose(got[0, 1], sy, atol=1e-4)


def test_lss_frustum_point_lands_in_right_bev_cell():
    cfg = tiny_cfg("C")
    lss = LSSTransform(cfg.model, cfg.data)
    H, W = cfg.data.image_size
    N = 6
    K, c2l = ring_calibration(N, (H, W))
    c2l[1, :3, 3] = torch.tensor([0.7, -0.4, 0.2])  # an off-origin camera
    K[1, 0, 2] += 3.0  # and an off-centre principal point
    fH, fW = H // 8, W // 8
    geom = lss.frustum_points(K[None], c2l[None], fH, fW)
    cam, k, r, col = 1, 4, fH // 2 + 1, 5
    P = geom[0, cam, k, r, col]
    # independent check: project the LiDAR point back with lidar2img = K @ inv(cam2lidar)
    K4 = torch.eye(4)
    K4[:3, :3] = K[cam]
    uvd = (K4 @ torch.linalg.inv(c2l[cam]) @ torch.cat([P, torch.ones(1)]))[:3]
    u, v, d = uvd[0] / uvd[2], uvd[1] / uvd[2], uvd[2]
    assert float(d) == pytest.approx(float(lss.depths[k]), abs=1e-4)
    assert float(u) == pytest.approx((col + 0.5) * W / fW - 0.5, abs=1e-3)
    assert float(v) == pytest.approx((r + 0.5) * H / fH - 0.5, abs=1e-3)
    # pooling: a one-hot feature at that frustum point lands in the BEV cell containing P
    feats = torch.zeros(1, N, lss.D, fH, fW, 2)
    feats[0, cam, k, r, col] = torch.tensor([1.0, 2.0])
    bev = lss.bev_pool(geom, feats)
    assert bev.shape == (1, 2, 48, 48)
    ix, iy = math.floor(float(P[0]) + 24), math.floor(float(P[1]) + 24)
    assert torch.nonzero(bev[0, 0]).tolist() == [[iy, ix]] and float(bev[0, 1, iy, ix]) == 2.0


def test_bad_config_errors():
    with pytest.raises(ValueError, match="bev_size"):
        cfg = tiny_cfg("L", "model.bev_size=50")
        build_model(cfg.model, cfg.data)
    with pytest.raises(ValueError, match="modality"):
        cfg = tiny_cfg("X")
        build_model(cfg.model, cfg.data)


@pytest.mark.slow
def test_paper_config_forward_backward():
    """The paper's sizes: F^LiDAR 256x180x180, F^Camera 80x180x180, Swin-T at 256x704, batch 1."""
    cfg = get_config("paper")
    model = build_model(cfg.model, cfg.data)
    batch = make_dummy_batch(cfg, batch_size=1, num_points=30000, num_boxes=5)
    out = model(batch)
    assert out["lidar_bev"].shape == (1, 256, 180, 180)
    assert out["camera_bev"].shape == (1, 80, 180, 180)
    assert out["seg"].shape == (1, 6, 200, 200)
    total, _ = model.loss(out, batch)
    total.backward()
    assert torch.isfinite(total)


def test_empty_point_cloud_gives_zero_pillar_canvas():
    cfg = tiny_cfg("L")
    model = build_model(cfg.model, cfg.data)
    batch = make_dummy_batch(cfg, batch_size=1, num_points=100, num_boxes=0)
    batch["points"] = batch["points"][:0]
    assert model.extract(batch)["lidar_bev"].shape == (1, cfg.model.lidar_channels, 48, 48)


def test_extract_decoded_features():
    cfg = tiny_cfg("L+C")
    model = build_model(cfg.model, cfg.data).eval()
    batch = make_dummy_batch(cfg, batch_size=1, num_points=500, num_boxes=1)
    with torch.no_grad():
        f = model.extract(batch, decoded=True)
    assert f["lidar_bev"].shape == f["camera_bev"].shape == (1, cfg.model.decoder_channels, 48, 48)
    with pytest.raises(KeyError, match="images"):
        model.extract({k: v for k, v in batch.items() if k != "images"})
