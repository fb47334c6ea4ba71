#!/usr/bin/env bash
# The explorer at the Intel set's scale (issue 12's performance targets): 24,000 synthetic
# 150x150 JPEGs (13,980 train, 3,000 test, 7,020 unlabelled, made by make_dataset), the report
# without a checkpoint (target <= 60 s wall on 2 cores), with a quarter-width custom CNN
# checkpoint (<= 120 s), the report folder's size (< 60 MB), and the page's time to `data-ready`
# in headless Chromium (<= 3 s; tests/browser/ready_time.mjs).
#
#   bash bench/explore_bench.sh [BUILD_DIR] [WORK_DIR]
# The dataset and the checkpoint are kept in WORK_DIR (default /tmp/explore-bench) for reruns.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
WORK=${2:-/tmp/explore-bench}
mkdir -p "$WORK"
D=$WORK/intel24k
if [ ! -f "$D/SYNTHETIC.txt" ]; then
  echo "== make_dataset: 24,000 images of 150x150 into $D"
  /usr/bin/time -f "make_dataset: %e s" "$BUILD/make_dataset" --out "$D" --train-per-class 2330 \
    --test-per-class 500 --pred 7020 --seed 7 >/dev/null
fi
CKPT=$WORK/ckpt/best.safetensors
if [ ! -f "$CKPT" ]; then
  # The checkpoint only has to be a real quarter-width model of the six classes: trained briefly
  # on a small set of the same generator.
  "$BUILD/make_dataset" --out "$WORK/small" --train-per-class 60 --test-per-class 20 --pred 0 \
    --seed 8 >/dev/null
  "$BUILD/train" --train-dir "$WORK/small/seg_train" --test-dir "$WORK/small/seg_test" \
    --model simple --width 0.25 --lr 0.0003 --epochs 4 --out "$WORK/ckpt" --no-plot >/dev/null
fi
find "$D" -name '*.jpg' | wc -l | xargs echo "images:"
for run in plain checkpoint; do
  args=(--data "$D" --out "$WORK/report-$run" --overwrite)
  [ "$run" = checkpoint ] && args+=(--checkpoint "$CKPT")
  /usr/bin/time -f "explore ($run): %e s wall, %M KB peak RSS" "$BUILD/explore" "${args[@]}" \
    >"$WORK/explore-$run.log"
  du -sm "$WORK/report-$run" | awk -v r="$run" '{print "report folder (" r "): " $1 " MB"}'
done
if command -v chromium >/dev/null && [ -d tests/browser/node_modules ]; then
  for run in plain checkpoint; do
    node tests/browser/ready_time.mjs "$WORK/report-$run" | sed "s/^/page ($run): /"
  done
else
  echo "page: not timed (needs chromium and tests/browser/node_modules: bash scripts/install_deps.sh)"
fi
