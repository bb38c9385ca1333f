#!/usr/bin/env bash
# Download the wheels the GPU machine lacks (Python 3.12, no network there) into .whl/.
# On the device: python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for pkg in procgen-mirror==0.10.7 gym3==0.3.3 cffi pycparser gym-notices; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${plat[@]}" -d .whl "$pkg"
done
# gym 0.26.2 ships no wheel: build a pure-python one here.
ls .whl/gym-0.26.2-*.whl >/dev/null 2>&1 || python3 -m pip wheel -q --no-deps -w .whl gym==0.26.2
du -sh .whl
