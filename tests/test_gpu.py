"""The CUDA path (issue 14): AMP bf16 against fp32, pillarisers on CUDA, exact resume, NCCL under torchrun.

Every test is marked ``gpu`` (skipped on machines without CUDA by conftest.py); benchmarks/gpu_check.sh runs
them with ``pytest -m gpu`` on a lent GPU. tests/test_engine_gpu.py covers AMP in the engine on a toy model.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from model_steps import AMP_RTOL, loss_and_grads, setup

from calico.models.voxelize import pillarize

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.gpu


# ---------------------------------------------------------------------------------------------- AMP bf16
@pytest.mark.parametrize("task,modality", [("finetune", "L"), ("finetune", "L+C"), ("prc", "L+C"), ("rad", "L+C")])
def test_bf16_autocast_step_matches_fp32_on_cuda(task, modality):
    """cpu preset, 2 frames of 20000 points: the loss under bf16 autocast is finite, within AMP_RTOL (5 %) of
    the fp32 loss, and every gradient is finite."""
    module, batch = setup(task, modality, device="cuda", num_points=20000)
    fp32, ok32 = loss_and_grads(module, batch, bf16=False)
    bf16, ok16 = loss_and_grads(module, batch, bf16=True)
    print(f"{task} {modality}: fp32 {fp32:.6f} bf16 {bf16:.6f} rel {abs(bf16 - fp32) / abs(fp32):.2e}")
    assert ok32 and ok16, (fp32, bf16)
    assert abs(bf16 - fp32) <= AMP_RTOL * abs(fp32), (fp32, bf16)


# ------------------------------------------------------------------------------------------ pillarisers
PC_RANGE = (-54.0, -54.0, -5.0, 54.0, 54.0, 3.0)  # the paper's grid: 540 x 540 pillars of 0.2 m
VOXEL = (0.2, 0.2, 8.0)


def _cloud(n: int = 200000, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(n, 3, generator=g) * torch.tensor([120.0, 120.0, 10.0]) - torch.tensor([60.0, 60.0, 6.0])
    xyz[: n // 4, :2] = torch.rand(n // 4, 2, generator=g) * 4.0  # a dense patch: > 10 points per pillar
    b = torch.randint(0, batch, (n, 1), generator=g).float()
    return torch.cat([b, xyz, torch.rand(n, 2, generator=g)], 1)


def test_torch_pillariser_on_cuda_equals_cpu():
    pts = _cloud()
    for max_voxels in (60000, 5000):  # without and with the per-sample pillar cap
        a = pillarize(pts, PC_RANGE, VOXEL, 10, max_voxels, 2)
        b = pillarize(pts.cuda(), PC_RANGE, VOXEL, 10, max_voxels, 2)
        assert a.num_points.max() == 10
        assert torch.equal(a.coords, b.coords.cpu()) and torch.equal(a.num_points, b.num_points.cpu())
        assert torch.equal(a.features, b.features.cpu())


def test_spconv_pillariser_on_cuda_agrees_with_torch():
    """The pillar set and counts agree; a pillar's points agree as a set where it is not full (a full pillar's
    kept points are up to spconv's CUDA atomics, calico/models/voxelize.py)."""
    pytest.importorskip("spconv.pytorch.utils", reason="spconv (a CUDA wheel) is not installed")
    pts = _cloud().cuda()
    a = pillarize(pts, PC_RANGE, VOXEL, 10, 60000, 2, backend="torch")
    b = pillarize(pts, PC_RANGE, VOXEL, 10, 60000, 2, backend="spconv")
    assert torch.equal(a.coords, b.coords) and torch.equal(a.num_points, b.num_points)
    part = a.num_points < 10
    fa, fb = a.features[part], b.features[part]

    def rows_sorted(f):  # sort each pillar's rows by x (distinct random floats; padding rows are zero)
        return torch.gather(f, 1, torch.argsort(f[..., 0], 1)[..., None].expand_as(f))
    assert torch.equal(rows_sorted(fa), rows_sorted(fb))
    capped = pillarize(pts, PC_RANGE, VOXEL, 10, 5000, 2, backend="spconv")
    assert capped.coords.shape[0] == 10000  # both samples have more than 5000 pillars


# ------------------------------------------------------------------------------------------ exact resume
def _worker(run: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    return subprocess.run([sys.executable, str(HERE / "gpu_resume_worker.py"), str(run), *extra], env=env,
                          capture_output=True, text=True, timeout=600)


def test_exact_resume_on_cuda(tmp_path):
    """The real model (cpu preset, L+C, detection only: tests/gpu_resume_worker.py says why) with bf16 AMP and
    deterministic algorithms (``warn_only``: the ops torch has no deterministic CUDA kernel for are listed in the
    failure message): two uninterrupted runs are
    identical, and a run killed at step 5 and resumed from its step-4 checkpoint ends identical to them."""
    for name, extra in (("ref", ()), ("ref2", ()), ("killed", ("--kill", "5"))):
        res = _worker(tmp_path / name, *extra)
        assert (res.returncode == 0) == (name != "killed"), res.stderr[-3000:]
    res = _worker(tmp_path / "killed", "--resume")
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads((tmp_path / "ref" / "result.json").read_text())
    assert info["steps"] == 8 and math.isfinite(info["loss"])
    load = lambda n: torch.load(tmp_path / n / "params.pt", weights_only=True)  # noqa: E731
    ref, ref2, resumed = load("ref"), load("ref2"), load("killed")
    nondet = info["nondeterministic"]
    differ = [k for k in ref if not torch.equal(ref[k], ref2[k])]
    assert not differ, f"two identical CUDA runs differ in {differ[:5]}; ops without determinism: {nondet}"
    differ = [k for k in ref if not torch.equal(ref[k], resumed[k])]
    assert not differ, f"resumed run differs in {differ[:5]}"


# ------------------------------------------------------------------------------------- NCCL under torchrun
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(run: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "OMP_NUM_THREADS": "1", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(HERE / "engine_ddp_worker.py"), str(run), "--device", "cuda",
           "--nccl", *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_torchrun_one_cuda_process_over_nccl(tmp_path):
    """torchrun --nproc_per_node 1 on CUDA with an NCCL group: training, checkpoints (RNG gather over NCCL) and
    an exact resume. One GPU cannot test DDP's gradient all-reduce (NCCL refuses two ranks on one GPU)."""
    ref = _torchrun(tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr[-3000:]
    logs = json.loads((tmp_path / "ref" / "logs0.json").read_text())
    assert math.isfinite(logs["loss"])
    ckpt = torch.load(tmp_path / "ref" / "last.pt", weights_only=True)
    assert ckpt["world_size"] == 1 and ckpt["global_step"] == 16 and "cuda" in ckpt["rng"][0]
    killed = _torchrun(tmp_path / "run", "--kill", "5")
    assert killed.returncode != 0 and (tmp_path / "run" / "last.pt").is_file()
    res = _torchrun(tmp_path / "run", "--resume")
    assert res.returncode == 0, res.stderr[-3000:]
    a = torch.load(tmp_path / "ref" / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "run" / "rank0.pt", weights_only=True)
    for k in a:
        assert torch.equal(a[k], b[k]), k
