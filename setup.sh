#!/usr/bin/env bash
# Create .venv with CPU torch and interp installed (idempotent). Usage: bash setup.sh
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# CPU torch first, so nothing below pulls the multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test,sweep]"  # sweep: Ray, for `interp sweep`
echo "interp installed in .venv ($(.venv/bin/python -c 'import torch; from interp.envs.base import import_procgen; import_procgen(); print("torch", torch.__version__)'))"
