"""Typed configuration: dataclasses, two named presets and ``section.key=value`` overrides.

``paper`` holds the paper's settings (GPU scale). ``cpu`` is ``paper`` with a small set of overrides
(one inheritance level) so that the same code path runs end to end on a 2-core laptop in minutes.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLASSES: tuple[str, ...] = (
    "car", "truck", "construction_vehicle", "bus", "trailer",
    "barrier", "motorcycle", "bicycle", "pedestrian", "traffic_cone",
)
MAP_CLASSES: tuple[str, ...] = (
    "drivable_area", "ped_crossing", "walkway", "stop_line", "carpark_area", "divider",
)
CAMERAS: tuple[str, ...] = (
    "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT",
)


@dataclass
class DataConfig:
    dataroot: str = ""
    version: str = "v1.0-trainval"
    cache_dir: str = ""  # where `calico prepare`/`calico pool` write; "" = default (see calico.data.paths)
    # the splits file ({split: [scene or "scene[start:stop]"]}, calico.data.splits); "" = <dataroot>/<version>/splits.json.
    # One outside the dataroot splits a read-only dataset (calico/splits/nuscenes_scene0916_frames.json)
    splits_file: str = ""
    sweeps: int = 10  # earlier LiDAR sweeps aggregated per keyframe (paper: 10)
    ego_crop: float = 1.0  # drop points within this radius (m) of the sensor: the car's self-returns
    point_cloud_range: tuple[float, ...] = (-54.0, -54.0, -5.0, 54.0, 54.0, 3.0)
    image_size: tuple[int, int] = (256, 704)  # (H, W) fed to the camera backbone
    cameras: tuple[str, ...] = CAMERAS
    load_images: bool = True
    num_workers: int = 4
    nonfinite_points: str = "error"  # NaN/Inf LiDAR rows: "error" (name the file) or "drop"
    max_index_sweeps: int = 10  # sweeps recorded per keyframe by `calico prepare`


@dataclass
class PoolingConfig:
    """Semantic pooling (paper §2.2): ground removal, DBSCAN, filters. Defaults measured in BENCHMARKS.md."""

    # ground: slope-limited lower envelope on a BEV grid (calico/pooling/ground.py)
    ground_cell: float = 1.0  # m, cell of the ground model
    ground_thresh: float = 0.2  # m above the ground surface still counted as ground (at and beyond ground_near_range)
    ground_thresh_near: float = 0.2  # m: the threshold at the sensor, growing linearly to ground_thresh ...
    ground_near_range: float = 0.0  # m: ... at this BEV range (0: ground_thresh everywhere)
    ground_max_slope: float = 0.1  # rise per metre the ground surface may take from a neighbouring cell
    ground_passes: int = 4  # erosion passes: how far (cells) a low cell pulls others down; 0 = no limit
    ground_radial: bool = True  # also grow a surface from the sensor outward; the lower of the two counts
    # clustering
    eps: float = 0.75  # DBSCAN radius (paper)
    min_points: int = 5  # DBSCAN min samples (paper)
    # far objects' rings: DBSCAN sees heights scaled where adjacent rings lie > ring_eps_share * eps apart
    # (calico/pooling/rings.py)
    ring_scaling: bool = True
    ring_spacing_deg: float = 0.0  # the sensor's ring spacing near the horizon (HDL-32E 1.33, Pandar64 0.167); 0: estimate per cloud
    ring_eps_share: float = 0.6
    dbscan_backend: str = "numba"  # "numba" (ours, = sklearn's labels, fastest), "dbscan" (PyPI) or "sklearn"
    # filters (calico/pooling/filters.py): bounds a bus/trailer still satisfies
    max_extent: float = 14.0  # m, longest side of a kept cluster's BEV box
    size_pca: bool = True  # that box may also lie along the footprint's principal axis (else: axes or diagonals)
    max_area: float = 45.0  # m^2, BEV box area
    max_height: float = 4.5  # m, top of a kept cluster above the ground under it
    max_bottom: float = 1.5  # m, lowest point above ground: higher clusters float (canopy, signs)
    bottom_support_gap: float = 0.5  # m: ... unless most points have another return this far below (roof ring); 0: off
    bottom_support_max: float = 1.5  # m: ... and at most this far (LiDAR ring spacing at ~60 m, not canopy over a car)
    pole_min_height: float = 2.5  # m: a cluster this tall ...
    pole_max_width: float = 0.6  # m: ... and at most this long in BEV is a pole or trunk
    min_cluster_points: int = 5
    # rejected-as-too-large clusters are re-clustered at each of these smaller eps in turn (core._split)
    split_eps: tuple[float, ...] = (0.5, 0.35)
    split_kept_share: float = 0.3  # also cut kept clusters that split into >= 2 pieces of this share each (1: off)
    split_min_points: int = 5  # fewest points of a piece cut from a rejected cluster (more: purer, lower recall)
    split_max_extent: float = 40.0  # m: longer rejected clusters are not re-clustered (facades, hedges)
    # rows of barriers: thin, low clusters rejected as too large (and kept ones >= row_min_length) are cut along
    # their axis into pieces instead of re-clustered (calico/pooling/rows.py)
    row_piece_length: float = 2.5  # m, longest piece (about one barrier); 0: off
    row_max_width: float = 1.0  # m, widest row across its principal axis
    row_gap: float = 0.15  # m: a row is first cut where its points along it lie this far (and 4 spacings) apart
    row_min_length: float = 6.0  # m: kept regions this long (longer than a car), thin and low are cut as well
    row_min_height: float = 0.5  # m: top above ground at least this (kerbs and low clutter are not rows) ...
    row_max_height: float = 1.3  # m: ... and at most this (barriers ~1 m; walls, hedges, cars are taller)
    # kept clusters that fall apart in BEV at a small eps are cut (calico/pooling/bev_split.py)
    bev_split_eps: float = 0.2  # m, (x, y) DBSCAN radius inside kept clusters (> ring point spacing to 35 m); 0: off
    bev_split_min_points: int = 5  # DBSCAN min samples of that re-clustering
    bev_split_share: float = 0.2  # a cut needs >= 2 pieces holding this share of the cluster's points each
    bev_split_min_piece: int = 10  # ... and at least this many points each
    bev_split_max_extent: float = 8.0  # m: longer kept clusters are not tried (groups of people, a person by a car)
    max_coord: float = 1000.0  # m: points beyond this in any coordinate are treated as invalid (semantic-less)


@dataclass
class ModelConfig:
    modality: str = "L+C"  # "L", "C" or "L+C"
    # which implementation of each named part build_model uses (calico.models.model: LIDAR_BACKBONES, ...)
    lidar_backbone: str = "pointpillars"
    view_transform: str = "lss"
    det_head: str = "centerpoint"
    bn_momentum: float = 0.1  # every BatchNorm layer (see calico.models.model.build_model)
    # LiDAR branch (PointPillars)
    voxel_size: tuple[float, float, float] = (0.2, 0.2, 8.0)
    max_points_per_voxel: int = 10
    max_voxels: int = 60000
    voxelizer: str = "torch"  # "torch" (pure PyTorch scatter) or "spconv" (PointToVoxel)
    pfn_channels: int = 64
    backbone_layers: tuple[int, ...] = (3, 5, 5)
    backbone_strides: tuple[int, ...] = (3, 2, 2)  # 540 pillars -> 180 BEV cells in the paper config
    backbone_channels: tuple[int, ...] = (64, 128, 256)
    neck_channels: tuple[int, ...] = (128, 128, 128)  # per level after upsampling to the first level
    lidar_channels: int = 256  # F^LiDAR channels
    # LiDAR branch (VoxelNet, lidar_backbone="voxelnet"): BEVFusion's mean-VFE voxels and SECOND-style sparse
    # encoder (0.075 m voxels over the range: 1440 -> 180 cells through 3 stride-2 stages; 41 z cells -> 2)
    sparse_voxel_size: tuple[float, float, float] = (0.075, 0.075, 0.2)
    sparse_max_points_per_voxel: int = 10
    sparse_max_voxels: int = 120000  # per sample (BEVFusion's training value)
    sparse_channels: tuple[int, ...] = (16, 32, 64, 128)  # per stage; a stride-2 sparse conv between stages
    sparse_blocks: int = 2  # residual submanifold blocks per stage
    sparse_out_channels: int = 128  # F^LiDAR = this x the z cells left, then a 1x1 conv if != lidar_channels
    # camera branch
    camera_backbone: str = "swin_tiny_patch4_window7_224"  # any timm name; resnet50 / resnet18 also used
    camera_pretrained: bool = False  # ImageNet weights are opt-in (no download at run time)
    camera_neck_channels: int = 256
    camera_max_stride: int = 32  # deepest timm level used (16 drops a ResNet's last stage)
    camera_feat_stride: int = 8  # FPN output stride; timm levels at strides >= this are fused
    depth_bound: tuple[float, float, float] = (1.0, 60.0, 0.5)  # LSS depth bins (m): start, stop, step
    camera_channels: int = 80  # F^Camera channels
    # LSS pools onto a grid this many times finer than bev_size, then a stride-k conv brings it to bev_size
    # (BEVFusion: 0.3 m cells, 360 -> 180)
    camera_bev_downsample: int = 2
    # BEV grid shared by both branches and the heads
    bev_size: int = 180
    # decoders, fusion and heads
    decoder_channels: int = 256
    decoder_layers: int = 2  # 3x3 conv blocks per level of each modality's decoder (2 levels: stride 1, 2)
    head_channels: int = 64
    # hidden 3x3 conv layers of each CenterPoint regression/heatmap head (CenterPoint / BEVFusion: 1, i.e. mmdet3d's
    # num_conv=2). The 36 heads (6 tasks x 6 outputs) at full BEV resolution cost most of a step's FLOPs.
    head_convs: int = 1
    tasks: tuple[tuple[str, ...], ...] = (
        ("car",), ("truck", "construction_vehicle"), ("bus", "trailer"), ("barrier",),
        ("motorcycle", "bicycle"), ("pedestrian", "traffic_cone"),
    )
    with_det: bool = True
    with_seg: bool = True
    seg_range: float = 50.0  # BEV map segmentation over [-50, 50]^2 m
    seg_size: int = 200
    # CenterPoint nuScenes settings: L1 code weights (offset 2, z 1, log size 3, sin/cos 2, velocity 2),
    # weight of the box loss against the heatmap loss, Gaussian radius parameters
    code_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2)
    bbox_loss_weight: float = 0.25
    gaussian_overlap: float = 0.1
    min_radius: int = 2
    seg_loss: str = "focal"  # "focal" (sigmoid focal, BEVFusion default) or "bce"
    score_threshold: float = 0.1
    max_detections: int = 500
    nms: str = "circle"  # "circle" or "maxpool"
    # circle NMS per task as CenterPoint nuScenes: a box is suppressed when its squared BEV centre distance
    # (m^2) to a higher-scoring box of the same class is <= this value (CenterPoint's `min_radius`)
    nms_radius: tuple[float, ...] = (4.0, 12.0, 10.0, 1.0, 0.85, 0.175)
    nms_pre_max: int = 1000  # top-k candidates per task before circle NMS
    nms_post_max: int = 83  # kept per task after circle NMS
    # TransFusion head (det_head="transfusion", BEVFusion's nuScenes settings): top-K heatmap queries, one
    # decoder layer, Hungarian matching with cost tf_cls_cost * focal + tf_reg_cost * L1(BEV centre / range);
    # box L1 reuses code_weights and bbox_loss_weight, classes are the union of `tasks`
    tf_hidden: int = 128
    tf_proposals: int = 200
    tf_heads: int = 8
    tf_ffn: int = 256
    tf_dropout: float = 0.1
    tf_cls_cost: float = 0.15
    tf_reg_cost: float = 0.25


SCHEDULES = ("cyclic", "onecycle", "constant")


@dataclass
class TrainConfig:
    """What the training engine reads (``calico.engine.Trainer``); pre-training and fine-tuning extend it."""

    epochs: int = 20
    batch_size: int = 4  # per process (DDP multiplies it by the number of processes)
    lr: float = 2e-4  # the cyclic schedule's starting lr (paper App. B); peaks at 10x
    weight_decay: float = 0.01  # 0.2 helps against over-fitting with few labels (paper App. B)
    grad_clip: float = 35.0  # max gradient L2 norm (App. B); <= 0 disables
    schedule: str = "cyclic"  # "cyclic" (BEVFusion's cyclic lr/momentum), "onecycle" or "constant"
    ckpt_every: int = 500  # steps between last.pt refreshes (also at every epoch end)
    keep_epoch_ckpts: bool = True  # epoch_XXX.pt besides last.pt
    amp: bool = True  # autocast on CUDA only; CPU runs fp32
    amp_dtype: str = "auto"  # "bf16", "fp16" (+ GradScaler) or "auto" (bf16 where the GPU supports it)
    max_steps: int = 0  # > 0 caps the optimiser steps (smoke runs); the schedule spans the capped run
    log_every: int = 10  # steps between TensorBoard / log.txt scalars
    device: str = "auto"  # "auto" (CUDA if available), "cpu" or "cuda"


@dataclass
class PretrainConfig(TrainConfig):
    stage: str = "prc"
    alpha: float = 0.5
    tau: float = 0.07
    num_rich: int = 1024  # N semantic-rich points
    num_less: int = 1024  # M semantic-less points
    rot_range: float = 90.0  # degrees, U(-rot, rot)
    scale_range: tuple[float, float] = (0.9, 1.1)
    flip_prob: float = 0.5  # flip along X and along Y, each drawn independently (mmdet3d RandomFlip3D)
    # softmax denominators of eq. 1-3 over the N + M points of the anchor's own point cloud (the paper's
    # sum_{j=1}^{N+M}); False: every sampled point of the batch is a negative
    per_frame_negatives: bool = True
    proj_hidden: int = 256
    proj_out: int = 128
    # baselines (paper Tables 1, 7, 8)
    proposal_anchors: int = 256  # ProposalContrast: random anchors per frame
    proposal_radius: float = 2.0  # m, BEV ball-query radius of a ProposalContrast proposal
    simipu_points: int = 1024  # SimIPU: LiDAR points per frame that project into some image
    # which points are contrasted (calico/pretrain/sampling.py): "uniform" draws rows uniformly; "cell" keeps at
    # most one row per F^LiDAR cell (per region within a cell for rich rows), balanced over range
    sampling: str = "cell"
    # the BEV map the contrast reads: "backbone" (F^LiDAR, the paper) or "decoder" (also pre-trains lidar_decoder)
    features: str = "backbone"


@dataclass
class AugmentConfig:
    """Fine-tuning augmentation (``calico.data.augment.augment_sample``), BEVFusion's nuScenes settings."""

    enabled: bool = True
    rot_range: float = 45.0  # degrees, global rotation U(-rot, rot) about +z (BEVFusion rot_lim ±0.785 rad)
    scale_range: tuple[float, float] = (0.9, 1.1)  # global scale (BEVFusion resize_lim)
    translate_std: float = 0.5  # m, global translation N(0, std) per axis (BEVFusion trans_lim)
    flip_prob: float = 0.5  # flip along x and along y, each drawn independently (RandomFlip3D)
    paste: bool = True  # GT-database paste of labeled objects (LiDAR-only models, see paste_with_camera)
    paste_max: int = 10  # objects pasted per sample at most
    paste_with_camera: bool = False  # pasted points have no pixels: off for camera models (BEVFusion's fade)
    image_scale_range: tuple[float, float] = (0.9, 1.1)  # extra image resize before the crop (ImageAug3D)
    image_rot_range: float = 5.4  # degrees, image rotation U(-rot, rot) (BEVFusion rot_lim)


@dataclass
class FinetuneConfig(TrainConfig):
    fraction: float = 1.0
    # split names are roles each version names its own way (calico.data.splits.VERSION_SPLITS: v1.0-mini's train
    # is mini_train, val mini_val); a dataset's splits file (data.splits_file) wins
    train_split: str = "train"  # split the label fraction is drawn from
    val_split: str = "val"  # evaluated after training when it exists
    # lr multiplier of the model parts loaded from --init (1: one lr for all, the paper's AdamW); < 1 keeps a
    # pre-trained backbone close to what pre-training learnt while the random heads train at the full lr
    pretrained_lr_mult: float = 1.0


@dataclass
class Config:
    name: str = "paper"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    pooling: PoolingConfig = field(default_factory=PoolingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The CPU preset: the same code path at a small size (coarse pillars, a small grid, ResNet-18, small images).
CPU_OVERRIDES: dict[str, Any] = {
    "data.sweeps": 3,
    "data.image_size": (96, 256),
    "data.num_workers": 0,
    "data.point_cloud_range": (-48.0, -48.0, -5.0, 48.0, 48.0, 3.0),
    "model.voxel_size": (0.5, 0.5, 8.0),
    "model.max_voxels": 16000,
    "model.pfn_channels": 32,
    "model.backbone_layers": (1, 2, 2),
    "model.backbone_strides": (2, 2, 2),
    "model.backbone_channels": (32, 64, 64),
    "model.neck_channels": (32, 32, 32),
    "model.lidar_channels": 64,
    "model.sparse_voxel_size": (0.25, 0.25, 0.4),  # 384 x 384 x 21 voxels, two stride-2 stages -> 96 cells
    "model.sparse_max_voxels": 30000,
    "model.sparse_channels": (8, 16, 32),
    "model.sparse_blocks": 1,
    "model.sparse_out_channels": 32,
    "model.tf_hidden": 32,
    "model.tf_proposals": 50,
    "model.tf_heads": 4,
    "model.tf_ffn": 64,
    "model.camera_backbone": "resnet18",
    "model.camera_max_stride": 16,
    "model.camera_neck_channels": 64,
    "model.camera_bev_downsample": 1,
    "model.depth_bound": (1.0, 49.0, 2.0),
    "model.camera_channels": 32,
    "model.bev_size": 96,
    "model.decoder_channels": 64,
    "model.decoder_layers": 1,
    "model.head_channels": 32,
    "model.head_convs": 0,
    "model.seg_size": 100,
    "pretrain.epochs": 4,
    "pretrain.batch_size": 2,
    "pretrain.num_rich": 512,
    "pretrain.num_less": 512,
    "pretrain.proj_hidden": 128,
    "pretrain.proj_out": 64,
    "pretrain.amp": False,
    "finetune.epochs": 10,
    "finetune.batch_size": 2,
    "finetune.lr": 5e-4,
    "finetune.amp": False,
}

PRESETS: dict[str, dict[str, Any]] = {"paper": {}, "cpu": CPU_OVERRIDES}


def _parse_value(text: str, current: Any) -> Any:
    """Parse an override string into the type of the field it replaces."""
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {text!r}")
    if isinstance(current, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"cannot parse {text!r} as a Python literal") from exc
    if isinstance(current, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a tuple, got {text!r}")
        return tuple(tuple(v) if isinstance(v, list) else v for v in value)
    if isinstance(current, float) and isinstance(value, int):
        return float(value)
    if type(current) is not type(value):
        raise ValueError(f"expected {type(current).__name__}, got {text!r}")
    return value


def apply_overrides(cfg: Config, overrides: dict[str, Any] | list[str]) -> Config:
    """Apply ``{"section.key": value}`` or ``["section.key=value", ...]`` to ``cfg`` in place."""
    items: list[tuple[str, Any, bool]] = []
    if isinstance(overrides, dict):
        items = [(k, v, False) for k, v in overrides.items()]
    else:
        for text in overrides:
            if "=" not in text:
                raise ValueError(f"override {text!r} must look like section.key=value")
            key, value = text.split("=", 1)
            items.append((key.strip(), value.strip(), True))
    for key, value, from_text in items:
        parts = key.split(".")
        target: Any = cfg
        for part in parts[:-1]:
            if not hasattr(target, part):
                raise KeyError(f"unknown config section {part!r} in override {key!r}")
            target = getattr(target, part)
        leaf = parts[-1]
        if not dataclasses.is_dataclass(target) or leaf not in {f.name for f in dataclasses.fields(target)}:
            raise KeyError(f"unknown config key {key!r}")
        current = getattr(target, leaf)
        if from_text:
            try:
                value = _parse_value(value, current)
            except ValueError as exc:
                raise ValueError(f"override {key}: {exc}") from exc
        setattr(target, leaf, value)
    return cfg


def get_config(name: str = "paper", overrides: list[str] | None = None) -> Config:
    """Build a named preset (``paper`` or ``cpu``), or load a dumped ``config.json``, then apply overrides."""
    if name in PRESETS:
        cfg = Config(name=name)
        apply_overrides(cfg, PRESETS[name])
    elif Path(name).is_file():
        try:
            d = json.loads(Path(name).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{name}: not a readable config.json ({exc})") from exc
        if not isinstance(d, dict):
            raise ValueError(f"{name}: not a config.json (a JSON object of sections), got {type(d).__name__}")
        try:
            cfg = config_from_dict(d)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{name}: {exc}") from exc
    else:
        raise ValueError(f"unknown config {name!r}: use one of {sorted(PRESETS)} or a config.json path")
    if overrides:
        apply_overrides(cfg, overrides)
    return validate_config(cfg)


def config_from_dict(d: dict[str, Any]) -> Config:
    """Inverse of ``Config.to_dict`` (lists come back as tuples where the field is a tuple)."""
    cfg = Config(name=d.get("name", "paper"), seed=d.get("seed", 0))
    flat: dict[str, Any] = {}
    for section in ("data", "pooling", "model", "pretrain", "finetune", "augment"):
        for key, value in d.get(section, {}).items():
            current = getattr(getattr(cfg, section), key, None)
            if isinstance(current, tuple) and isinstance(value, list):
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            flat[f"{section}.{key}"] = value
    return validate_config(apply_overrides(cfg, flat))


# ------------------------------------------------------------------------------------------ validation
MODALITIES: tuple[str, ...] = ("L", "C", "L+C")


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate_config(cfg: Config) -> Config:
    """Check every field's type and range once; raise a one-line ``ValueError`` naming the key and the
    allowed range. Called wherever a config is built (``get_config``, ``config_from_dict``)."""
    errors: list[str] = []

    def bad(key: str, value: Any, want: str) -> None:
        errors.append(f"{key}={value!r} is invalid: must be {want}")

    def num(key: str, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
            hi_open: bool = False, integer: bool = False) -> None:
        section, _, leaf = key.rpartition(".")
        v = getattr(getattr(cfg, section) if section else cfg, leaf)
        lo_s = "" if lo is None else f"{'>' if lo_open else '>='} {lo}"
        hi_s = "" if hi is None else f"{'<' if hi_open else '<='} {hi}"
        want = ("an integer" if integer else "a number") + (" " if lo_s or hi_s else "") + \
            " and ".join(s for s in (lo_s, hi_s) if s)
        if not _is_num(v) or (integer and not isinstance(v, int)):
            return bad(key, v, want)
        if v != v or (lo is not None and (v <= lo if lo_open else v < lo)) or \
                (hi is not None and (v >= hi if hi_open else v > hi)):
            return bad(key, v, want)

    def choice(key: str, allowed: tuple[str, ...]) -> None:
        section, _, leaf = key.rpartition(".")
        v = getattr(getattr(cfg, section), leaf)
        if v not in allowed:
            bad(key, v, f"one of {', '.join(allowed)}")

    def boolean(key: str) -> None:
        section, _, leaf = key.rpartition(".")
        v = getattr(getattr(cfg, section), leaf)
        if not isinstance(v, bool):
            bad(key, v, "true or false")

    def seq(key: str, n: int | None, *, positive: bool = False, integer: bool = False,
            increasing: bool = False, nonneg: bool = False) -> bool:
        section, _, leaf = key.rpartition(".")
        v = getattr(getattr(cfg, section), leaf)
        parts = [f"{n} " if n is not None else "", "positive " if positive else "",
                 "non-negative " if nonneg else "", "integers" if integer else "numbers"]
        want = "".join(parts) + (" (low <= high)" if increasing else "")
        ok = isinstance(v, (tuple, list)) and (n is None or len(v) == n) and len(v) > 0 and \
            all(_is_num(x) and (isinstance(x, int) or not integer) and x == x for x in v)
        if ok and positive:
            ok = all(x > 0 for x in v)
        if ok and nonneg:
            ok = all(x >= 0 for x in v)
        if ok and increasing:
            ok = all(a <= b for a, b in zip(v, v[1:]))
        if not ok:
            bad(key, v, want)
        return ok

    num("seed", 0, integer=True)
    # data
    if not isinstance(cfg.data.dataroot, str):
        bad("data.dataroot", cfg.data.dataroot, "a folder path")
    if not isinstance(cfg.data.splits_file, str):
        bad("data.splits_file", cfg.data.splits_file, "a file path, or \"\" for <dataroot>/<version>/splits.json")
    num("data.max_index_sweeps", 0, integer=True)
    mis = cfg.data.max_index_sweeps if isinstance(cfg.data.max_index_sweeps, int) else 10
    num("data.sweeps", 0, max(mis, 0), integer=True)
    num("data.ego_crop", 0)
    pcr = cfg.data.point_cloud_range
    if seq("data.point_cloud_range", 6) and not all(pcr[i] < pcr[i + 3] for i in range(3)):
        bad("data.point_cloud_range", pcr, "(x0, y0, z0, x1, y1, z1) with x0 < x1, y0 < y1, z0 < z1")
    seq("data.image_size", 2, positive=True, integer=True)
    cams = cfg.data.cameras
    if not isinstance(cams, (tuple, list)) or not cams or not all(isinstance(c, str) for c in cams):
        bad("data.cameras", cams, "a non-empty list of camera names")
    boolean("data.load_images")
    num("data.num_workers", 0, integer=True)
    choice("data.nonfinite_points", ("error", "drop"))
    # pooling
    p = "pooling."
    for key in ("ground_cell", "eps", "max_extent", "max_area", "max_height", "max_coord"):
        num(p + key, 0, lo_open=True)
    for key in ("ground_thresh", "ground_thresh_near", "ground_near_range", "ground_max_slope", "max_bottom",
                "bottom_support_gap", "bottom_support_max",
                "pole_min_height", "pole_max_width", "split_max_extent", "bev_split_eps", "bev_split_max_extent",
                "row_piece_length", "row_max_width", "row_gap", "ring_spacing_deg", "row_min_length", "row_min_height", "row_max_height"):
        num(p + key, 0)
    for key in ("ground_passes", "min_cluster_points", "split_min_points", "bev_split_min_points",
                "bev_split_min_piece"):
        num(p + key, 0, integer=True)
    num(p + "min_points", 1, integer=True)
    if cfg.pooling.row_min_height > cfg.pooling.row_max_height:
        bad(p + "row_min_height", cfg.pooling.row_min_height, f"<= pooling.row_max_height ({cfg.pooling.row_max_height})")
    num(p + "split_kept_share", 0, 1)
    num(p + "ring_eps_share", 0, 1, lo_open=True)
    num(p + "bev_split_share", 0, 1)
    boolean(p + "ground_radial")
    boolean(p + "size_pca")
    boolean(p + "ring_scaling")
    choice(p + "dbscan_backend", ("numba", "dbscan", "sklearn"))
    sp = cfg.pooling.split_eps
    if not (isinstance(sp, (tuple, list)) and all(_is_num(x) and x > 0 for x in sp)):
        bad(p + "split_eps", sp, "a list of positive numbers (may be empty)")
    # model
    m = "model."
    choice(m + "modality", MODALITIES)
    for key in ("lidar_backbone", "view_transform", "det_head"):  # the choices are checked by build_model
        if not isinstance(getattr(cfg.model, key), str) or not getattr(cfg.model, key):
            bad(m + key, getattr(cfg.model, key), "the name of an implementation")
    choice(m + "voxelizer", ("torch", "spconv"))
    choice(m + "seg_loss", ("focal", "bce"))
    choice(m + "nms", ("circle", "maxpool"))
    seq(m + "voxel_size", 3, positive=True)
    seq(m + "sparse_voxel_size", 3, positive=True)
    seq(m + "sparse_channels", None, integer=True, positive=True)
    db = cfg.model.depth_bound
    if seq(m + "depth_bound", 3, positive=True) and not db[0] < db[1]:
        bad(m + "depth_bound", db, "(start, stop, step) with 0 < start < stop and step > 0")
    for key in ("max_points_per_voxel", "max_voxels", "pfn_channels", "lidar_channels", "camera_neck_channels",
                "camera_channels", "camera_bev_downsample", "bev_size", "decoder_channels", "head_channels",
                "seg_size", "camera_max_stride", "camera_feat_stride", "max_detections", "nms_pre_max",
                "nms_post_max", "sparse_max_points_per_voxel", "sparse_max_voxels", "sparse_blocks",
                "sparse_out_channels", "tf_hidden", "tf_proposals", "tf_heads", "tf_ffn"):
        num(m + key, 1, integer=True)
    num(m + "tf_dropout", 0, 1, hi_open=True)
    num(m + "tf_cls_cost", 0)
    num(m + "tf_reg_cost", 0)
    num(m + "decoder_layers", 0, integer=True)
    num(m + "min_radius", 0, integer=True)
    num(m + "bn_momentum", 0, 1)
    num(m + "seg_range", 0, lo_open=True)
    num(m + "bbox_loss_weight", 0)
    num(m + "gaussian_overlap", 0, 1, lo_open=True, hi_open=True)
    num(m + "score_threshold", 0, 1)
    lens = [len(v) if isinstance(v, (tuple, list)) else -1 for v in
            (cfg.model.backbone_layers, cfg.model.backbone_strides, cfg.model.backbone_channels,
             cfg.model.neck_channels)]
    for key in ("backbone_layers", "backbone_strides", "backbone_channels", "neck_channels"):
        seq(m + key, None, integer=True, nonneg=key == "backbone_layers", positive=key != "backbone_layers")
    if len(set(lens)) > 1:
        bad(m + "backbone_layers/strides/channels/neck_channels", tuple(lens), "lists of one length")
    seq(m + "code_weights", 10, nonneg=True)
    tasks = cfg.model.tasks
    if not (isinstance(tasks, (tuple, list)) and tasks and all(isinstance(t, (tuple, list)) and t and
                                                             all(c in CLASSES for c in t) for t in tasks)):
        bad(m + "tasks", tasks, f"a non-empty list of non-empty groups of class names from {CLASSES}")
    elif seq(m + "nms_radius", None, nonneg=True) and len(cfg.model.nms_radius) != len(tasks):
        bad(m + "nms_radius", cfg.model.nms_radius, f"{len(tasks)} values (one per task)")
    for key in ("with_det", "with_seg", "camera_pretrained"):
        boolean(m + key)
    if not isinstance(cfg.model.camera_backbone, str) or not cfg.model.camera_backbone:
        bad(m + "camera_backbone", cfg.model.camera_backbone, "a timm model name")
    # pretrain
    t = "pretrain."
    if not isinstance(cfg.pretrain.stage, str) or not cfg.pretrain.stage:
        bad(t + "stage", cfg.pretrain.stage, "a stage name (prc, rad, ...)")
    num(t + "alpha", 0, 1)
    num(t + "tau", 0, lo_open=True)
    for key in ("num_rich", "num_less"):
        num(t + key, 0, integer=True)
    for key in ("proj_hidden", "proj_out", "proposal_anchors", "simipu_points"):
        num(t + key, 1, integer=True)
    num(t + "rot_range", 0, 180)
    num(t + "flip_prob", 0, 1)
    num(t + "proposal_radius", 0, lo_open=True)
    seq(t + "scale_range", 2, positive=True, increasing=True)
    choice(t + "sampling", ("uniform", "cell"))
    choice(t + "features", ("backbone", "decoder"))
    boolean(t + "per_frame_negatives")
    # augment
    a = "augment."
    num(a + "rot_range", 0, 180)
    num(a + "translate_std", 0)
    num(a + "flip_prob", 0, 1)
    num(a + "paste_max", 0, integer=True)
    num(a + "image_rot_range", 0, 180)
    seq(a + "scale_range", 2, positive=True, increasing=True)
    seq(a + "image_scale_range", 2, positive=True, increasing=True)
    for key in ("enabled", "paste", "paste_with_camera"):
        boolean(a + key)
    # finetune
    f = "finetune."
    num(f + "fraction", 0, 1, lo_open=True)
    num(f + "pretrained_lr_mult", 0)
    for sec in ("pretrain.", "finetune."):  # the TrainConfig fields both sections share
        num(sec + "epochs", 0, integer=True)
        num(sec + "batch_size", 1, integer=True)
        num(sec + "lr", 0, lo_open=True)
        num(sec + "weight_decay", 0)
        num(sec + "grad_clip")
        choice(sec + "schedule", SCHEDULES)
        num(sec + "ckpt_every", 0, integer=True)
        num(sec + "max_steps", 0, integer=True)
        num(sec + "log_every", 1, integer=True)
        choice(sec + "amp_dtype", ("auto", "bf16", "fp16"))
        choice(sec + "device", ("auto", "cpu", "cuda"))
        for key in ("keep_epoch_ckpts", "amp"):
            boolean(sec + key)
    if errors:
        more = f" (and {len(errors) - 1} more: {'; '.join(errors[1:3])})" if len(errors) > 1 else ""
        raise ValueError(f"{errors[0]}{more}")
    return cfg
