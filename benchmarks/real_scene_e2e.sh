#!/usr/bin/env bash
# The whole pipeline on the one real nuScenes scene (issue 15): prepare -> pool -> PRC -> fine-tune (random init
# and PRC) -> evaluate -> show, then `calico study` on the same data, each step timed. Keyframes are split by
# calico/splits/nuscenes_scene0916_frames.json (30 train as 6 slices of 5, a 3-keyframe gap, 8 val): the shared
# dataroot is read, never written (everything derived goes under $OUT).
#
# Run from a checkout:  bash benchmarks/real_scene_e2e.sh [OUT]       (default OUT=/tmp/real0916)
# Sizes: PRE_EPOCHS (default 8), FT_EPOCHS (default 10); the cpu preset otherwise. One seed: this shows that the
# real-data path runs and what it costs, not a comparison (8 val keyframes of one scene cannot carry one).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/real0916}
DATA=${DATA:-../shared/data/nuscenes-scene-0916}
PRE_EPOCHS=${PRE_EPOCHS:-8}
FT_EPOCHS=${FT_EPOCHS:-10}
PY=${PY:-python}
SPLITS="$PWD/calico/splits/nuscenes_scene0916_frames.json"
DATA_FLAGS=(--dataroot "$DATA" --version v1.0-mini --cache-dir "$OUT/cache" --set "data.splits_file=$SPLITS")
COMMON=(--config cpu "${DATA_FLAGS[@]}")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$OUT"
TIMES="$OUT/times.md"
echo "| step | seconds |" > "$TIMES"
echo "|---|---:|" >> "$TIMES"

step() {  # step NAME CMD...: run, time, append to the table
    local name=$1; shift
    echo "== $name: $*"
    local t0=$SECONDS
    "$@"
    echo "| $name | $((SECONDS - t0)) |" >> "$TIMES"
}

step prepare $PY -m calico prepare "${COMMON[@]}"
step pool $PY -m calico pool "${COMMON[@]}"
step "pool --evaluate" $PY -m calico pool "${COMMON[@]}" --evaluate
step "pretrain prc ($PRE_EPOCHS epochs, train)" $PY -m calico pretrain --stage prc "${COMMON[@]}" --split train \
    --seed 0 --out "$OUT/prc" --set "pretrain.epochs=$PRE_EPOCHS"
for arm in rand prc; do
    init=()
    [ "$arm" = prc ] && init=(--init "$OUT/prc/last.pt")
    step "finetune $arm ($FT_EPOCHS epochs) + evaluate val" $PY -m calico finetune "${COMMON[@]}" --fraction 1.0 \
        --modality L --seed 0 "${init[@]}" --out "$OUT/ft-$arm" --set "finetune.epochs=$FT_EPOCHS"
done
step "probe random vs prc" $PY -m calico probe --ckpt random "$OUT/prc/last.pt" "${COMMON[@]}" --train-frames 12 \
    --json "$OUT/probe.json"
# no --config: show builds the model from the checkpoint's own config (this one is LiDAR-only)
step show $PY -m calico show "${DATA_FLAGS[@]}" --sample 35 --ckpt "$OUT/ft-prc/last.pt" --regions --out "$OUT/show.png"
step "study (rand_l, prc; fraction 1.0; seed 0)" $PY -m calico study --grid efficiency --methods rand_l prc \
    --fractions 1.0 --seeds 0 "${COMMON[@]}" --out "$OUT/study" --jobs 1 \
    --pretrain-set "pretrain.epochs=$PRE_EPOCHS" --finetune-set "finetune.epochs=$FT_EPOCHS"

echo
cat "$TIMES"
for arm in rand prc; do
    m="$OUT/ft-$arm/eval/metrics_summary.json"
    [ -f "$m" ] && $PY -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], 'mAP %.3f NDS %.3f' % (d['mean_ap'], d['nd_score']))" "$m" "$arm"
done
