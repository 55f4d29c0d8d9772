"""Run by ``torchrun --nproc_per_node 2`` from tests/test_engine_ddp.py: train the toy model on gloo.

argv: RUN_DIR [--kill K] [--resume] [--freeze] [--device cuda] [--nccl]. Each rank writes its final parameters
to RUN_DIR/rank<r>.pt and its last logged scalars to RUN_DIR/logs<r>.json. ``--nccl`` (tests/test_gpu.py, one
GPU) joins an NCCL process group even for one process, which ``calico.engine.dist.init_distributed`` skips
when WORLD_SIZE is 1, so the engine's collectives (loss averaging, the NaN vote, the checkpoint's RNG gather)
run over NCCL.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_toy import ToyData, ToyModel, ToyStep, collate  # noqa: E402

from calico.config import TrainConfig  # noqa: E402
from calico.engine import Trainer, dist  # noqa: E402
from calico.utils.runinfo import seed_everything  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--kill", type=int, default=-1)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--freeze", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--nccl", action="store_true")
    args = ap.parse_args()
    if args.nccl:
        local = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(local)
        torch.distributed.init_process_group("nccl", device_id=local)
    torch.set_num_threads(1)
    seed_everything(0)
    model = ToyModel()
    if args.freeze:
        model.lidar_backbone.requires_grad_(False)

    def kill(event: str, trainer: Trainer) -> None:
        if event == "step_start" and trainer.global_step == args.kill:
            raise SystemExit(3)

    settings = TrainConfig(epochs=2, batch_size=3, lr=1e-2, schedule="onecycle", ckpt_every=2, log_every=2,
                             device=args.device, amp=False)
    trainer = Trainer(settings, args.run_dir, ToyStep(model), ToyData(22), collate, seed=5, hooks=[kill],
                      resume=args.resume)
    trainer.fit()
    r = dist.rank()
    torch.save(dict(model.named_parameters()), Path(args.run_dir) / f"rank{r}.pt")
    (Path(args.run_dir) / f"logs{r}.json").write_text(json.dumps(trainer.last_logs))
    dist.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
