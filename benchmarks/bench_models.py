"""Training-step throughput (samples/s) and peak memory, per config and modality: fine-tuning steps of the
BEV model and pre-training steps (PRC, RAD, any `calico pretrain` stage) with ``--tasks``.

Each (config, modality) runs in a fresh subprocess so the peak memory is its own: CPU peak is the
subprocess's ``ru_maxrss`` (whole process: weights, activations, allocator); CUDA peak is
``torch.cuda.max_memory_allocated``. ``--amp off,bf16`` times each step in fp32 and under
``torch.autocast(dtype=bfloat16)`` (the engine's AMP; on CPU autocast works too, but CPU runs train fp32).
Prints a markdown table with the exact command; ``--json`` also writes the rows (failures included, with
their error), rewritten after each combination; the exit status is 1 when any combination failed.

    PYTHONPATH=$PWD python benchmarks/bench_models.py --configs cpu,paper --modalities L,L+C --steps 3
    PYTHONPATH=$PWD python benchmarks/bench_models.py --configs cpu,paper --tasks prc,rad --steps 3
    PYTHONPATH=$PWD python benchmarks/bench_models.py --configs cpu --modalities L --tasks finetune,prc \
        --lidar-backbones pointpillars,voxelnet --det-heads centerpoint,transfusion --steps 3   # issue 16's parts
    PYTHONPATH=$PWD python benchmarks/bench_models.py --configs paper --tasks finetune,prc,rad --device cuda \
        --amp off,bf16 --steps 10 --json bench.json   # benchmarks/gpu_check.sh
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from contextlib import nullcontext


def worker(spec: dict) -> dict:
    import torch

    from calico.config import get_config
    from calico.models import build_model, count_params, make_dummy_batch

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    cfg = get_config(spec["config"], [f"model.modality={spec['modality']}",
                                      f"model.lidar_backbone={spec.get('lidar_backbone', 'pointpillars')}",
                                      f"model.det_head={spec.get('det_head', 'centerpoint')}"])
    device = torch.device(spec["device"])
    model = build_model(cfg.model, cfg.data).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = make_dummy_batch(cfg, batch_size=spec["batch_size"], num_points=spec["points"],
                             num_boxes=10, device=device)
    task = spec.get("task", "finetune")
    if task == "finetune":
        def loss_fn():
            return model.loss(model(batch), batch)[0]
    else:
        from calico.pretrain.methods import build_method

        # Stand-in pooled regions: points grouped by 2 m BEV cells, a third of the cells semantic-less.
        cell = torch.floor(batch["points"][:, 1:3] / 2.0).long()
        key = (cell[:, 0] * 1000 + cell[:, 1]).remainder(3000)
        batch["regions"] = torch.where(key % 3 == 0, torch.full_like(key, -1), key)
        method = build_method(task, model, cfg).to(device).train()
        opt = torch.optim.AdamW(method.trainable_parameters(), lr=1e-4)
        gen = torch.Generator().manual_seed(0)

        def loss_fn():
            return method(batch, gen)[0]

    amp = spec.get("amp", "off")
    if amp not in ("off", "bf16"):
        raise ValueError(f"--amp: 'off' or 'bf16', got {amp!r}")

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16) if amp == "bf16" else nullcontext():
            loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: allocator, cuDNN autotuning, lazy init
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(spec["steps"]):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / spec["steps"]
    extra = {}
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
        extra = {"reserved_mb": torch.cuda.max_memory_reserved() / 2**20, "gpu": torch.cuda.get_device_name(),
                 "torch": torch.__version__}
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    return {**spec, "amp": amp, "params": count_params(model), "step_s": dt, "samples_s": spec["batch_size"] / dt,
            "peak_mb": peak_mb, **extra}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="cpu,paper")
    ap.add_argument("--modalities", default="L,L+C")
    ap.add_argument("--tasks", default="finetune", help="finetune and/or pre-training stages, e.g. prc,rad")
    ap.add_argument("--lidar-backbones", default="pointpillars", help="model.lidar_backbone values, e.g. "
                    "pointpillars,voxelnet")
    ap.add_argument("--det-heads", default="centerpoint", help="model.det_head values, e.g. centerpoint,transfusion")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 = one-core numbers)")
    ap.add_argument("--batch-size", type=int, default=0, help="0: 2 for cpu, 1 for paper")
    ap.add_argument("--amp", default="off", help="comma list of off / bf16 (autocast of the forward and loss)")
    ap.add_argument("--timeout", type=float, default=0, help="seconds per combination (0: none)")
    ap.add_argument("--json", help="also write the rows (failures with their error) to this file")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    rows, failed = [], []
    combos = [(t, c, m, a, lb, dh) for t in args.tasks.split(",") for c in args.configs.split(",")
              for m in (args.modalities.split(",") if t == "finetune" else ["L+C"]) for a in args.amp.split(",")
              for lb in args.lidar_backbones.split(",")
              for dh in (args.det_heads.split(",") if t == "finetune" else args.det_heads.split(",")[:1])]  # PRC: no head
    # the parts columns appear when a run names other parts than the defaults (older tables stay comparable)
    parts_col = (args.lidar_backbones, args.det_heads) != ("pointpillars", "centerpoint")
    for task, config, modality, amp, lb, dh in combos:
        spec = {"task": task, "config": config, "modality": modality, "steps": args.steps, "device": args.device,
                "threads": args.threads, "batch_size": args.batch_size or (2 if config == "cpu" else 1),
                "points": 20000 if config == "cpu" else 250000}
        if amp != "off":  # the worker's default; an fp32-only run passes the same spec as before --amp existed
            spec["amp"] = amp
        if parts_col:
            spec.update(lidar_backbone=lb, det_head=dh)
        name = f"{task}/{config}/{modality}/amp={amp}" + (f"/{lb}+{dh}" if parts_col else "")
        try:
            proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                                  capture_output=True, text=True, timeout=args.timeout or None)
            error = None if proc.returncode == 0 else proc.stderr[-2000:]
        except subprocess.TimeoutExpired:
            error = f"timed out after {args.timeout:g} s"
        if error is not None:
            print(f"{name} failed:\n{error}", file=sys.stderr)
            failed.append({**spec, "amp": amp, "error": error})
        else:
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        if args.json:  # after every combination: a run stopped by an outer time limit keeps what it measured
            with open(args.json, "w") as f:
                json.dump({"argv": sys.argv[1:], "rows": rows, "failed": failed}, f, indent=1)
    print(f"`PYTHONPATH=$PWD python benchmarks/bench_models.py {' '.join(sys.argv[1:])}`\n")
    amp_col = args.amp != "off"  # the table of an fp32-only run is unchanged
    print("| step | config | modality |" + (" LiDAR backbone | det head |" if parts_col else "") + " device |"
          + (" amp |" if amp_col else "") + " threads | batch | points/sample | params | step (s) | samples/s | peak MB |")
    print("|---|---|---|" + ("---|---|" if parts_col else "") + "---|" + ("---|" if amp_col else "")
          + "---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['task']} | {r['config']} | {r['modality']} |"
              + (f" {r['lidar_backbone']} | {r['det_head']} |" if parts_col else "") + f" {r['device']} |"
              + (f" {r['amp']} |" if amp_col else "")
              + f" {r['threads']} | {r['batch_size']} | "
              f"{r['points']} | {r['params']:,} | {r['step_s']:.{2 if r['device'] == 'cpu' else 4}f} | {r['samples_s']:.2f} | {r['peak_mb']:.0f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
