"""Pre-training methods: one ``nn.Module`` per stage that turns a batch into a loss.

Every method wraps the BEV model (``calico.models.build_model``) and uses its named parts:
``model.lidar_backbone(batch) -> F^LiDAR (B, C_L, S, S)`` (reads ``batch["points"]``, ``batch["batch_size"]``),
``model.camera_backbone(images (B, N, 3, H, W)) -> (B*N, C_neck, h, w)`` and
``model.view_transform(img_feats, batch) -> F^Camera (B, C_C, S, S)``; BEV maps follow the raster of
``calico.models.bev`` (rows along +y, columns along +x over ``data.point_cloud_range``).

Interface used by the trainer (``calico/engine``):
``method(batch, generator) -> (loss, {name: float})``; ``method.trainable_parameters()`` (everything else in
the model has ``requires_grad=False`` after ``__init__``); ``method.backbone_state_dict() -> {part: state_dict}``
for fine-tuning. ``generator`` is a CPU ``torch.Generator``: it drives the view augmentation and the point
sampling, so a step is reproducible from (weights, batch, generator state).

LiDAR family (train ``lidar_backbone``): ``prc`` (eq. 1 + 2), ``plrc`` (eq. 1), ``rapc`` (eq. 2's RAPC term),
``pointcontrast``, ``proposalcontrast``. Camera family (train ``camera_backbone`` + ``view_transform`` against
a frozen LiDAR teacher, which the caller loads from the PRC checkpoint *before* building the method):
``rad`` (eq. 3), ``bevdistill``, ``vanilla_distill``. ``simipu`` trains both backbones jointly.

``pretrain.features == "decoder"`` makes every method read the LiDAR map after ``lidar_decoder``
(``decoder_channels``) instead of F^LiDAR: the LiDAR family and SimIPU then train and checkpoint
``lidar_decoder`` too, and the distillation teacher is ``lidar_backbone`` + ``lidar_decoder``.
``pretrain.sampling`` picks the point draw of ``calico.pretrain.sampling`` ("uniform" or "cell"; the cell
grid is the spatial shape of the map the rows are read from).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from calico.config import Config
from calico.data.batch import batch_size_of
from calico.models.bev import bev_cell_index, bev_coords, sample_bev
from calico.pretrain import losses
from calico.pretrain.augment import augment_batch_points
from calico.pretrain.projector import (
    Projector,
    ProposalAttentionPool,
    lidar_feature_channels,
    lidar_projector,
    rad_projector,
)
from calico.pretrain.sampling import SAMPLING_MODES, PointSample, sample_points

FEATURE_LEVELS = ("backbone", "decoder")


def require_regions(batch: dict, method: str) -> Tensor:
    """``batch["regions"]`` or a clear error: region-based methods need the semantic-pooling cache."""
    regions = batch.get("regions")
    if regions is None:
        raise ValueError(
            f"pre-training method {method!r} needs region ids but the batch has no 'regions': "
            "run `calico pool` to cache semantic pooling for this dataset first"
        )
    if regions.shape[0] != batch["points"].shape[0]:
        raise ValueError(
            f"batch['regions'] has {regions.shape[0]} entries but batch['points'] has {batch['points'].shape[0]} "
            "rows: the pooling cache does not match the loaded points (re-run `calico pool` with the same sweeps)"
        )
    return regions.long()


class PretrainMethod(nn.Module):
    """Base: holds the model, freezes every part not in ``trained_parts``, exposes the trainer interface.

    Facts the CLI and the study read from the class: ``needs_regions`` (the semantic-pooling cache),
    ``needs_images`` (decode the cameras), ``teacher`` (distils from a frozen LiDAR branch: needs --init).
    """

    trained_parts: tuple[str, ...] = ()
    needs_regions: bool = False
    needs_images: bool = False
    teacher: bool = False

    def __init__(self, model: nn.Module, cfg: Config) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        if cfg.pretrain.features not in FEATURE_LEVELS:
            raise ValueError(f"pretrain.features must be one of {FEATURE_LEVELS}, got {cfg.pretrain.features!r}")
        if cfg.pretrain.sampling not in SAMPLING_MODES:
            raise ValueError(f"pretrain.sampling must be one of {SAMPLING_MODES}, got {cfg.pretrain.sampling!r}")
        self.decoded = cfg.pretrain.features == "decoder"
        if self.decoded and "lidar_backbone" in self.trained_parts:
            # the contrast reads the decoder's output, so the decoder is trained (and checkpointed) with it
            self.trained_parts = (*self.trained_parts, "lidar_decoder")
        x0, y0, _, x1, y1, _ = cfg.data.point_cloud_range
        self.bev_range = (x0, y0, x1, y1)
        for name in self.trained_parts:
            if getattr(model, name, None) is None:
                raise ValueError(f"{type(self).__name__} trains model.{name} but the model has none "
                                 f"(model.modality={cfg.model.modality!r})")
        model.requires_grad_(False)
        for name in self.trained_parts:
            getattr(model, name).requires_grad_(True)

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        return (p for p in self.parameters() if p.requires_grad)

    def backbone_state_dict(self) -> dict[str, dict[str, Tensor]]:
        """``{part_name: state_dict}`` of the pre-trained model parts, to initialise fine-tuning."""
        return {name: getattr(self.model, name).state_dict() for name in self.trained_parts}

    def lidar_map(self, points: Tensor, batch_size: int) -> Tensor:
        """The LiDAR BEV map the contrast reads: F^LiDAR, then ``lidar_decoder`` when features="decoder"."""
        fmap = self.model.lidar_backbone({"points": points, "batch_size": batch_size})
        return self.model.lidar_decoder(fmap) if self.decoded else fmap

    def sample(self, batch_idx: Tensor, regions: Tensor, views_xy: list[Tensor], batch_size: int, num_rich: int,
               num_less: int, generator: torch.Generator, fmap: Tensor, allowed: Tensor | None = None) -> PointSample:
        """``sample_points`` with the configured mode; "cell" cells are those of ``fmap`` (B, C, rows, cols)."""
        return sample_points(batch_idx, regions, views_xy, self.bev_range, batch_size, num_rich, num_less,
                             generator, allowed=allowed, mode=self.cfg.pretrain.sampling,
                             grid_shape=(int(fmap.shape[-2]), int(fmap.shape[-1])))

    def sample_features(self, fmap: Tensor, xy: Tensor, batch_idx: Tensor) -> Tensor:
        """Bilinear interpolation of a BEV map at LiDAR-frame positions ``xy`` (K, 2) of frames ``batch_idx``."""
        return sample_bev(fmap, bev_coords(xy, self.cfg.data), batch_idx)

    def negatives_frame(self, sample: PointSample) -> Tensor | None:
        """``batch_idx`` for the losses when negatives are restricted to the anchor's frame, else None."""
        return sample.batch_idx if self.cfg.pretrain.per_frame_negatives else None

    def forward(self, batch: dict, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------------
# LiDAR family: two augmented views, one forward of the LiDAR branch on both (a 2B batch)
# ---------------------------------------------------------------------------------------------------


class _TwoViewLidar(PretrainMethod):
    trained_parts = ("lidar_backbone",)

    def two_view_features(
        self, batch: dict, generator: torch.Generator, regions: Tensor | None
    ) -> tuple[Tensor, Tensor, PointSample]:
        """Augment twice (T1, T2 per frame), sample points valid in both views, return their F^LiDAR features.

        Both views go through ``lidar_backbone`` as one batch of 2B frames (view 2's frames are B..2B-1),
        so BatchNorm sees both views, as in a shared-weight Siamese pass. Returns (f1, f2, sample).
        """
        pc = self.cfg.pretrain
        points = batch["points"]
        B = batch_size_of(batch)
        v1, _ = augment_batch_points(points, B, pc, generator)
        v2, _ = augment_batch_points(points, B, pc, generator)
        v2b = v2.clone()
        v2b[:, 0] += B
        # the forward does not touch the generator, so running it first leaves the draws as they were
        fmap = self.lidar_map(torch.cat([v1, v2b]), 2 * B)
        if regions is None:  # region-free baselines: N + M semantic-less rows
            sample = self.sample(points[:, 0].long(), torch.full_like(points[:, 0], -1, dtype=torch.long),
                                 [v1[:, 1:3], v2[:, 1:3]], B, 0, pc.num_rich + pc.num_less, generator, fmap)
        else:
            sample = self.sample(points[:, 0].long(), regions, [v1[:, 1:3], v2[:, 1:3]], B, pc.num_rich,
                                 pc.num_less, generator, fmap)
        v2 = v2b
        f1 = self.sample_features(fmap, v1[sample.index, 1:3], sample.batch_idx)
        f2 = self.sample_features(fmap, v2[sample.index, 1:3], sample.batch_idx + B)
        if len(sample) == 0:  # keep the backbone in the graph so DDP's all-reduce still sees its gradients
            f1 = f1 + 0.0 * fmap.sum()
        return f1, f2, sample


def _project_pair(proj: nn.Module, f1: Tensor, f2: Tensor) -> tuple[Tensor, Tensor]:
    """Both views through one projector call (shared BatchNorm statistics)."""
    out = proj(torch.cat([f1, f2]))
    return out[: f1.shape[0]], out[f1.shape[0]:]


class PointRegionContrast(_TwoViewLidar):
    """PRC (eq. 1 + 2): ``alpha * L_PLRC + (1 - alpha) * L_RAPC``; ``mode`` "plrc" / "rapc" keeps one term."""

    needs_regions = True

    def __init__(self, model: nn.Module, cfg: Config, mode: str = "prc") -> None:
        super().__init__(model, cfg)
        if mode not in ("prc", "plrc", "rapc"):
            raise ValueError(f"PointRegionContrast mode must be prc, plrc or rapc, got {mode!r}")
        self.mode = mode
        self.p_plrc = lidar_projector(cfg) if mode in ("prc", "plrc") else None
        self.p_rapc = lidar_projector(cfg) if mode in ("prc", "rapc") else None

    def forward(self, batch: dict, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        regions = require_regions(batch, self.mode)
        f1, f2, s = self.two_view_features(batch, generator, regions)
        tau, alpha = self.cfg.pretrain.tau, self.cfg.pretrain.alpha
        logs = {"num_rich": float(s.num_rich), "num_less": float(s.num_less)}
        terms = []
        if self.p_plrc is not None:
            z1, z2 = _project_pair(self.p_plrc, f1, f2)
            plrc = losses.plrc_loss(z1, z2, s.regions, tau, self.negatives_frame(s))
            logs["plrc"] = float(plrc.detach())
            terms.append((alpha if self.mode == "prc" else 1.0) * plrc)
        if self.p_rapc is not None:
            p1, p2 = _project_pair(self.p_rapc, f1, f2)
            rapc = losses.rapc_loss(p1, p2, s.regions, tau, self.negatives_frame(s))
            logs["rapc"] = float(rapc.detach())
            terms.append((1.0 - alpha if self.mode == "prc" else 1.0) * rapc)
        loss = sum(terms[1:], terms[0])
        logs["loss"] = float(loss.detach())
        return loss, logs


class PointContrast(_TwoViewLidar):
    """PointContrast baseline: N + M points drawn uniformly, InfoNCE with the same point as positive."""

    def __init__(self, model: nn.Module, cfg: Config) -> None:
        super().__init__(model, cfg)
        self.proj = lidar_projector(cfg)

    def forward(self, batch: dict, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        f1, f2, s = self.two_view_features(batch, generator, None)
        z1, z2 = _project_pair(self.proj, f1, f2)
        loss = losses.point_contrast_loss(z1, z2, self.cfg.pretrain.tau, self.negatives_frame(s))
        return loss, {"loss": float(loss.detach()), "num_points": float(len(s))}


class ProposalContrast(_TwoViewLidar):
    """ProposalContrast baseline: random anchors, fixed-radius BEV ball-query proposals over the sampled
    points, attention pooling into proposal features, InfoNCE across views on the proposals."""

    def __init__(self, model: nn.Module, cfg: Config) -> None:
        super().__init__(model, cfg)
        self.proj = lidar_projector(cfg)
        self.pool = ProposalAttentionPool(cfg.pretrain.proj_out)

    def forward(self, batch: dict, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        pc = self.cfg.pretrain
        f1, f2, s = self.two_view_features(batch, generator, None)
        z1, z2 = _project_pair(self.proj, f1, f2)
        # proposals in the un-augmented frame: the same physical ball in both views
        xy = batch["points"][s.index, 1:3].float()
        bidx_cpu = s.batch_idx.cpu()
        anchors = []
        for b in range(batch_size_of(batch)):
            rows = (bidx_cpu == b).nonzero().squeeze(1)
            anchors.append(rows[torch.randperm(rows.numel(), generator=generator)[: pc.proposal_anchors]])
        anchors_t = torch.cat(anchors).to(z1.device)
        loss = losses.proposal_contrast_loss(z1, z2, xy, s.batch_idx, anchors_t, pc.proposal_radius, self.pool,
                                             pc.tau, per_frame=pc.per_frame_negatives)
        return loss, {"loss": float(loss.detach()), "num_anchors": float(anchors_t.numel())}


# ---------------------------------------------------------------------------------------------------
# Camera family: distillation from the frozen (PRC-pre-trained) LiDAR branch
# ---------------------------------------------------------------------------------------------------


class _FrozenLidarTeacher(PretrainMethod):
    """Camera branch trained against the LiDAR teacher (``lidar_backbone``, plus ``lidar_decoder`` when
    features="decoder"), kept in eval mode, no grad, run under no_grad."""

    trained_parts = ("camera_backbone", "view_transform")
    needs_images = True
    teacher = True

    def __init__(self, model: nn.Module, cfg: Config) -> None:
        super().__init__(model, cfg)
        self.teacher_parts = ("lidar_backbone", "lidar_decoder") if self.decoded else ("lidar_backbone",)
        for name in self.teacher_parts:
            if getattr(model, name, None) is None:
                raise ValueError(f"{type(self).__name__} distils from model.{name} but the model has none")
            getattr(model, name).requires_grad_(False)
            getattr(model, name).eval()

    def train(self, mode: bool = True) -> _FrozenLidarTeacher:
        super().train(mode)
        for name in self.teacher_parts:
            getattr(self.model, name).eval()  # the teacher's BatchNorm statistics must not drift
        return self

    def backbone_state_dict(self) -> dict[str, dict[str, Tensor]]:
        """The trained camera parts plus the (unchanged) teacher: one checkpoint initialises both branches,
        e.g. a RAD checkpoint is the complete CALICO initialisation (PRC LiDAR + RAD camera)."""
        teacher = {name: getattr(self.model, name).state_dict() for name in self.teacher_parts}
        return {**super().backbone_state_dict(), **teacher}

    def teacher_and_student(self, batch: dict) -> tuple[Tensor, Tensor]:
        """(LiDAR teacher map detached, F^Camera) on the un-augmented batch."""
        with torch.no_grad():
            lidar = self.lidar_map(batch["points"], batch_size_of(batch))
        cam = self.model.view_transform(self.model.camera_backbone(batch["images"]), batch)
        return lidar.detach(), cam


class RegionAwareDistillation(_FrozenLidarTeacher):
    """RAD (eq. 3): projected camera features at the sampled semantic-rich points against the LiDAR features
    at the same points, every pooled region weighted equally."""

    needs_regions = True

    def __init__(self, model: nn.Module, cfg: Config) -> None:
        super().__init__(model, cfg)
        self.p_rad = rad_projector(cfg)

    def forward(self, batch: dict, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        pc = self.cfg.pretrain
        regions = require_regions(batch, "rad")
        points = batch["points"]
        B = batch_size_of(batch)
        lidar, cam = self.teacher_and_student(batch)
        s = self.sample(points[:, 0].long(), regions, [points[:, 1:3]], B, pc.num_rich, 0, generator, lidar)
        xy = points[s.index, 1:3]
        c_feat = self.sample_features(cam, xy, s.batch_idx)
        if len(s) == 0:  # keep the camera branch in the graph so DDP's all-reduce still sees its gradients
            c_feat = c_feat + 0.0 * cam.sum()
        c = self.p_rad(c_feat)
        l = self.sample_features(lidar, xy, s.batch_idx)  # noqa: E741
        loss = losses.rad_loss(c, l, s.regions, pc.tau, self.negatives_frame(s))
        n_regions = int(torch.unique(s.regions).numel())
        return loss, {"loss": float(loss.detach()), "num_rich": float(s.num_rich), "num_regions": float(n_regions)}


def region_bev_mask(points: Tensor, regions: Tensor, batch_size: int, size: int,
                    bev_range: tuple[float, float, float, float]) -> Tensor:
    """(B, S, S) bool: BEV cells (raster of ``calico.models.bev``) holding at least one semantic-rich point."""
    iy, ix = bev_cell_index(points[:, 1:3], bev_range, (size, size))
    keep = (regions >= 0) & (ix >= 0) & (ix < size) & (iy >= 0) & (iy < size)
    mask = torch.zeros(batch_size * size * size, dtype=torch.bool, device=points.device)
    flat = (points[keep, 0].long() * size + iy[keep]) * size + ix[keep]
    mask[flat] = True
    return mask.view(batch_size, size, size)


class _DenseDistill(_FrozenLidarTeacher):
    masked = True

    def __init__(self, model: nn.Module, cfg: Config) -> None:
        super().__init__(model, cfg)
        # student adapter: F^Camera channels -> teacher channels (1x1 conv), dropped after pre-training
        self.adapter = nn.Conv2d(cfg.model.camera_channels, lidar_feature_channels(cfg), 1)

    def forward(self, batch: dict, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        lidar, cam = self.teacher_and_student(batch)
        student = self.adapter(cam)
        if self.masked:
            regions = require_regions(batch, "bevdistill")
            mask = region_bev_mask(batch["points"], regions, lidar.shape[0], lidar.shape[-1], self.bev_range)
            loss = losses.bevdistill_loss(student, lidar, mask)
            return loss, {"loss": float(loss.detach()), "mask_cells": float(mask.sum())}
        loss = losses.dense_distill_loss(student, lidar)
        return loss, {"loss": float(loss.detach())}


class BEVDistill(_DenseDistill):
    """BEVDistill-style baseline: dense feature distillation inside the pooled-region cells of the BEV map."""

    masked = True
    needs_regions = True


class VanillaDistill(_DenseDistill):
    """Vanilla dense distillation over the whole BEV map."""

    masked = False


# ---------------------------------------------------------------------------------------------------
# SimIPU: LiDAR point <-> image pixel contrast, both backbones trained
# ---------------------------------------------------------------------------------------------------


def project_to_images(xyz: Tensor, batch_idx: Tensor, lidar2img: Tensor, image_size: tuple[int, int],
                      min_depth: float = 0.1) -> tuple[Tensor, Tensor, Tensor]:
    """First camera each point projects into: (visible (K,) bool, camera (K,) int64, uv (K, 2) pixels).

    ``lidar2img`` (B, N, 4, 4) maps the LiDAR frame to pixels of the resized images (pixel centres at
    integer coordinates). The projection runs outside autocast (bf16 would move pixels by several units).
    """
    H, W = image_size
    mats = lidar2img[batch_idx].to(xyz.dtype)  # (K, N, 4, 4)
    hom = torch.cat([xyz, torch.ones_like(xyz[:, :1])], 1)
    with torch.autocast("cuda", enabled=False), torch.autocast("cpu", enabled=False):
        cam = torch.einsum("knij,kj->kni", mats, hom)  # (K, N, 4)
    depth = cam[..., 2]
    uv = cam[..., :2] / depth.clamp(min=1e-6)[..., None]
    inside = (depth > min_depth) & (uv[..., 0] >= -0.5) & (uv[..., 0] < W - 0.5) & (uv[..., 1] >= -0.5) & (
        uv[..., 1] < H - 0.5)
    visible = inside.any(1)
    camera = inside.to(torch.int8).argmax(1)
    uv_sel = uv[torch.arange(xyz.shape[0], device=xyz.device), camera]
    return visible, camera, uv_sel


class SimIPU(PretrainMethod):
    """SimIPU-style baseline: LiDAR point features (F^LiDAR, interpolated) against the image-feature pixels the
    points project to (``camera_backbone`` output), symmetric InfoNCE, plus the intra-LiDAR term between the
    original and an augmented view. Gradients reach both backbones."""

    trained_parts = ("lidar_backbone", "camera_backbone")
    needs_images = True

    def __init__(self, model: nn.Module, cfg: Config) -> None:
        super().__init__(model, cfg)
        self.p_lidar = lidar_projector(cfg)  # LiDAR feature channels (decoder's when features="decoder")
        self.p_image = Projector(cfg.model.camera_neck_channels, cfg.pretrain.proj_hidden, cfg.pretrain.proj_out)

    def forward(self, batch: dict, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        pc = self.cfg.pretrain
        points = batch["points"]
        B = batch_size_of(batch)
        H, W = self.cfg.data.image_size
        visible, camera, uv = project_to_images(points[:, 1:4].float(), points[:, 0].long(), batch["lidar2img"],
                                                (H, W))
        view2, _ = augment_batch_points(points, B, pc, generator)
        v2 = view2.clone()
        v2[:, 0] += B
        fmap = self.lidar_map(torch.cat([points, v2]), 2 * B)
        no_regions = torch.full_like(points[:, 0], -1, dtype=torch.long)
        s = self.sample(points[:, 0].long(), no_regions, [points[:, 1:3], view2[:, 1:3]], B, 0, pc.simipu_points,
                        generator, fmap, allowed=visible)
        f1 = self.sample_features(fmap, points[s.index, 1:3], s.batch_idx)
        f2 = self.sample_features(fmap, v2[s.index, 1:3], s.batch_idx + B)
        img = self.model.camera_backbone(batch["images"])  # (B*N, C, h, w)
        n_cam = batch["images"].shape[1]
        grid = torch.stack([(uv[s.index, 0] + 0.5) / W, (uv[s.index, 1] + 0.5) / H], 1) * 2 - 1
        frame = s.batch_idx * n_cam + camera[s.index]
        pix = img.new_zeros(len(s), img.shape[1])
        for f in frame.unique().tolist():
            sel = frame == f
            g = grid[sel].to(img.dtype).view(1, 1, -1, 2)
            pix[sel] = F.grid_sample(img[f: f + 1], g, mode="bilinear", align_corners=False)[0, :, 0].t()
        z1, z2 = _project_pair(self.p_lidar, f1, f2)
        q = self.p_image(pix)
        loss = losses.simipu_loss(z1, q, pc.tau, lidar2=z2, batch_idx=self.negatives_frame(s))
        return loss, {"loss": float(loss.detach()), "num_points": float(len(s))}


METHODS: dict[str, type[PretrainMethod]] = {
    "prc": PointRegionContrast,
    "plrc": PointRegionContrast,
    "rapc": PointRegionContrast,
    "pointcontrast": PointContrast,
    "proposalcontrast": ProposalContrast,
    "rad": RegionAwareDistillation,
    "simipu": SimIPU,
    "bevdistill": BEVDistill,
    "vanilla_distill": VanillaDistill,
}


def stage_class(name: str) -> type[PretrainMethod]:
    """The class of pre-training stage ``name``: its facts (``needs_regions``, ``needs_images``, ``teacher``)."""
    key = name.lower()
    if key not in METHODS:
        raise ValueError(f"unknown pre-training stage {name!r}: choose one of {sorted(METHODS)}")
    return METHODS[key]


def build_method(name: str, model: nn.Module, cfg: Config) -> PretrainMethod:
    """The pre-training method ``name`` (one of ``METHODS``) around ``model``."""
    key = name.lower()
    stage_class(key)
    if key in ("prc", "plrc", "rapc"):
        return PointRegionContrast(model, cfg, mode=key)
    return METHODS[key](model, cfg)
