#!/usr/bin/env bash
# The main job on a bundled agent, on CPU in a few minutes: what goal did it learn, and where in
# the network is it? Ends with demo/summary/summary.md (+ .png): the behaviour with 95% CIs and
# the layers whose probe clears the random-init and pixel controls.
# Usage: bash scripts/demo.sh [OUT_DIR]   (default: demo)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-demo}
AGENT=agents/coinrun-cpu/agent.pt   # CoinRun, coin always at the end of the level in training
LAYERS=(--layers embedder.block2.res1.resadd --layers embedder.block3.res2.resadd
        --layers embedder.relufc)   # the blocks where the coin was readable (docs/probes.md)
mkdir -p "$OUT"
set -x  # --overwrite: a second run replaces the first one's results
# 1. The coin moves to a random place: does the agent still get it, or run to the end wall?
#    The invisible-coin levels are the baseline: how often it reaches the coin by chance.
.venv/bin/interp eval "$AGENT" --env coinrun-random-coin --episodes 256 --device cpu \
    --json "$OUT/eval-random-coin.json" --overwrite
.venv/bin/interp eval "$AGENT" --env coinrun-invisible-coin --episodes 256 --device cpu \
    --json "$OUT/eval-invisible-coin.json" --overwrite
# 2. Record the layers the probe needs, with ground-truth labels, on 192 random-coin levels ...
.venv/bin/interp record "$AGENT" --env coinrun-random-coin --episodes 192 "${LAYERS[@]}" \
    --float16 --device cpu --out "$OUT/coin.h5" --overwrite
# 3. ... find where "the coin is in view" is linearly readable, against a random-init network
#    of the same architecture, the raw pixels and shuffled labels ...
.venv/bin/interp probe "$OUT/coin.h5" --feature coin --no-umap --out "$OUT/probe-coin" --overwrite
# 4. ... and put the answer on one page.
.venv/bin/interp summary "$AGENT" --eval "$OUT/eval-random-coin.json" \
    --eval "$OUT/eval-invisible-coin.json" --probe "$OUT/probe-coin" --out "$OUT/summary" --overwrite
{ set +x; } 2>/dev/null
cat "$OUT/summary/summary.md"
