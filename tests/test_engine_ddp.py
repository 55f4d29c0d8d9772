"""DDP on CPU: two gloo processes under torchrun end with identical weights and finite losses."""

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

HERE = Path(__file__).resolve().parent
WORKER = HERE / "engine_ddp_worker.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(WORKER), str(run_dir), *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _params(run_dir: Path, rank: int) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / f"rank{rank}.pt", weights_only=True)


@pytest.mark.slow
@pytest.mark.parametrize("freeze", [False, True])
def test_ddp_two_cpu_ranks_identical(tmp_path, freeze):
    run = tmp_path / "run"
    res = torchrun(run, *(["--freeze"] if freeze else []))
    assert res.returncode == 0, res.stderr[-3000:]
    p0, p1 = _params(run, 0), _params(run, 1)
    assert p0.keys() == p1.keys()
    for k in p0:
        assert torch.equal(p0[k], p1[k]), k
    for r in (0, 1):
        logs = json.loads((run / f"logs{r}.json").read_text())
        assert math.isfinite(logs["loss"]) and logs == json.loads((run / "logs0.json").read_text())
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2 and ckpt["global_step"] == 8  # 22/2/3 -> 4/epoch
    if freeze:  # the frozen backbone is untouched
        torch.manual_seed(0)
        from engine_toy import ToyModel

        init = ToyModel()
        assert torch.equal(p0["lidar_backbone.0.weight"], init.lidar_backbone[0].weight)


@pytest.mark.slow
def test_ddp_exact_resume(tmp_path):
    ref = tmp_path / "ref"
    assert torchrun(ref).returncode == 0
    run = tmp_path / "killed"
    killed = torchrun(run, "--kill", "5")
    assert killed.returncode != 0 and (run / "last.pt").is_file()
    res = torchrun(run, "--resume")
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = _params(ref, 0), _params(run, 0)
    for k in a:
        assert torch.equal(a[k], b[k]), k
