"""Models: PointPillars LiDAR branch, timm + LSS camera branch, per-modality decoders, late conv fusion,
CenterPoint and map-segmentation heads (CALICO App. B). Entry point: ``build_model(cfg.model, cfg.data)``."""

from calico.models.dummy import make_dummy_batch
from calico.models.model import PART_NAMES, BEVModel, build_model, count_params, param_report

__all__ = ["BEVModel", "PART_NAMES", "build_model", "count_params", "make_dummy_batch", "param_report"]
