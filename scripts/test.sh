#!/usr/bin/env bash
# The test command: install dependencies, configure (CUDA compiled where nvcc exists), build with
# all cores, run every test. Tests labelled `cuda` report themselves skipped without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
BUILD=${BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" -j "$(nproc)"
ctest --test-dir "$BUILD" -j "$(nproc)" --output-on-failure --timeout 900
