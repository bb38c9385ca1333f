#!/usr/bin/env bash
# The main job on the bundled agent, on CPU in a few minutes: what goal did it learn, and
# where in the network is it? Usage: bash scripts/demo.sh [OUT_DIR]   (default: demo)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-demo}
AGENT=agents/colour-shape-yellow-line/agent.pt   # yellow-line goal, black 5x5 mazes
TEST=(--env colour-shape -o goal=red-line -o distractor=yellow-gem)  # Maze II's test
mkdir -p "$OUT"
set -x  # --overwrite: a second run replaces the first one's results
# 1. Which object does it go to first: the rewarded red line or the yellow gem?
.venv/bin/interp eval "$AGENT" "${TEST[@]}" --episodes 256 --device cpu --out "$OUT/eval-test.md" \
    --overwrite
# 2. Record activations with ground-truth labels (~6k steps, ~0.7 GB in float16) ...
.venv/bin/interp record "$AGENT" "${TEST[@]}" --episodes 32 --float16 --device cpu \
    --out "$OUT/test.h5" --overwrite
# 3. ... and find where the yellow gem's position is linearly readable, against controls.
.venv/bin/interp probe "$OUT/test.h5" --feature distractor_x --out "$OUT/probe-distractor_x" \
    --overwrite
# 4. Which pixels move its value and its action: gradient attributions on the test mazes.
.venv/bin/interp attribute "$AGENT" "${TEST[@]}" --method gradient --device cpu \
    --out "$OUT/attribute" --overwrite
