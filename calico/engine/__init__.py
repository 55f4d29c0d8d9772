"""The shared training loop (fine-tuning and pre-training): DDP, AMP, atomic checkpoints, exact resume.

Public API: ``Trainer`` (driven by a ``calico.config.TrainConfig``), ``load_init``, ``step_generator``,
``NonFiniteLossError``.
"""

from calico.engine.checkpoint import CheckpointError, InitReport, load_init, save_atomic
from calico.engine.optim import build_optimizer, build_scheduler
from calico.engine.trainer import NonFiniteLossError, Trainer, step_generator

__all__ = [
    "CheckpointError", "InitReport", "NonFiniteLossError", "Trainer", "build_optimizer",
    "build_scheduler", "load_init", "save_atomic", "step_generator",
]
