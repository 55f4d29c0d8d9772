"""Configs: one TrainConfig both training sections extend, presets, overrides, the dumped round trip."""

from __future__ import annotations

import dataclasses

import pytest

from calico.config import FinetuneConfig, PretrainConfig, TrainConfig, config_from_dict, get_config


def test_training_sections_share_one_train_config():
    shared = {f.name for f in dataclasses.fields(TrainConfig)}
    assert issubclass(PretrainConfig, TrainConfig) and issubclass(FinetuneConfig, TrainConfig)
    assert shared <= {f.name for f in dataclasses.fields(PretrainConfig)}
    cfg = get_config("cpu", ["pretrain.log_every=3", "pretrain.device=cpu", "finetune.log_every=7"])
    assert (cfg.pretrain.log_every, cfg.pretrain.device, cfg.finetune.log_every) == (3, "cpu", 7)


def test_cpu_preset_overrides_and_round_trip():
    cfg = get_config("cpu", ["model.head_convs=1", "augment.enabled=false"])
    assert cfg.model.bev_size == 96 and cfg.model.head_convs == 1 and cfg.augment.enabled is False
    again = config_from_dict(cfg.to_dict())
    assert again.to_dict() == cfg.to_dict()
    assert get_config("paper").model.head_convs == 1 and get_config("cpu").model.head_convs == 0


def test_bad_override_names_the_key():
    with pytest.raises(KeyError, match="finetune.nope"):
        get_config("cpu", ["finetune.nope=1"])
    with pytest.raises(ValueError, match="pretrain.log_every"):
        get_config("cpu", ["pretrain.log_every=0"])


def test_build_model_picks_parts_by_config_keys():
    from calico.models import build_model
    from calico.models.centerpoint import CenterHead
    from calico.models.model import LIDAR_BACKBONES

    cfg = get_config("cpu", ["model.modality=L", "model.with_seg=false"])
    model = build_model(cfg.model, cfg.data)
    assert isinstance(model.lidar_backbone, LIDAR_BACKBONES["pointpillars"]) and isinstance(model.det_head, CenterHead)
    cfg.model.lidar_backbone, cfg.model.det_head = "voxelnet", "transfusion"  # issue 16's parts
    model = build_model(cfg.model, cfg.data)
    assert type(model.lidar_backbone).__name__ == "VoxelNetBackbone"
    assert type(model.det_head).__name__ == "TransFusionHead"
    cfg.model.lidar_backbone = "pointnet"
    with pytest.raises(ValueError, match="model.lidar_backbone='pointnet'.*pointpillars.*voxelnet"):
        build_model(cfg.model, cfg.data)
