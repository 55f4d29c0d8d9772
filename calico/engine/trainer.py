"""The shared training loop for fine-tuning and pre-training: one code path for CPU, one GPU and DDP.

``Trainer(settings, run_dir, module, dataset, collate_fn, seed).fit()`` optimises ``module``, an
``nn.Module`` whose ``forward(batch, generator) -> (loss, logs)`` computes one step's loss (a scalar
tensor) and a dict of scalar terms to log. ``generator`` is a CPU ``torch.Generator`` seeded from
``(seed, global_step, rank)``: draw every random augmentation from it and a resumed run sees exactly the
same randomness as an uninterrupted one. The module is what DDP wraps, so its forward must be the call
that produces the loss (wrap a model and its loss in a small module, as ``calico.finetune`` does).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from calico.config import TrainConfig
from calico.data.batch import move_to
from calico.engine import dist
from calico.engine.checkpoint import (
    FORMAT,
    CheckpointError,
    get_rng_state,
    load_file,
    save_atomic,
    set_rng_state,
)
from calico.engine.optim import build_optimizer, build_scheduler
from calico.errors import CalicoError

Hook = Callable[[str, "Trainer"], None]


class NonFiniteLossError(CalicoError):
    """A NaN/Inf loss term or gradient norm: training stops, the last good checkpoint is kept."""


def step_generator(seed: int, global_step: int, rank: int) -> torch.Generator:
    """The CPU generator handed to step ``global_step`` (0-based) on ``rank``."""
    state = np.random.SeedSequence([int(seed), int(global_step), int(rank)]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def _worker_init(_: int) -> None:
    # DataLoader seeds python/torch in workers from its generator; numpy needs the same treatment.
    np.random.seed(torch.initial_seed() % 2**32)


class Trainer:
    """Optimise ``module`` on ``dataset``; see the module docstring for the step contract.

    ``params``: what AdamW updates (default: every parameter with ``requires_grad``). ``extra_state``:
    called on rank 0 at every checkpoint, its dict is stored beside the training state (e.g.
    ``{"parts": ...}`` or ``{"model": ...}``). ``hooks``: ``hook(event, trainer)`` with event in
    ``step_start``, ``step_end``, ``epoch_end``. ``resume``: continue from ``run_dir/last.pt``.
    ``lr_mult``: ``{id(param): multiplier of the lr}`` (``calico.engine.optim.build_optimizer``).
    ``settings`` is the config's training section (``cfg.finetune`` / ``cfg.pretrain``, both a ``TrainConfig``);
    ``num_workers``: DataLoader workers (``cfg.data.num_workers``).
    """

    def __init__(self, settings: TrainConfig, run_dir: str | Path, module: nn.Module, dataset,
                 collate_fn: Callable | None = None, seed: int = 0, params: Iterable[nn.Parameter] | None = None,
                 extra_state: Callable[[], dict[str, Any]] | None = None, hooks: list[Hook] | None = None,
                 resume: bool = False, find_unused: bool | None = None, shuffle: bool = True,
                 lr_mult: dict[int, float] | None = None, num_workers: int = 0):
        if not isinstance(module, nn.Module):
            raise TypeError(f"Trainer needs an nn.Module with forward(batch, generator); got {type(module)}")
        self.s, self.num_workers = settings, int(num_workers)
        self.run_dir = Path(run_dir)
        self.seed, self.collate_fn, self.shuffle = int(seed), collate_fn, shuffle
        self.extra_state, self.hooks = extra_state, list(hooks or [])
        self.device = dist.init_distributed(self.s.device)
        self.rank, self.world = dist.rank(), dist.world_size()
        self.module = module.to(self.device)
        self.params = [p for p in (module.parameters() if params is None else params) if p.requires_grad]
        self.dataset = dataset
        if len(dataset) == 0:
            raise CalicoError("training dataset is empty")
        self.sampler = dist.ResumableSampler(dataset, self.world, self.rank, shuffle=shuffle, seed=self.seed)
        self.steps_per_epoch = math.ceil(self.sampler.num_samples / self.s.batch_size)
        self.total_steps = self.s.epochs * self.steps_per_epoch
        if self.s.max_steps > 0:
            self.total_steps = min(self.total_steps, self.s.max_steps)

        cuda = self.device.type == "cuda"
        dtype = self.s.amp_dtype
        if dtype == "auto":
            dtype = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp16"
        self.amp = bool(self.s.amp and cuda)
        self.amp_dtype = torch.bfloat16 if dtype == "bf16" else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.amp_dtype == torch.float16)
        self.optimizer = build_optimizer(self.params, self.s, lr_mult)
        self.scheduler = build_scheduler(self.optimizer, self.s, self.total_steps)

        if self.world > 1:
            trainable = {id(p) for p in self.params}
            partial = any(id(p) not in trainable for p in module.parameters())
            self.ddp: nn.Module = DistributedDataParallel(
                module, device_ids=[self.device.index] if cuda else None,
                find_unused_parameters=partial if find_unused is None else find_unused)
        else:
            self.ddp = module

        self.epoch = self.step_in_epoch = self.global_step = 0
        self.last_checkpoint: Path | None = None
        self.last_logs: dict[str, float] = {}
        self.lr = self.s.lr
        self.logger = self._make_logger()
        self.tb = None
        if resume:
            self._resume()

    # ------------------------------------------------------------------------------------------ set-up
    def _make_logger(self) -> logging.Logger:
        logger = logging.getLogger(f"calico.engine.{id(self)}")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        if dist.is_main():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(self.run_dir / "log.txt")
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            logger.addHandler(handler)
        return logger

    def log(self, msg: str, console: bool = True) -> None:
        if dist.is_main():
            self.logger.info(msg)
            if console:
                tqdm.write(msg)

    def _resume(self) -> None:
        path = self.run_dir / "last.pt"
        if not path.is_file():
            self.log(f"resume: no checkpoint at {path} yet, starting from scratch")
            return
        # on the CPU: load_state_dict copies weights and optimizer state to the parameters' device, and the RNG
        # states must stay CPU tensors
        ckpt = load_file(path, map_location="cpu")
        if ckpt.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not a calico training checkpoint (format {ckpt.get('format')!r})")
        try:
            self.module.load_state_dict(ckpt["module"])
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: does not match this model/config: {exc}") from exc
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.step_in_epoch = int(ckpt["epoch"]), int(ckpt["step_in_epoch"])
        self.global_step = int(ckpt["global_step"])
        rngs = ckpt["rng"]
        if int(ckpt.get("world_size", 1)) != self.world:
            self.log(f"resume: checkpoint from {ckpt.get('world_size')} processes, now {self.world}: "
                     "the sample order and RNG streams will differ from an uninterrupted run")
        set_rng_state(rngs[self.rank] if self.rank < len(rngs) else rngs[0])
        self.last_checkpoint = path
        self.log(f"resumed from {path}: epoch {self.epoch}, step {self.step_in_epoch} in epoch, "
                 f"global step {self.global_step}")

    def _loader(self, epoch: int) -> DataLoader:
        self.sampler.set_position(epoch, self.step_in_epoch * self.s.batch_size)
        if hasattr(getattr(self.dataset, "transform", None), "set_epoch"):  # per-epoch augmentation draws
            self.dataset.transform.set_epoch(epoch)
        # An explicit generator keeps DataLoader from drawing worker seeds from the global torch RNG
        # (which would make the run depend on when iterators are created, and break exact resume).
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0]))
        return DataLoader(self.dataset, batch_size=self.s.batch_size, sampler=self.sampler,
                          collate_fn=self.collate_fn, num_workers=self.num_workers, generator=gen,
                          worker_init_fn=_worker_init, pin_memory=self.device.type == "cuda", drop_last=False)

    # ---------------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, epoch_end: bool = False) -> None:
        """Write ``last.pt`` (and ``epoch_XXX.pt`` at an epoch end) atomically; collective under DDP."""
        rng = get_rng_state()
        rngs = [None] * self.world
        if dist.is_dist():
            torch.distributed.all_gather_object(rngs, rng)
        else:
            rngs = [rng]
        if dist.is_main():
            ckpt = {
                "format": FORMAT, "module": self.module.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                "global_step": self.global_step, "rng": rngs, "world_size": self.world, "seed": self.seed,
                "sampler": {"epoch": self.epoch, "start": self.step_in_epoch * self.s.batch_size},
            }
            if self.extra_state is not None:
                ckpt.update(self.extra_state())
            self.last_checkpoint = save_atomic(ckpt, self.run_dir / "last.pt")
            if epoch_end and self.s.keep_epoch_ckpts:
                save_atomic(ckpt, self.run_dir / f"epoch_{self.epoch:03d}.pt")
        dist.barrier()

    # ------------------------------------------------------------------------------------------- the loop
    def _hook(self, event: str) -> None:
        for hook in self.hooks:
            hook(event, self)

    def _check_finite(self, terms: dict[str, Any], what: str) -> dict[str, float]:
        values = {k: float(v.detach().float().cpu()) if torch.is_tensor(v) else float(v) for k, v in terms.items()}
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if dist.any_rank(bool(bad), self.device):
            where = f"step {self.global_step + 1} (epoch {self.epoch}, step {self.step_in_epoch} in epoch)"
            names = ", ".join(f"{k}={values[k]}" for k in bad) or "(on another rank)"
            keep = (f"last good checkpoint: {self.last_checkpoint}" if self.last_checkpoint
                    else "no checkpoint was written yet")
            msg = f"non-finite {what} at {where} on rank {self.rank}: {names}; stopping, {keep}"
            self.log(msg)
            raise NonFiniteLossError(msg)
        return values

    def train_step(self, batch: Any) -> dict[str, float]:
        """One optimiser step; returns the logged scalars of this rank."""
        gen = step_generator(self.seed, self.global_step, self.rank)
        batch = move_to(batch, self.device)
        autocast = (torch.autocast("cuda", dtype=self.amp_dtype) if self.amp else nullcontext())
        with autocast:
            loss, logs = self.ddp(batch, gen)
        values = self._check_finite({"loss": loss, **{k: v for k, v in logs.items() if k != "loss"}}, "loss")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.s.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.s.grad_clip)
            values["grad_norm"] = float(norm)
            if not self.scaler.is_enabled():  # with fp16 the scaler skips inf steps itself
                self._check_finite({"grad_norm": norm}, "gradient norm")
        self.lr = self.optimizer.param_groups[0]["lr"]  # the lr this step used (logged)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return values

    def fit(self) -> dict[str, Any]:
        """Train to the end (``epochs`` or ``max_steps``); returns a summary dict."""
        if dist.is_main():
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.run_dir / "tb"))
        self.log(f"training {sum(p.numel() for p in self.params):,} parameters on {self.device} x{self.world}: "
                 f"{self.s.epochs} epochs x {self.steps_per_epoch} steps (total {self.total_steps}), "
                 f"batch {self.s.batch_size}/process, lr {self.s.lr}, schedule {self.s.schedule}, "
                 f"amp {self.amp_dtype if self.amp else 'off'}")
        self.already_complete = self.global_step >= self.total_steps
        if self.total_steps == 0:
            self.log(f"nothing to train: {self.s.epochs} epochs x {self.steps_per_epoch} steps"
                     + (f", max_steps {self.s.max_steps}" if self.s.max_steps else "") + " = 0 steps")
        elif self.already_complete:
            self.log(f"the run is already complete: global step {self.global_step} of {self.total_steps}; "
                     f"checkpoint {self.last_checkpoint}")
        bar = tqdm(total=self.total_steps, initial=self.global_step, disable=not dist.is_main(),
                   desc="train", dynamic_ncols=True)
        window: dict[str, float] = {}
        window_n, window_t = 0, time.perf_counter()
        try:
            while self.epoch < self.s.epochs and self.global_step < self.total_steps:
                self.module.train()
                for batch in self._loader(self.epoch):
                    self._hook("step_start")
                    values = self.train_step(batch)
                    self.global_step += 1
                    self.step_in_epoch += 1
                    for k, v in values.items():
                        window[k] = window.get(k, 0.0) + v
                    window_n += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{values['loss']:.4f}", epoch=self.epoch)
                    if self.global_step % self.s.log_every == 0 or self.global_step == self.total_steps:
                        window_t = self._write_scalars(window, window_n, window_t)
                        window, window_n = {}, 0
                    if self.s.ckpt_every > 0 and self.global_step % self.s.ckpt_every == 0:
                        self.save_checkpoint()
                    self._hook("step_end")
                    if self.global_step >= self.total_steps:
                        break
                if self.step_in_epoch >= self.steps_per_epoch:
                    self.log(f"epoch {self.epoch} done (global step {self.global_step})", console=False)
                    self.epoch, self.step_in_epoch = self.epoch + 1, 0
                    self.save_checkpoint(epoch_end=True)
                    self._hook("epoch_end")
            if self.global_step >= self.total_steps and self.step_in_epoch != 0:
                self.save_checkpoint()  # max_steps stopped mid-epoch
            self.log(f"finished at global step {self.global_step}; "
                     + (f"checkpoint {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint written"))
        finally:
            bar.close()
            if self.tb is not None:
                self.tb.close()
            for handler in list(self.logger.handlers):  # release log.txt (many trainers per process in tests)
                handler.close()
                self.logger.removeHandler(handler)
        return {"global_step": self.global_step, "epoch": self.epoch, "logs": self.last_logs,
                "checkpoint": str(self.last_checkpoint) if self.last_checkpoint else None,
                "already_complete": self.already_complete and self.total_steps > 0}

    def _write_scalars(self, window: dict[str, float], n: int, t0: float) -> float:
        now = time.perf_counter()
        means = dist.all_reduce_mean({k: v / max(n, 1) for k, v in window.items()}, self.device)
        self.last_logs = means
        lr = self.lr
        throughput = n * self.s.batch_size * self.world / max(now - t0, 1e-9)
        if dist.is_main():
            for k, v in means.items():
                self.tb.add_scalar(f"train/{k}", v, self.global_step)
            self.tb.add_scalar("train/lr", lr, self.global_step)
            self.tb.add_scalar("train/samples_per_s", throughput, self.global_step)
            # metrics.jsonl: the stable, machine-readable record of the logged scalars (reports read it)
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps({"step": self.global_step, "epoch": self.epoch, "lr": lr,
                                    "samples_per_s": throughput, **means}) + "\n")
            terms = " ".join(f"{k} {v:.4g}" for k, v in sorted(means.items()))
            self.log(f"step {self.global_step} epoch {self.epoch} lr {lr:.3g} {throughput:.1f} samples/s {terms}",
                     console=False)
        return now
