#!/usr/bin/env bash
# The study's comparison: trains the four custom CNNs (simple, bn_dropout, sigmoid, tanh) with the
# same settings, then the transfer models (scripts/transfer.sh: ResNet-50, MobileNetV2, their
# ensemble; TRANSFER=0 skips them), draws their train/test accuracy curves side by side and writes
# a markdown table of final and best accuracies.
#
#   scripts/compare.sh TRAIN_DIR TEST_DIR OUT_DIR [train flags...]
#   e.g. scripts/compare.sh datasets/intel/seg_train datasets/intel/seg_test runs/compare --epochs 10
#
# Every model trains into OUT_DIR/<model>; a run folder that already holds a run is resumed, so an
# interrupted comparison continues where it stopped.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n 2,10p "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
cd "$(dirname "$0")/.."
TRAIN=$1 TEST=$2 OUT=$3
shift 3
BUILD=${BUILD_DIR:-build}
[ -x "$BUILD/train" ] || { echo "compare.sh: $BUILD/train not built (run scripts/run.sh or cmake --build $BUILD)" >&2; exit 1; }
mkdir -p "$OUT"
RUNS=()
for m in simple bn_dropout sigmoid tanh; do
  echo "== $m"
  if [ -f "$OUT/$m/last.state.safetensors" ]; then
    "$BUILD/train" --out "$OUT/$m" --resume --no-plot "$@"
  else
    "$BUILD/train" --train-dir "$TRAIN" --test-dir "$TEST" --model "$m" --out "$OUT/$m" --no-plot "$@"
  fi
  RUNS+=("$OUT/$m")
done
# The transfer models beside them (TRANSFER=0 skips them): scripts/transfer.sh with the same flags.
if [ "${TRANSFER:-1}" != 0 ]; then
  BUILD_DIR=$BUILD bash scripts/transfer.sh "$TRAIN" "$TEST" "$OUT" "$@"
  RUNS+=("$OUT/resnet50" "$OUT/mobilenet_v2" "$OUT/ensemble")
fi
/usr/bin/python3 tools/plot.py --compare "${RUNS[@]}" --out "$OUT/accuracy.png"
/usr/bin/python3 tools/plot.py --table "${RUNS[@]}" | tee "$OUT/table.md"
echo "figure: $OUT/accuracy.png   table: $OUT/table.md"
