"""Run by tests/test_gpu.py in a fresh process: fine-tune the real BEV model (cpu preset, L+C, detection) on CUDA
with bf16 AMP and deterministic algorithms, optionally killed at a step or resumed, and save the final weights.

argv: RUN_DIR [--kill K] [--resume] [--device cpu] (cpu: a dry run of this script, fp32). Writes RUN_DIR/params.pt (CPU copies of the state_dict) and
RUN_DIR/result.json ({"loss", "steps", "nondeterministic": warnings torch raised about ops without a
deterministic CUDA implementation}). CUBLAS_WORKSPACE_CONFIG must be set before cuBLAS starts, hence a
process of its own.
"""

from __future__ import annotations

import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from calico.config import TrainConfig, get_config  # noqa: E402
from calico.engine import Trainer  # noqa: E402
from calico.finetune.train import SupervisedStep  # noqa: E402
from calico.models import build_model, make_dummy_batch  # noqa: E402
from calico.utils.runinfo import seed_everything  # noqa: E402

# no segmentation head: its BEV resampling is grid_sample, whose CUDA backward has no deterministic kernel
CFG = get_config("cpu", ["model.modality=L+C", "model.with_seg=False"])


class Indices(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> int:
        return i


def collate(items: list[int]) -> dict:
    """A dummy batch that depends only on which samples were drawn (CPU generator: the same on every run)."""
    return make_dummy_batch(CFG, batch_size=len(items), num_points=20000, num_boxes=6,
                            seed=1000 * len(items) + sum(int(i) * 31 ** k for k, i in enumerate(items)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--kill", type=int, default=-1)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    seed_everything(0)
    model = build_model(CFG.model, CFG.data)

    def kill(event: str, trainer: Trainer) -> None:
        if event == "step_start" and trainer.global_step == args.kill:
            raise SystemExit(3)

    settings = TrainConfig(epochs=2, batch_size=2, lr=1e-3, ckpt_every=2, log_every=1, device=args.device, amp=True,
                           amp_dtype="bf16")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = Trainer(settings, args.run_dir, SupervisedStep(model), Indices(), collate, seed=3,
                          hooks=[kill], resume=args.resume)
        trainer.fit()
    nondet = sorted({str(w.message).splitlines()[0] for w in caught if "deterministic" in str(w.message)})
    run = Path(args.run_dir)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, run / "params.pt")
    (run / "result.json").write_text(json.dumps({"loss": trainer.last_logs.get("loss"), "steps": trainer.global_step,
                                                 "nondeterministic": nondet}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
