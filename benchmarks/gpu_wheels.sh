#!/usr/bin/env bash
# Build .gpu/site.tar.xz here (a machine with pip and network): spconv's CUDA build and what it needs that the
# device image lacks, unpacked as a site-packages tree and xz-compressed, for benchmarks/gpu_check.sh.
#
# Why not carry the wheels: the device tool sends at most 64 MiB per call, and spconv-cu126 2.3.8's wheel alone
# is 70.5 MB (one 284 MB core_cc.so, kernels for every GPU architecture); with cumm-cu126 (26.6 MB) the pair
# xz-compresses to about 39 MB. The device image is Python 3.12 with torch built for CUDA 13.0; spconv has no
# CUDA 13 build (cu126 is the newest), and its wheels bundle their own CUDA 12.6 runtime, which the image's
# driver (580, CUDA 13.0) also runs. The image already has pybind11, numpy, sympy, ninja, requests, portalocker.
#
#     bash benchmarks/gpu_wheels.sh      # then: device run with carry [".gpu"], see gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEST=.gpu
WHEELS=(spconv-cu126==2.3.8 cumm-cu126==0.7.11 pccm==0.4.16 ccimport==0.4.4 fire==0.7.1 termcolor==3.3.0
        lark==1.3.1)
grep -qx '/.gpu/' .gitignore || { echo "add /.gpu/ to .gitignore first" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$tmp/whl" "${WHEELS[@]}"
mkdir -p "$tmp/site"
for w in "$tmp"/whl/*.whl; do
    "$PY" -m zipfile -e "$w" "$tmp/site"  # a wheel is a zip of its site-packages tree
done
mkdir -p "$DEST"
# -T2: this is a shared machine; xz of the ~360 MB tree takes a few minutes
tar -C "$tmp/site" -cf - . | xz -T2 -9 > "$DEST/site.tar.xz"
ls -l "$DEST/site.tar.xz"
