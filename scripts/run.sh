#!/usr/bin/env bash
# The main job, for now: install what is needed, build, print the four custom CNNs' summaries,
# and time one CPU training step of each against PyTorch on this machine (bench/RESULTS.md keeps
# the recorded figures). The `train` tool replaces this once the data pipeline lands.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
BUILD=${BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j "$(nproc)"
for m in simple bn_dropout sigmoid tanh; do "$BUILD/summary" --model "$m"; done
/usr/bin/python3 bench/cpu_train_step.py --build "$BUILD" --threads "$(nproc)" --steps 3 --rounds 1
