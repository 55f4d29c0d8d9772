"""AMP on CUDA: bf16 autocast, and fp16 with GradScaler; skipped without a GPU."""

from __future__ import annotations

import math

import pytest
from engine_toy import ToyData, ToyModel, ToyStep, collate

from calico.config import TrainConfig
from calico.engine import Trainer
from calico.engine.checkpoint import load_file


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_amp_on_cuda(tmp_path, dtype):
    model = ToyModel()
    s = TrainConfig(epochs=1, batch_size=4, lr=1e-2, ckpt_every=2, log_every=1, device="cuda", amp=True,
                      amp_dtype=dtype)
    trainer = Trainer(s, tmp_path, ToyStep(model), ToyData(16), collate, seed=1)
    assert trainer.amp and trainer.scaler.is_enabled() == (dtype == "fp16")
    trainer.fit()
    assert math.isfinite(trainer.last_logs["loss"])
    ckpt = load_file(tmp_path / "last.pt")
    assert ckpt["global_step"] == 4 and "cuda" in ckpt["rng"][0]
    assert next(model.parameters()).is_cuda
