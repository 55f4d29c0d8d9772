#!/usr/bin/env bash
# The CUDA path on one GPU (issue 14), in one run of at most ~8 minutes: environment, `pytest -m gpu`, and
# benchmarks/bench_models.py --device cuda for the paper preset (fine-tune L and L+C, PRC, RAD; fp32 and bf16
# AMP: step time, samples/s, torch.cuda.max_memory_allocated). Everything lands in $OUT (7 files, no folders):
#
#   summary.txt   one line per part: name, exit code, seconds; then the overall verdict
#   env.txt       nvidia-smi, python / torch / CUDA / cuDNN / timm / numpy / spconv versions
#   pytest.log    pytest -m gpu -v (tests/test_gpu.py, tests/test_engine_gpu.py), the losses it prints
#   junit.xml     the same as JUnit XML
#   bench.md      bench_models.py's markdown table (the command line included)
#   bench.json    its rows, failures with their error
#   bench.log     its stderr
#
# Each part runs under its own time limit and the script goes on past a failing part, so one run collects
# everything; it exits 1 when any part failed. spconv's CUDA build travels as .gpu/site.tar.xz (made here by
# benchmarks/gpu_wheels.sh; the device image has torch, timm, numpy, tensorboard, pytest but no spconv); without
# it the spconv test skips and summary.txt says so.
#
# First, here: `bash benchmarks/gpu_wheels.sh` (a few minutes of xz). Then on the device (the tool `run`,
# carry [".gpu"], timeout_s 540: the three limits below add up to 7.5 min, the unpacking to ~20 s):
#     bash benchmarks/gpu_check.sh
# Parts can be chosen for a rerun: `bash benchmarks/gpu_check.sh tests` or `... bench` (default: env tests bench).
# Knobs (environment): TESTS_LIMIT (s, 180), BENCH_LIMIT (s, 240), BENCH_STEPS (5), BENCH_TASKS
# (finetune,prc,rad), BENCH_CONFIGS (paper), BENCH_AMP (off,bf16). DRY=1 is the CPU dry run of the plumbing:
# the gpu tests skip and the bench runs one cpu-preset fine-tune step on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
PARTS=("$@")
[ ${#PARTS[@]} -gt 0 ] || PARTS=(env tests bench)
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }

# spconv (CUDA build) and its pure-python needs, unpacked beside the repo's own code
site=""
if [ -f .gpu/site.tar.xz ]; then
    site=/tmp/calico_site
    rm -rf "$site" && mkdir -p "$site"
    # Python's tarfile/lzma rather than tar -J: the image may have no xz binary
    if "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="data")' \
        .gpu/site.tar.xz "$site"; then
        note "spconv: unpacked .gpu/site.tar.xz into $site"
    else
        note "spconv: unpacking .gpu/site.tar.xz FAILED"; site=""
    fi
else
    note "spconv: no .gpu/site.tar.xz (run benchmarks/gpu_wheels.sh and carry .gpu): the spconv test skips"
fi
export PYTHONPATH="$PWD${site:+:$site}${PYTHONPATH:+:$PYTHONPATH}"

failed=0
part() {  # part NAME LIMIT_S FUNCTION: run FUNCTION under a time limit, record its exit code and duration
    local name=$1 limit=$2 fn=$3 rc t0=$SECONDS why=""
    set +e
    timeout --kill-after=10 "$limit" bash -c "$fn"
    rc=$?
    set -e
    if [ "$rc" -ne 0 ]; then failed=1; fi
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then why=" (time limit ${limit}s)"; fi
    note "$name: exit $rc$why, $((SECONDS - t0)) s"
}

env_info() {
    { nvidia-smi || echo "nvidia-smi: not available"
      "$PY" - <<'EOF'
import importlib, platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "cudnn", torch.backends.cudnn.version(), "cuda available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("gpu", p.name, f"{p.total_memory / 2**30:.1f} GiB", "sm", f"{p.major}.{p.minor}",
          "bf16", torch.cuda.is_bf16_supported())
for name in ("timm", "numpy", "tensorboard", "pytest", "spconv", "cumm"):
    try:
        m = importlib.import_module(name)
        print(name, getattr(m, "__version__", "?"), m.__file__)
    except Exception as exc:  # noqa: BLE001 - report any import failure
        print(name, "NOT importable:", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
EOF
    } > "$OUT/env.txt" 2>&1
}

run_tests() {
    # only the files holding gpu tests: collecting the whole suite would need packages the image lacks
    # (nuscenes-devkit, shapely, ...)
    local files
    files=$(grep -l "pytest.mark.gpu" tests/test_*.py | tr '\n' ' ')
    # shellcheck disable=SC2086
    "$PY" -m pytest -m gpu -v -s -p no:cacheprovider --junitxml="$OUT/junit.xml" $files > "$OUT/pytest.log" 2>&1
}

run_bench() {
    local device=cuda configs=${BENCH_CONFIGS:-paper} tasks=${BENCH_TASKS:-finetune,prc,rad}
    local steps=${BENCH_STEPS:-5} amp=${BENCH_AMP:-off,bf16} extra=()
    if [ "${DRY:-0}" = 1 ]; then
        device=cpu configs=cpu tasks=finetune steps=1 amp=off extra=(--modalities L)
    fi
    "$PY" benchmarks/bench_models.py --device "$device" --configs "$configs" --tasks "$tasks" \
        --steps "$steps" --amp "$amp" --timeout 90 --json "$OUT/bench.json" "${extra[@]}" \
        > "$OUT/bench.md" 2> "$OUT/bench.log"
}

export OUT PY
export -f env_info run_tests run_bench
for p in "${PARTS[@]}"; do
    case $p in
        env) part env 30 env_info ;;
        tests) part tests "${TESTS_LIMIT:-180}" run_tests ;;
        bench) part bench "${BENCH_LIMIT:-240}" run_bench ;;
        *) note "unknown part $p (env, tests, bench)"; failed=1 ;;
    esac
done
if [ -f "$OUT/pytest.log" ]; then
    note "pytest: $(grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|error)' "$OUT/pytest.log" | tail -1 || true)"
fi
if [ "$failed" -eq 0 ]; then note "gpu_check: every part passed"; else note "gpu_check: FAILED parts above"; fi
exit "$failed"
