"""calico export / finetune --init with mmdetection3d and OpenPCDet files: the key maps are proven by loading the
export into those frameworks' layouts (rebuilt in tests/foreign_layouts.py) with strict=True and by running the
same input through both; foreign files load back; wrong files get one-line errors."""

from __future__ import annotations

import pytest
import torch
from foreign_layouts import MMDet3DModel, OpenPCDetModel

from calico.cli import main
from calico.config import get_config
from calico.engine.checkpoint import FORMAT, CheckpointError
from calico.interop.convert import detect_format, load_init_any
from calico.interop.frameworks import their_config
from calico.models import build_model
from calico.models.voxelize import Pillars


def _randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Random weights and BN statistics: an identity-looking BN would hide a wrong map or layout."""
    g = torch.Generator().manual_seed(seed)
    for name, t in model.state_dict().items():
        if t.dtype.is_floating_point:
            t.copy_(torch.rand(t.shape, generator=g) + 0.5 if "running_var" in name
                    else torch.randn(t.shape, generator=g) * 0.1)


def _checkpoint(tmp_path, overrides: list[str], name: str = "last.pt"):
    cfg = get_config("cpu", overrides)
    model = build_model(cfg.model, cfg.data).eval()
    _randomise(model)
    path = tmp_path / name
    torch.save({"format": FORMAT, "model": model.state_dict(), "config": cfg.to_dict(), "kind": "finetune"}, path)
    return cfg, model, path


def _export(path, fmt, out, capsys) -> tuple[dict, str]:
    assert main(["export", "--ckpt", str(path), "--format", fmt, "--out", str(out)]) == 0
    return torch.load(out, weights_only=True), capsys.readouterr().out


def _pillars(cfg, V: int = 40, T: int = 6) -> tuple[Pillars, torch.Tensor]:
    """Full pillars (every slot a real point: the frameworks' max also sees padded slots) and their (z, y, x)."""
    g = torch.Generator().manual_seed(1)
    ny = int((cfg.data.point_cloud_range[4] - cfg.data.point_cloud_range[1]) / cfg.model.voxel_size[1])
    cells = torch.randperm(ny * ny, generator=g)[:V]
    iy, ix = cells // ny, cells % ny
    lo, vs = cfg.data.point_cloud_range, cfg.model.voxel_size
    x = lo[0] + (ix[:, None] + torch.rand(V, T, generator=g)) * vs[0]
    y = lo[1] + (iy[:, None] + torch.rand(V, T, generator=g)) * vs[1]
    z = lo[2] + torch.rand(V, T, generator=g) * (lo[5] - lo[2])
    feats = torch.stack([x, y, z, torch.rand(V, T, generator=g), torch.rand(V, T, generator=g)], -1)
    coords = torch.stack([torch.zeros_like(iy), iy, ix], 1)
    return Pillars(feats, coords, torch.full((V,), T)), coords  # batch 0 and pillar z 0: (b, y, x) = (z, y, x)


def _same_lidar_branch(ours, theirs_vfe, theirs_backbone, cfg) -> None:
    pillars, zyx = _pillars(cfg)
    with torch.no_grad():
        assert torch.allclose(ours.pfn(pillars), theirs_vfe(pillars.features, zyx), atol=1e-5)
        x = torch.randn(1, cfg.model.pfn_channels, 32, 32)
        mine = torch.cat([up(f) for up, f in zip(ours.neck.ups, ours.backbone(x))], 1)  # before neck.out
        assert torch.allclose(mine, theirs_backbone(x), atol=1e-4)


def test_openpcdet_export_loads_strictly_and_computes_the_same(tmp_path, capsys):
    cfg, model, path = _checkpoint(tmp_path, ["model.modality=L"])
    obj, report = _export(path, "openpcdet", tmp_path / "pp.pth", capsys)
    assert detect_format(obj) == "openpcdet" and obj["calico"]["mapped"] == len(obj["model_state"])
    theirs = OpenPCDetModel(their_config(cfg, "openpcdet", model)).eval()
    theirs.load_state_dict(obj["model_state"], strict=True)
    # the stride-1 FPN branch is a Conv2d here and a ConvTranspose2d there: its weight's dims swap
    assert "layout swap01" in report and "no counterpart in OpenPCDet" in report
    assert "lidar_backbone.neck.out.* (6)" in report and "det_head.*" in report
    lb = model.lidar_backbone
    _same_lidar_branch(lb, theirs.vfe, theirs.backbone_2d, cfg)


def test_mmdet3d_export_covers_the_camera_branch(tmp_path, capsys):
    cfg, model, path = _checkpoint(tmp_path, ["model.camera_bev_downsample=2"])
    obj, report = _export(path, "mmdet3d", tmp_path / "bevfusion.pth", capsys)
    assert detect_format(obj) == "mmdet3d" and obj["meta"]["calico"]["config"]["model"]["camera_bev_downsample"] == 2
    theirs = MMDet3DModel(their_config(cfg, "mmdet3d", model)).eval()
    theirs.load_state_dict(obj["state_dict"], strict=True)
    for part in ("lidar_backbone -> pts_voxel_encoder", "camera_backbone -> img_backbone",
                 "view_transform -> view_transform", "layout swapHW", "layout bn_eps",
                 "camera_backbone.lateral.* (4)"):
        assert part in report, part
    _same_lidar_branch(model.lidar_backbone, theirs.pts_voxel_encoder, lambda x: theirs.pts_neck(theirs.pts_backbone(x)),
                       cfg)
    # BEVFusion's BEV rows run along x: the same map transposed gives the transposed output (eps folded in)
    x = torch.randn(1, cfg.model.camera_channels, 24, 24)
    with torch.no_grad():
        mine = model.view_transform.bev_conv(x)
        assert torch.allclose(theirs.view_transform.downsample(x.transpose(-1, -2)), mine.transpose(-1, -2), atol=1e-4)
    sd = model.state_dict()
    assert torch.equal(obj["state_dict"]["img_backbone.layer2.0.downsample.0.weight"],
                       sd["camera_backbone.net.layer2.0.downsample.0.weight"])


def test_exports_load_back_with_the_same_weights(tmp_path, capsys):
    cfg, model, path = _checkpoint(tmp_path, ["model.camera_bev_downsample=2"])
    own = model.state_dict()
    for fmt in ("openpcdet", "mmdet3d"):
        _export(path, fmt, tmp_path / f"{fmt}.pth", capsys)
        fresh = build_model(cfg.model, cfg.data)
        report = load_init_any(fresh, tmp_path / f"{fmt}.pth")
        printed = capsys.readouterr().out
        back = fresh.state_dict()
        lidar = [k for k in own if k.startswith("lidar_backbone.") and ".neck.out." not in k]
        assert all(torch.allclose(back[k].float(), own[k].float(), atol=1e-6) for k in lidar), fmt
        assert not torch.equal(back["lidar_backbone.neck.out.0.weight"], own["lidar_backbone.neck.out.0.weight"])
        assert report.parts["lidar_backbone"].missing == [k for k in (
            "neck.out.0.weight", "neck.out.1.weight", "neck.out.1.bias", "neck.out.1.running_mean",
            "neck.out.1.running_var", "neck.out.1.num_batches_tracked")]
        camera = report.parts["view_transform"].loaded
        assert camera == (20 if fmt == "mmdet3d" else 0), camera  # depthnet (2) + 3 x (conv + 5 BN tensors)
        assert "lidar_backbone: loaded" in printed
    vt = [k for k in own if k.startswith("view_transform.")]
    assert all(torch.allclose(back[k].float(), own[k].float(), atol=1e-5) for k in vt)


def test_foreign_head_weights_are_reported_not_loaded(tmp_path, capsys):
    cfg, model, path = _checkpoint(tmp_path, ["model.modality=L"])
    obj, _ = _export(path, "openpcdet", tmp_path / "pp.pth", capsys)
    obj["model_state"]["dense_head.conv_cls.weight"] = torch.zeros(10, 384, 1, 1)
    torch.save(obj, tmp_path / "with_head.pth")
    load_init_any(build_model(cfg.model, cfg.data), tmp_path / "with_head.pth")
    out = capsys.readouterr().out
    assert "no counterpart here (1 OpenPCDet tensors): dense_head" in out and "exported with" not in out
    # same shapes, another grid: loads, with a note naming the setting
    other = get_config("cpu", ["model.modality=L", "model.voxel_size=(0.25, 0.25, 8.0)", "model.bev_size=192"])
    load_init_any(build_model(other.model, other.data), tmp_path / "pp.pth")
    assert "note: exported with model.voxel_size=(0.5, 0.5, 8.0) (this model: (0.25, 0.25, 8.0))" in \
        capsys.readouterr().out


def test_wrong_files_get_one_line_errors(tmp_path, capsys):
    cfg, model, path = _checkpoint(tmp_path, ["model.modality=L"])
    _export(path, "openpcdet", tmp_path / "pp.pth", capsys)
    # a checkpoint of another config given to export
    assert main(["export", "--ckpt", str(path), "--format", "mmdet3d", "--out", str(tmp_path / "x.pth"),
                 "--config", "paper", "--set", "model.modality=L"]) == 1
    err = capsys.readouterr().err
    assert "does not fit config 'paper': lidar_backbone.pfn.linear.weight" in err and len(err.strip().splitlines()) == 1
    # another framework's file given to export
    assert main(["export", "--ckpt", str(tmp_path / "pp.pth"), "--format", "mmdet3d", "--out", str(tmp_path / "y")]) == 1
    err = capsys.readouterr().err
    assert "is an OpenPCDet checkpoint" in err and len(err.strip().splitlines()) == 1
    # an export of the cpu config given to a paper-config model
    paper = get_config("paper", ["model.modality=L"])
    with pytest.raises(CheckpointError, match=r"OpenPCDet checkpoint does not fit this model: "
                                              r"vfe\.pfn_layers\.0\.linear\.weight \(32, 11\)") as exc:
        load_init_any(build_model(paper.model, paper.data), tmp_path / "pp.pth")
    assert "\n" not in str(exc.value)
    # a foreign file with nothing this model maps, and a file of no known framework
    torch.save({"model_state": {"dense_head.conv_cls.weight": torch.zeros(2)}}, tmp_path / "head.pth")
    with pytest.raises(CheckpointError, match="has none of the tensors this model maps"):
        load_init_any(model, tmp_path / "head.pth")
    torch.save({"weights": {"a": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="neither a calico checkpoint"):
        load_init_any(model, tmp_path / "other.pth")


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    from conftest import prepared_tiny_world

    return prepared_tiny_world(tmp_path_factory, "export_world", 2)


def test_finetune_init_takes_a_foreign_file(tiny_world, tmp_path, capsys):
    data, cache = tiny_world
    cfg, model, path = _checkpoint(tmp_path, ["model.modality=L"])
    _export(path, "openpcdet", tmp_path / "pp.pth", capsys)
    args = ["finetune", "--config", "cpu", "--dataroot", str(data), "--version", "v1.0-synth", "--modality", "L",
            "--set", f"data.cache_dir={cache}", "finetune.device=cpu", "--max-steps", "1", "--no-eval"]
    assert main(args + ["--init", str(tmp_path / "pp.pth"), "--out", str(tmp_path / "ft")]) == 0
    out = capsys.readouterr().out
    assert "(OpenPCDet checkpoint)" in out and "lidar_backbone: loaded 72/78 tensors" in out
    bad = torch.load(tmp_path / "pp.pth", weights_only=True)
    bad["model_state"]["vfe.pfn_layers.0.linear.weight"] = torch.zeros(32, 10)  # 4 point features, not 5
    torch.save(bad, tmp_path / "bad.pth")
    assert main(args + ["--init", str(tmp_path / "bad.pth"), "--out", str(tmp_path / "ft2")]) == 1
    err = capsys.readouterr().err.strip()
    assert "vfe.pfn_layers.0.linear.weight (32, 10) maps to lidar_backbone.pfn.linear.weight (32, 11)" in err
    assert len(err.splitlines()) == 1


def test_mmdet3d_export_maps_a_swin_camera_backbone(tmp_path, capsys):
    """BEVFusion's Swin-T: every timm weight lands in mmdet's layout; only mmdet's output norms (norm1..3, which
    our FPN does not have) stay missing; patch merging computes the same after its channel reorder."""
    swin = ["model.camera_backbone=swin_tiny_patch4_window7_224", "model.camera_max_stride=32"]
    _, _, small = _checkpoint(tmp_path, swin, "small.pt")  # 96x256 images: timm shrinks the deep windows
    obj, report = _export(small, "mmdet3d", tmp_path / "small.pth", capsys)
    assert "the Swin is not mapped" in report and not any(k.startswith("img_backbone") for k in obj["state_dict"])
    cfg, model, path = _checkpoint(tmp_path, swin + ["data.image_size=(224, 448)", "model.camera_bev_downsample=2"])
    obj, report = _export(path, "mmdet3d", tmp_path / "swin.pth", capsys)
    assert "layout unfold: 3 tensor(s)" in report and "layout unfold_norm: 6 tensor(s)" in report
    theirs = MMDet3DModel(their_config(cfg, "mmdet3d", model)).eval()
    result = theirs.load_state_dict(obj["state_dict"], strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == [f"img_backbone.norm{i}.{p}" for i in (1, 2, 3) for p in ("bias", "weight")]
    net = model.camera_backbone.net
    # the bias table needs no re-layout: timm's index into it is mmdet's
    assert torch.equal(obj["state_dict"]["img_backbone.stages.2.blocks.3.attn.w_msa.relative_position_index"],
                       theirs.img_backbone.stages[2].blocks[3].attn.w_msa.relative_position_index)
    x = torch.randn(2, 8, 12, 96)
    with torch.no_grad():
        assert torch.allclose(net.layers_1.downsample(x), theirs.img_backbone.stages[0].downsample(x), atol=1e-5)
    fresh = build_model(cfg.model, cfg.data)
    report = load_init_any(fresh, tmp_path / "swin.pth", verbose=False)
    back, own = fresh.state_dict(), model.state_dict()
    swin = [k for k in own if k.startswith("camera_backbone.net.")]
    assert report.parts["camera_backbone"].loaded == len(swin)
    assert all(torch.allclose(back[k], own[k]) for k in swin)


def test_a_pretraining_checkpoint_exports_its_parts(tmp_path, capsys):
    cfg = get_config("cpu", ["model.modality=L"])
    model = build_model(cfg.model, cfg.data)
    _randomise(model)
    torch.save({"format": FORMAT, "parts": {"lidar_backbone": model.lidar_backbone.state_dict()},
                "config": cfg.to_dict(), "stage": "prc"}, tmp_path / "prc.pt")
    obj, report = _export(tmp_path / "prc.pt", "openpcdet", tmp_path / "prc.pth", capsys)
    assert "not in this checkpoint: lidar_decoder, fuser, det_head, seg_head" in report
    assert torch.equal(obj["model_state"]["backbone_2d.blocks.2.4.weight"],
                       model.state_dict()["lidar_backbone.backbone.blocks.2.1.0.weight"])
