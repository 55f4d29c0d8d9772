"""The shared training loop (fine-tuning and pre-training): DDP, AMP, atomic checkpoints, exact resume.

Public API: ``Trainer``, ``TrainSettings``, ``load_init``, ``step_generator``, ``NonFiniteLossError``.
"""

from calico.engine.checkpoint import CheckpointError, InitReport, load_init, save_atomic
from calico.engine.optim import TrainSettings, build_optimizer, build_scheduler
from calico.engine.trainer import NonFiniteLossError, Trainer, move_to, step_generator

__all__ = [
    "CheckpointError", "InitReport", "NonFiniteLossError", "TrainSettings", "Trainer", "build_optimizer",
    "build_scheduler", "load_init", "move_to", "save_atomic", "step_generator",
]
