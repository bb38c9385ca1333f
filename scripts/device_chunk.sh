#!/usr/bin/env bash
# One chunk of a training run on the GPU machine (no network there; 10-minute commands).
#   here:    bash scripts/device_wheels.sh                 # once: wheels into .whl/
#   device:  run(command="bash scripts/device_chunk.sh coinrun-easy runs/coinrun-s0",
#                carry=[".whl", "runs/coinrun-s0"])        # repeat until run.json says complete
# The run dir comes back through $OUT as runs.tar; unpack it here before the next chunk:
#   tar -xf <files_at>/runs.tar
set -euo pipefail
config=$1 run_dir=$2 minutes=${3:-7.5}
# DEVICE=cpu SKIP_WHEELS=1 runs the same chunk here, as a dry run.
[ "${SKIP_WHEELS:-0}" = 1 ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true
python3 cli.py train "$config" --out "$run_dir" --resume --device "${DEVICE:-cuda}" --max-minutes "$minutes" \
  2>&1 | tee "${OUT:-/tmp}/train.log"
# Bring back the run (files from $OUT are limited to 16 MiB each): everything but the agent
# snapshots, plus the newest snapshot; older snapshots stay in the copy carried over.
newest=$(ls -t "$run_dir"/checkpoints/agent_*.pt 2>/dev/null | head -1)
find "$run_dir" -type f ! -path '*/checkpoints/agent_*' > /tmp/files
[ -n "$newest" ] && echo "$newest" >> /tmp/files
tar -cf "${OUT:-/tmp}/runs.tar" -T /tmp/files
ls -la "$run_dir"
