"""Pre-training losses at paper size: values at init (random features) and forward+backward time.

Run: ``PYTHONPATH=. python benchmarks/pretrain_losses.py [--device cuda] [--batch 4]``. Prints a markdown snippet.
Random Gaussian features are what a healthy run's first steps look like up to the backbone's correlations:
PLRC ~ log(N+M) - mean log C (every positive at chance), RAPC ~ log(N+M), RAD ~ log(N).
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from calico.pretrain import losses as L


def make_regions(batch: int, n_rich: int, n_less: int, n_regions: int, g: torch.Generator) -> torch.Tensor:
    out = []
    for b in range(batch):
        # region sizes as pooling gives them: a few big clusters, many small ones
        w = torch.rand(n_regions, generator=g) ** 3 + 1e-3
        reg = torch.multinomial(w, n_rich, replacement=True, generator=g) + b * n_regions
        out.append(torch.cat([reg, torch.full((n_less,), -1)]))
    return torch.cat(out)


def timeit(fn, device: str, reps: int) -> float:
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / reps * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--rich", type=int, default=1024)
    ap.add_argument("--less", type=int, default=1024)
    ap.add_argument("--regions", type=int, default=40)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    reg = make_regions(args.batch, args.rich, args.less, args.regions, g).to(args.device)
    K = reg.numel()
    frame = torch.arange(args.batch).repeat_interleave(args.rich + args.less).to(args.device)
    feats = {k: torch.randn(K, d, generator=g).to(args.device).requires_grad_()
             for k, d in [("z1", 128), ("z2", 128), ("p1", 128), ("p2", 128), ("c", 256), ("l", 256)]}
    rows = [
        ("plrc_loss (eq. 1)", lambda f: L.plrc_loss(feats["z1"], feats["z2"], reg, 0.07, f)),
        ("rapc_loss (eq. 2)", lambda f: L.rapc_loss(feats["p1"], feats["p2"], reg, 0.07, f)),
        ("prc_loss (alpha 0.5)",
         lambda f: L.prc_loss(feats["z1"], feats["z2"], feats["p1"], feats["p2"], reg, 0.5, 0.07, f)),
        ("rad_loss (eq. 3)", lambda f: L.rad_loss(feats["c"], feats["l"], reg, 0.07, f)),
        ("point_contrast_loss", lambda f: L.point_contrast_loss(feats["z1"], feats["z2"], 0.07, f)),
    ]
    rich = int((reg >= 0).sum())
    _, counts = torch.unique(reg[reg >= 0], return_counts=True)
    cnt = counts[torch.unique(reg[reg >= 0], return_inverse=True)[1]].double()
    print(f"command: `PYTHONPATH=. python benchmarks/pretrain_losses.py --device {args.device} --batch {args.batch}`"
          f" (torch {torch.__version__}, {'1 CPU thread' if args.device == 'cpu' else torch.cuda.get_device_name()})")
    print(f"\nrows: {K} (B={args.batch}, N={args.rich}, M={args.less} per frame, {int(counts.numel())} regions); "
          f"log(rows) = {math.log(K):.3f}, log(rich) = {math.log(rich):.3f}, "
          f"log(rows) - mean log C = {math.log(K) - float(cnt.log().mean()):.3f}; per frame: "
          f"log(N+M) = {math.log(args.rich + args.less):.3f}, log(N) = {math.log(args.rich):.3f}\n")
    print("| loss | init value, per-frame negatives (default) | init value, batch-wide | fwd+bwd ms (per-frame) |")
    print("|---|---|---|---|")
    for name, fn in rows:
        per_frame, wide = float(fn(frame).detach()), float(fn(None).detach())
        ms = timeit(lambda fn=fn: fn(frame).backward(), args.device, args.reps)
        print(f"| {name} | {per_frame:.3f} | {wide:.3f} | {ms:.1f} |")


if __name__ == "__main__":
    main()
