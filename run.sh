#!/usr/bin/env bash
# The two newcomer commands (see README):  bash run.sh demo   |   bash run.sh test
# Creates .venv with Python >= 3.11 on first use, installs calico-bev and its pinned dependencies, then runs.
set -euo pipefail
cd "$(dirname "$0")"

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3.12 python3.13 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PY="$cand"; break
    fi
  done
fi
[ -n "$PY" ] || { echo "run.sh: need Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

stamp=.venv/.calico-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "run.sh: setting up .venv with $("$PY" --version) (first run: a few minutes)"
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi

cmd="${1:-demo}"; shift || true
case "$cmd" in
  demo) exec .venv/bin/calico demo "$@" ;;
  test)
    .venv/bin/ruff check calico tests benchmarks
    exec .venv/bin/python -m pytest -q "$@" ;;
  *) echo "usage: bash run.sh demo|test [args]" >&2; exit 2 ;;
esac
