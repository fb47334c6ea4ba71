#!/usr/bin/env bash
# The test command: install dependencies, configure (CUDA compiled where nvcc exists), build with
# all cores, run every test (tests labelled `cuda` report themselves skipped without a GPU), then
# run the fuzz targets (image decoding, weights files) under ASan/UBSan for FUZZ_SECONDS (default
# 60).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
BUILD=${BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" -j "$(nproc)"
ctest --test-dir "$BUILD" -j "$(nproc)" --output-on-failure --timeout 900
# The fuzz targets under AddressSanitizer/UBSan, for a bounded time (clang, libFuzzer).
bash scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
