"""Do two checkouts of calico give the same outputs? (issue 12: "outputs must not change")

Runs the same small, fixed-seed pipeline with each checkout's own code (``python -m calico`` with
``PYTHONPATH=<checkout>``) and compares the results bit for bit:

1. ``calico synth``: a tiny synthetic world (2 scenes x 3 keyframes, 1 sweep); every file's bytes.
2. ``calico prepare`` + ``calico pool`` on the first ``--keyframes`` keyframes of a real nuScenes slice
   (default ``../shared/data/nuscenes-scene-0916``, read-only: each checkout gets its own ``--cache-dir``); the
   region label of every point.
3. ``calico finetune`` (LiDAR-only detection + map segmentation, ``cpu`` preset, seed 0, ``--max-steps``) on A's world,
   logging every step, then its evaluation on the val split: every logged loss, every weight of the final
   checkpoint, every predicted box (results_nusc.json) and metric. Both run the same command line (their own
   ``cpu`` preset); the two runs' config.json are compared too (a key only B has is listed with its value, not
   counted as a difference: a new option whose default keeps the old behaviour).

4. with ``--demo``: ``calico demo --quick`` (its own world, pre-training, 6 fine-tuning cells, probe, report) with
   each checkout: every checkpoint's tensors, every cell's metrics, the probe and report.md (but its timing line).
   About 4 min more per checkout; meaningful only between checkouts with the same demo protocol (the demo was
   redesigned after e53b9a2: b5ab4e2 changed its steps and lr).

Usage (about 4 min of CPU on the 2-core machine, without --demo)::

    git worktree add --detach /tmp/base e53b9a2
    OMP_NUM_THREADS=1 python benchmarks/check_outputs_unchanged.py /tmp/base . --work /tmp/outputs_check

Exit status 0 when everything is identical, 1 otherwise (each difference is printed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SCENE_0916 = Path(__file__).resolve().parents[2] / "shared" / "data" / "nuscenes-scene-0916"


def calico(checkout: Path, args: list[str], log: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    t = time.perf_counter()
    with open(log, "a") as f:
        f.write(f"$ calico {' '.join(args)}\n")
        f.flush()
        rc = subprocess.call([sys.executable, "-m", "calico", *args], cwd=checkout, env=env, stdout=f,
                             stderr=subprocess.STDOUT)
    print(f"  [{checkout.name}] calico {args[0]} ({time.perf_counter() - t:.0f} s)", flush=True)
    if rc:
        sys.exit(f"calico {args[0]} failed with {checkout} (exit {rc}); see {log}")


def which_code(checkout: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run([sys.executable, "-c", "import calico; print(calico.__file__)"], env=env, cwd="/",
                         capture_output=True, text=True, check=True).stdout.strip()
    if not out.startswith(str(checkout.resolve())):
        sys.exit(f"PYTHONPATH={checkout} imports calico from {out}, not from the checkout")
    rev = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return rev + (" (+ uncommitted changes)" if dirty else "")


def run_checkout(checkout: Path, work: Path, world_a: Path | None, args) -> dict:
    """Every step with one checkout; returns where its outputs are."""
    work.mkdir(parents=True, exist_ok=True)
    log = work / "commands.log"
    world = work / "world"
    calico(checkout, ["synth", "--out", str(world), "--scenes", "2", "--samples-per-scene", "3", "--sweeps", "1",
                      "--image-size", "72", "128", "--seed", "0", "--no-progress"], log)
    # pooling on the real slice (its own cache, the dataset is read-only)
    cache = work / "cache-0916"
    calico(checkout, ["prepare", "--dataroot", str(args.dataroot), "--version", "v1.0-mini", "--cache-dir",
                      str(cache)], log)
    calico(checkout, ["pool", "--dataroot", str(args.dataroot), "--version", "v1.0-mini", "--cache-dir", str(cache),
                      "--limit", str(args.keyframes)], log)
    # fine-tuning on A's world (so a world difference cannot hide a training difference)
    ft_world = world_a or world
    wcache = work / "cache-world"
    calico(checkout, ["prepare", "--dataroot", str(ft_world), "--version", "v1.0-synth", "--cache-dir",
                      str(wcache)], log)
    run = work / "finetune"
    shutil.rmtree(run, ignore_errors=True)
    calico(checkout, ["finetune", "--config", "cpu", "--dataroot", str(ft_world), "--version", "v1.0-synth",
                      "--out", str(run), "--fraction", "1.0", "--modality", "L", "--seed", "0",
                      "--max-steps", str(args.steps), "--set", f"data.cache_dir={wcache}", "finetune.log_every=1",
                      "finetune.batch_size=2", "finetune.epochs=100"], log)
    out = {"world": world, "regions": cache / "regions", "run": run}
    if args.demo:
        shutil.rmtree(work / "demo", ignore_errors=True)
        calico(checkout, ["demo", "--quick", "--out", str(work / "demo")], log)
        out["demo"] = work / "demo"
    return out


def _tensors(obj, prefix: str = "") -> dict:
    """Every tensor in a checkpoint (nested dicts / lists), by path."""
    import torch

    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else []
    out = {}
    for k, v in items:
        out.update(_tensors(v, f"{prefix}/{k}"))
    return out


def compare_demo(a: Path, b: Path) -> list[str]:
    import torch

    diffs = []
    ckpts = sorted(str(p.relative_to(a)) for p in a.rglob("last.pt") if "world" not in p.parts)
    n = 0
    for rel in ckpts:
        if not (b / rel).is_file():
            diffs.append(f"demo: {rel} missing in B")
            continue
        ta = _tensors(torch.load(a / rel, map_location="cpu", weights_only=True))
        tb = _tensors(torch.load(b / rel, map_location="cpu", weights_only=True))
        n += len(ta)
        if set(ta) != set(tb) or any(not torch.equal(ta[k], tb[k]) for k in ta):
            diffs.append(f"demo: {rel} weights differ")
    jsons = sorted(str(p.relative_to(a)) for p in a.rglob("*.json") if p.name in ("metrics.json", "lidar.json",
                                                                                 "results_nusc.json", "camera.json"))
    for rel in jsons:
        # the probe keys its results by checkpoint path: compare them relative to each demo folder
        ja = _no_times(json.loads((a / rel).read_text().replace(str(a), "<demo>")))
        jb = _no_times(json.loads((b / rel).read_text().replace(str(b), "<demo>"))) if (b / rel).is_file() else None
        if ja != jb:
            diffs.append(f"demo: {rel} differs")
    reports = [sorted(p.rglob("report.md")) for p in (a, b)]
    if not reports[0] or not reports[1]:
        diffs.append("demo: no report.md")
    else:
        ra, rb = ([ln for ln in r[0].read_text().splitlines() if not ln.startswith("Produced by")] for r in reports)
        if ra != rb:
            diffs.append("demo: report.md differs: " + "; ".join(x for x, y in zip(ra, rb) if x != y)[:500])
    print(f"demo: {len(ckpts)} checkpoints ({n} tensors), {len(jsons)} metrics/probe/box files and report.md compared")
    return diffs


def files_of(root: Path, skip: str = ".calico") -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file() and skip not in p.parts}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _no_times(x):
    """JSON without wall-clock fields (the devkit's eval_time)."""
    if isinstance(x, dict):
        return {k: _no_times(v) for k, v in x.items() if "time" not in k}
    if isinstance(x, list):
        return [_no_times(v) for v in x]
    return x


def step_losses(run: Path) -> list[str]:
    """The logged scalars of every step, as log.txt writes them (4 significant digits), without timing."""
    lines = []
    for line in (run / "log.txt").read_text().splitlines():
        m = re.search(r"step (\d+) epoch \d+ lr (\S+) [\d.]+ samples/s (.*)$", line)
        if m:
            lines.append(f"step {m.group(1)} lr {m.group(2)} {m.group(3)}")
    return lines


def compare(a: dict, b: dict, names: tuple[str, str]) -> list[str]:
    import torch

    diffs: list[str] = []
    # 1. the world
    fa, fb = files_of(a["world"]), files_of(b["world"])
    if set(fa) != set(fb):
        diffs.append(f"world: files only in {names[0]}: {sorted(set(fa) - set(fb))[:5]}, only in {names[1]}: "
                     f"{sorted(set(fb) - set(fa))[:5]}")
    changed = [k for k in sorted(set(fa) & set(fb)) if digest(fa[k]) != digest(fb[k])]
    # a table written with its keys in another order is the same table to every reader (json.load)
    reordered = [k for k in changed if k.endswith(".json")
                 and json.loads(fa[k].read_text()) == json.loads(fb[k].read_text())]
    changed = [k for k in changed if k not in reordered]
    print(f"world: {len(set(fa) & set(fb))} files compared, {len(changed)} differ"
          + (f"; same JSON content, other key order: {reordered}" if reordered else ""))
    diffs += [f"world: {k} differs" for k in changed[:10]]
    # 2. the region labels
    # by sample token: the cache layout under regions/ changed (e53b9a2: flat; later: one folder per settings hash)
    ra = {p.name: p for p in sorted(a["regions"].rglob("*.npy"))}
    rb = {p.name: p for p in sorted(b["regions"].rglob("*.npy"))}
    if set(ra) != set(rb):
        diffs.append(f"regions: other keyframes pooled: {sorted(ra)[:2]} vs {sorted(rb)[:2]}")
    npts = 0
    for k in sorted(set(ra) & set(rb)):
        xa, xb = np.load(ra[k]), np.load(rb[k])
        npts += xa.size
        if xa.shape != xb.shape or not np.array_equal(xa, xb):
            diffs.append(f"regions: {k} differs")
    print(f"regions: {len(set(ra) & set(rb))} keyframes, {npts} points compared")
    if not ra:
        diffs.append("regions: nothing was pooled")
    # 3. the fine-tuning run
    la, lb = step_losses(a["run"]), step_losses(b["run"])
    print(f"fine-tune: {len(la)} logged steps; last: {la[-1] if la else '-'}")
    if la != lb or not la:
        diffs.append(f"fine-tune losses differ:\n  {names[0]}: {la}\n  {names[1]}: {lb}")
    sa = torch.load(a["run"] / "last.pt", map_location="cpu", weights_only=True)["model"]
    sb = torch.load(b["run"] / "last.pt", map_location="cpu", weights_only=True)["model"]
    if set(sa) != set(sb):
        diffs.append(f"checkpoint: different tensors {sorted(set(sa) ^ set(sb))[:5]}")
    wdiff = [k for k in sorted(set(sa) & set(sb)) if not torch.equal(sa[k], sb[k])]
    print(f"checkpoint: {len(set(sa) & set(sb))} tensors compared, {len(wdiff)} differ")
    diffs += [f"checkpoint: {k} differs" for k in wdiff[:10]]
    evals = sorted(str(f.relative_to(a["run"])) for f in a["run"].rglob("*.json")
                   if f.name in ("metrics.json", "results_nusc.json"))
    if not evals:
        diffs.append("evaluation: no metrics.json / results_nusc.json in A's run")
    for rel in evals:
        ja = _no_times(json.loads((a["run"] / rel).read_text()))
        jb = _no_times(json.loads((b["run"] / rel).read_text())) if (b["run"] / rel).is_file() else None
        if rel.endswith("metrics.json"):
            print(f"evaluation ({rel}): mAP {ja.get('mAP')} NDS {ja.get('NDS')} mIoU {ja.get('mIoU')}")
        if ja != jb:
            keys = sorted(k for k in set(ja) | set(jb or {}) if (jb or {}).get(k) != ja.get(k))
            diffs.append(f"evaluation: {rel} differs in {keys[:10]}")
    ca = json.loads((a["run"] / "config.json").read_text())
    cb = json.loads((b["run"] / "config.json").read_text())
    flat_a = {f"{s}.{k}": v for s, sec in ca.items() for k, v in (sec.items() if isinstance(sec, dict) else [("", sec)])}
    flat_b = {f"{s}.{k}": v for s, sec in cb.items() for k, v in (sec.items() if isinstance(sec, dict) else [("", sec)])}
    new = sorted(set(flat_b) - set(flat_a))
    if new:
        print(f"config: keys only in B (B's defaults): {', '.join(f'{k}={flat_b[k]!r}' for k in new)}")
    diffs += [f"config: {k}: {flat_a[k]!r} vs {flat_b.get(k, '(absent)')!r}" for k in sorted(flat_a)
              if flat_a[k] != flat_b.get(k, "(absent)") and k not in ("data.cache_dir",)]
    return diffs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", type=Path, help="checkout A (e.g. the older commit)")
    p.add_argument("b", type=Path, help="checkout B")
    p.add_argument("--work", type=Path, default=Path("/tmp/outputs_check"), help="scratch folder (emptied)")
    p.add_argument("--dataroot", type=Path, default=SCENE_0916, help="real nuScenes-format slice for pooling")
    p.add_argument("--keyframes", type=int, default=4, help="keyframes pooled")
    p.add_argument("--steps", type=int, default=6, help="fine-tuning steps")
    p.add_argument("--demo", action="store_true", help="also `calico demo --quick` with each (about 4 min more each)")
    args = p.parse_args()
    a, b = args.a.resolve(), args.b.resolve()
    names = (f"A {a} @ {which_code(a)}", f"B {b} @ {which_code(b)}")
    print("\n".join(names))
    shutil.rmtree(args.work, ignore_errors=True)
    t = time.perf_counter()
    out_a = run_checkout(a, args.work / "A", None, args)
    out_b = run_checkout(b, args.work / "B", out_a["world"], args)
    diffs = compare(out_a, out_b, names)
    if args.demo:
        diffs += compare_demo(out_a["demo"], out_b["demo"])
    print(f"{time.perf_counter() - t:.0f} s in all")
    if diffs:
        print("DIFFERENT:\n" + "\n".join(diffs))
        return 1
    print("IDENTICAL: world files, region labels, fine-tuning losses, final weights and metrics")
    return 0


if __name__ == "__main__":
    sys.exit(main())
