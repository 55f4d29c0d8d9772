"""Pre-training methods on a tiny stand-in BEV model that honours the model contract.

The stand-in has the named parts the methods use: ``lidar_backbone(batch)`` (a conv on a scatter of the
points onto the BEV raster of calico.models.bev), ``camera_backbone(images)`` and
``view_transform(img_feats, batch)``, plus a head that pre-training must leave untouched.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from calico.config import get_config
from calico.pretrain.methods import METHODS, build_method, project_to_images, region_bev_mask

S = 16


def small_cfg():
    return get_config("cpu", [
        "data.point_cloud_range=(-8.0, -8.0, -3.0, 8.0, 8.0, 3.0)", "data.image_size=(32, 48)",
        f"model.bev_size={S}", "model.lidar_channels=8", "model.camera_channels=4",
        "model.camera_neck_channels=6", "pretrain.proj_hidden=16", "pretrain.proj_out=8",
        "pretrain.num_rich=24", "pretrain.num_less=24", "pretrain.proposal_anchors=8",
        "pretrain.simipu_points=32", "model.decoder_channels=12",
    ])


class StandInLidar(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.range = cfg.data.point_cloud_range
        self.conv = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, cfg.model.lidar_channels, 3, padding=1))

    def forward(self, batch):
        pts, B = batch["points"], int(batch["batch_size"])
        x0, y0, _, x1, y1, _ = self.range
        ix = ((pts[:, 1] - x0) / (x1 - x0) * S).floor().long()
        iy = ((pts[:, 2] - y0) / (y1 - y0) * S).floor().long()
        keep = (ix >= 0) & (ix < S) & (iy >= 0) & (iy < S)
        flat = (pts[keep, 0].long() * S + iy[keep]) * S + ix[keep]
        feats = torch.cat([torch.ones_like(pts[keep, :1]), pts[keep, 3:6]], 1)
        grid = pts.new_zeros(B * S * S, 4).index_add_(0, flat, feats)
        return self.conv(grid.view(B, S, S, 4).permute(0, 3, 1, 2))


class StandInCamera(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, cfg.model.camera_neck_channels, 8, stride=8),
                                  nn.BatchNorm2d(cfg.model.camera_neck_channels))

    def forward(self, images):
        return self.conv(images.flatten(0, 1))


class StandInViewTransform(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(cfg.model.camera_channels, S, S))
        self.lin = nn.Linear(cfg.model.camera_neck_channels, cfg.model.camera_channels)

    def forward(self, img_feats, batch):
        B = batch["images"].shape[0]
        g = img_feats.mean((2, 3)).view(B, -1, img_feats.shape[1]).mean(1)
        return self.pos[None] * self.lin(g)[:, :, None, None]


class StandInModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.lidar_backbone = StandInLidar(cfg)
        self.camera_backbone = StandInCamera(cfg)
        self.view_transform = StandInViewTransform(cfg)
        # a decoder with its own channel count and BatchNorm, as BEVDecoder (features="decoder" reads it)
        self.lidar_decoder = nn.Sequential(nn.Conv2d(cfg.model.lidar_channels, cfg.model.decoder_channels, 3,
                                                     padding=1), nn.BatchNorm2d(cfg.model.decoder_channels))
        self.det_head = nn.Conv2d(cfg.model.lidar_channels, 3, 1)

    def extract(self, batch):
        return {"lidar_bev": self.lidar_backbone(batch),
                "camera_bev": self.view_transform(self.camera_backbone(batch["images"]), batch)}


def make_batch(B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    pts, regs = [], []
    for b in range(B):
        n = 150
        xy = torch.rand(n, 2, generator=g) * 10 - 5
        reg = torch.full((n,), -1, dtype=torch.long)
        for r in range(4):  # four blobs of 15 points
            c = torch.rand(2, generator=g) * 8 - 4
            xy[r * 15:(r + 1) * 15] = c + 0.3 * torch.randn(15, 2, generator=g)
            reg[r * 15:(r + 1) * 15] = r
        z = torch.rand(n, 1, generator=g) * 2 - 1
        other = torch.rand(n, 2, generator=g)
        pts.append(torch.cat([torch.full((n, 1), float(b)), xy, z, other], 1))
        regs.append(reg)
    # one camera looking along +x: cam = (-y, -z, x); f = 20 px, centre (24, 16)
    K = torch.tensor([[20.0, 0, 23.5], [0, 20.0, 15.5], [0, 0, 1]])
    lidar2cam = torch.tensor([[0.0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
    K4 = torch.eye(4)
    K4[:3, :3] = K
    lidar2img = (K4 @ lidar2cam).expand(B, 1, 4, 4).clone()
    return {"points": torch.cat(pts), "regions": torch.cat(regs), "tokens": [f"t{b}" for b in range(B)],
            "images": torch.randn(B, 1, 3, 32, 48, generator=g), "lidar2img": lidar2img,
            "intrinsics": K.expand(B, 1, 3, 3).clone()}


def _run(name, seed=0, cfg=None):
    torch.manual_seed(0)
    cfg = cfg or small_cfg()
    model = StandInModel(cfg)
    method = build_method(name, model, cfg)
    method.train()
    loss, logs = method(make_batch(), torch.Generator().manual_seed(seed))
    return method, model, loss, logs


TRAINED = {
    "prc": {"lidar_backbone"}, "plrc": {"lidar_backbone"}, "rapc": {"lidar_backbone"},
    "pointcontrast": {"lidar_backbone"}, "proposalcontrast": {"lidar_backbone"},
    "rad": {"camera_backbone", "view_transform"}, "bevdistill": {"camera_backbone", "view_transform"},
    "vanilla_distill": {"camera_backbone", "view_transform"}, "simipu": {"lidar_backbone", "camera_backbone"},
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_gives_finite_loss_and_grads_only_where_trained(name):
    method, model, loss, logs = _run(name)
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.item() > 0
    assert logs["loss"] == pytest.approx(loss.item()) and all(isinstance(v, float) for v in logs.values())
    loss.backward()
    for part in ("lidar_backbone", "camera_backbone", "view_transform", "det_head"):
        grads = [p.grad for p in getattr(model, part).parameters()]
        if part in TRAINED[name]:
            assert any(g is not None and g.abs().sum() > 0 for g in grads), part
        else:
            assert all(g is None for g in grads), part
            assert not any(p.requires_grad for p in getattr(model, part).parameters())
    # distillation checkpoints also carry their frozen teacher, so they initialise both branches
    teacher = {"lidar_backbone"} if name in ("rad", "bevdistill", "vanilla_distill") else set()
    assert set(method.backbone_state_dict()) == TRAINED[name] | teacher
    trainable = {id(p) for p in method.trainable_parameters()}
    assert trainable and all(id(p) in trainable for part in TRAINED[name]
                             for p in getattr(model, part).parameters())
    # every projector / adapter parameter that is trainable got a gradient (no dead heads in DDP)
    for n, p in method.named_parameters():
        if p.requires_grad and not n.startswith("model."):
            assert p.grad is not None, n


@pytest.mark.parametrize("name", ["prc", "rad", "proposalcontrast", "simipu"])
def test_step_is_deterministic_given_generator(name):
    a = _run(name, seed=3)[2].item()
    b = _run(name, seed=3)[2].item()
    c = _run(name, seed=4)[2].item()
    assert a == b and a != c


def test_rad_teacher_frozen_eval_and_untouched():
    cfg = small_cfg()
    torch.manual_seed(0)
    model = StandInModel(cfg)
    method = build_method("rad", model, cfg)
    method.train()
    bn = model.lidar_backbone.conv[1]
    assert not model.lidar_backbone.training and model.camera_backbone.training
    before = bn.running_mean.clone()
    loss, _ = method(make_batch(), torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.equal(bn.running_mean, before)
    assert all(p.grad is None for p in model.lidar_backbone.parameters())


def test_prc_init_loss_near_log_of_candidates_and_decreases():
    # At init features are near-random, so PLRC ~ log(N + M) - mean log(C) and RAPC ~ log(N + M).
    cfg = small_cfg()
    method, model, loss, logs = _run("prc", cfg=cfg)
    k = logs["num_rich"] + logs["num_less"]
    assert 0.3 * math.log(k) < logs["rapc"] < 1.5 * math.log(k)
    opt = torch.optim.Adam(method.trainable_parameters(), lr=1e-2)
    batch = make_batch()
    first = None
    for step in range(10):
        loss, _ = method(batch, torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < first


def test_missing_regions_is_a_clear_error():
    cfg = small_cfg()
    method = build_method("prc", StandInModel(cfg), cfg)
    batch = make_batch()
    del batch["regions"]
    with pytest.raises(ValueError, match="calico pool"):
        method(batch, torch.Generator())
    with pytest.raises(ValueError, match="unknown pre-training stage"):
        build_method("moco", StandInModel(cfg), cfg)


def test_region_bev_mask_and_projection_hand_cases():
    pts = torch.tensor([[0, -7.9, -7.9, 0, 0, 0], [0, 7.9, 0.1, 0, 0, 0], [1, 0.1, 0.1, 0, 0, 0]])
    mask = region_bev_mask(pts, torch.tensor([0, -1, 3]), 2, S, (-8.0, -8.0, 8.0, 8.0))
    # cell size 1 m: (-7.9, -7.9) -> row 0, col 0; (0.1, 0.1) -> row 8, col 8; the semantic-less point is ignored
    assert mask.sum() == 2 and mask[0, 0, 0] and mask[1, 8, 8]
    b = make_batch()
    # a point 10 m ahead on the optical axis lands on the principal point; one behind the camera is not visible
    vis, cam, uv = project_to_images(torch.tensor([[10.0, 0.0, 0.0], [-5.0, 0.0, 0.0]]), torch.tensor([0, 0]),
                                     b["lidar2img"], (32, 48))
    assert vis.tolist() == [True, False] and uv[0].tolist() == pytest.approx([23.5, 15.5])


def test_region_mask_cell_matches_bev_interpolation():
    # a point at a cell centre must read exactly the cell region_bev_mask marks (same raster convention)
    cfg = small_cfg()
    method = build_method("bevdistill", StandInModel(cfg), cfg)
    pts = torch.tensor([[0, 2.5, -5.5, 0, 0, 0], [1, -7.5, 6.5, 0, 0, 0]])
    mask = region_bev_mask(pts, torch.tensor([1, 2]), 2, S, method.bev_range)
    fmap = mask[:, None].float()
    read = method.sample_features(fmap, pts[:, 1:3], pts[:, 0].long())
    assert read[:, 0].tolist() == pytest.approx([1.0, 1.0])


def _boxes_to_regions(batch):
    pts = batch["points"]
    reg = torch.full((pts.shape[0],), -1, dtype=torch.long)
    for b, boxes in enumerate(batch["gt_boxes"]):
        for k, box in enumerate(boxes):
            d = pts[:, 1:3] - box[:2]
            c, s = math.cos(box[6]), math.sin(box[6])
            lx, ly = d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c
            reg[(pts[:, 0] == b) & (lx.abs() <= box[4] / 2) & (ly.abs() <= box[3] / 2)] = k
    batch["regions"] = reg
    return batch


@pytest.fixture(scope="module")
def real_model():
    models = pytest.importorskip("calico.models")
    cfg = get_config("cpu", [
        "data.point_cloud_range=(-16.0, -16.0, -5.0, 16.0, 16.0, 3.0)", "model.bev_size=32",
        "data.image_size=(64, 176)", "data.cameras=('CAM_FRONT', 'CAM_BACK')", "model.depth_bound=(1.0, 17.0, 2.0)",
        "pretrain.num_rich=64", "pretrain.num_less=64"])
    torch.manual_seed(0)
    batch = _boxes_to_regions(models.make_dummy_batch(cfg, batch_size=2, num_points=1500))
    return cfg, models.build_model(cfg.model, cfg.data), batch


@pytest.mark.parametrize("name", ["prc", "rad"])
def test_methods_on_the_real_bev_model(name, real_model):
    cfg, model, batch = real_model
    model.zero_grad(set_to_none=True)
    method = build_method(name, model, cfg)  # re-freezes: each method sets requires_grad itself
    method.train()
    loss, logs = method(batch, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    part = "lidar_backbone" if name == "prc" else "camera_backbone"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(model, part).parameters())
    assert all(p.grad is None for p in model.det_head.parameters())
    teacher = {"lidar_backbone"} if name in ("rad", "bevdistill", "vanilla_distill") else set()
    assert set(method.backbone_state_dict()) == set(TRAINED[name]) | teacher


def test_per_frame_negatives_flag_changes_the_loss():
    cfg = small_cfg()
    a = _run("prc", cfg=cfg)[2].item()
    cfg.pretrain.per_frame_negatives = False
    b = _run("prc", cfg=cfg)[2].item()
    assert a != pytest.approx(b) and math.isfinite(b)


@pytest.mark.parametrize("name", ["prc", "rad"])
def test_batch_without_regions_gives_zero_loss_with_gradients_for_ddp(name):
    # all points semantic-less (pooling found nothing): loss 0, but backward still reaches every trained part
    cfg = small_cfg()
    torch.manual_seed(0)
    model = StandInModel(cfg)
    method = build_method(name, model, cfg)
    batch = make_batch()
    batch["regions"] = torch.full_like(batch["regions"], -1)
    loss, _ = method(batch, torch.Generator().manual_seed(0))
    assert loss.item() == 0.0
    loss.backward()
    for part in TRAINED[name]:
        assert all(p.grad is not None for p in getattr(model, part).parameters() if p.requires_grad)


@pytest.mark.parametrize("name", ["prc", "pointcontrast", "proposalcontrast", "simipu"])
def test_decoder_features_train_and_checkpoint_lidar_decoder(name):
    cfg = small_cfg()
    cfg.pretrain.features = "decoder"
    method, model, loss, logs = _run(name, cfg=cfg)
    assert torch.isfinite(loss)
    loss.backward()
    for part in ("lidar_backbone", "lidar_decoder"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(model, part).parameters()), part
    assert all(p.grad is None for p in model.det_head.parameters())
    assert set(method.backbone_state_dict()) == TRAINED[name] | {"lidar_decoder"}
    # the projectors read decoder_channels (12), not lidar_channels (8)
    proj = method.p_plrc if name == "prc" else method.p_lidar if name == "simipu" else method.proj
    assert proj.net[0].in_features == cfg.model.decoder_channels


@pytest.mark.parametrize("name", ["rad", "bevdistill"])
def test_decoder_features_distil_from_frozen_backbone_and_decoder(name):
    cfg = small_cfg()
    cfg.pretrain.features = "decoder"
    method, model, loss, logs = _run(name, cfg=cfg)
    assert not model.lidar_decoder.training and not model.lidar_backbone.training
    bn = model.lidar_decoder[1]
    before = bn.running_mean.clone()
    loss, _ = method(make_batch(), torch.Generator().manual_seed(1))
    loss.backward()
    assert torch.equal(bn.running_mean, before)
    assert all(p.grad is None for part in ("lidar_backbone", "lidar_decoder")
               for p in getattr(model, part).parameters())
    assert any(p.grad is not None for p in model.camera_backbone.parameters())
    assert set(method.backbone_state_dict()) == TRAINED[name] | {"lidar_backbone", "lidar_decoder"}


def test_bad_features_or_sampling_is_refused():
    for field, value in (("features", "neck"), ("sampling", "grid")):
        cfg = small_cfg()
        setattr(cfg.pretrain, field, value)
        with pytest.raises(ValueError, match=f"pretrain.{field}"):
            build_method("prc", StandInModel(cfg), cfg)


def test_uniform_and_cell_sampling_both_run_and_cell_keeps_one_row_per_cell():
    cfg = small_cfg()
    cfg.pretrain.sampling = "uniform"
    u = _run("prc", cfg=cfg)[3]
    cfg = small_cfg()
    assert cfg.pretrain.sampling == "cell"
    method, _, _, c = _run("prc", cfg=cfg)
    batch = make_batch()
    f1, f2, s = method.two_view_features(batch, torch.Generator().manual_seed(0), batch["regions"])
    assert f1.shape == (len(s), cfg.model.lidar_channels)
    assert c["num_less"] <= u["num_less"]


def test_prc_decoder_on_the_real_bev_model(real_model):
    cfg, model, batch = real_model
    cfg = copy.deepcopy(cfg)
    cfg.pretrain.features = "decoder"
    model.zero_grad(set_to_none=True)
    method = build_method("prc", model, cfg)
    method.train()
    loss, _ = method(batch, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    for part in ("lidar_backbone", "lidar_decoder"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(model, part).parameters()), part
    assert set(method.backbone_state_dict()) == {"lidar_backbone", "lidar_decoder"}
    model.zero_grad(set_to_none=True)


def test_stage_facts_are_attributes_of_the_methods():
    from calico.pretrain.methods import METHODS, stage_class

    facts = {name: (stage_class(name).needs_regions, stage_class(name).needs_images, stage_class(name).teacher)
             for name in METHODS}
    assert {n for n, f in facts.items() if f[0]} == {"prc", "plrc", "rapc", "rad", "bevdistill"}
    assert {n for n, f in facts.items() if f[1]} == {"rad", "bevdistill", "vanilla_distill", "simipu"}
    assert {n for n, f in facts.items() if f[2]} == {"rad", "bevdistill", "vanilla_distill"}
    with pytest.raises(ValueError, match="unknown pre-training stage"):
        stage_class("nope")
