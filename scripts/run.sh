#!/usr/bin/env bash
# The main job: install what is needed, build, and train.
#
#   - With the Intel Image Classification dataset in datasets/intel (or $INTEL_DATA): the Kaggle
#     archive unpacked so that datasets/intel/seg_train/seg_train/<class>/*.jpg exists. Trains the
#     study's model with its settings (MODEL, EPOCHS and EXTRA_ARGS override them).
#   - Without it: generates a synthetic dataset of the same layout (procedurally drawn scenes, not
#     photographs) and trains a quarter-width model on it, about two minutes on a 2-core CPU.
#
# Then evaluates the best checkpoint on the test folder, predicts the unlabelled seg_pred folder,
# runs the transfer-learning half (scripts/transfer.sh: ResNet-50 and MobileNetV2 fine-tuned on
# frozen ImageNet backbones, then their ensemble; TRANSFER=0 skips it), writes the explorer's
# report of the dataset as the trained model sees it (build/explore; open its index.html from
# disk in any browser), and prints the test accuracy and where the checkpoints, metrics, plots
# and the report are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
BUILD=${BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target train predict evaluate make_dataset summary explore

DATA=${INTEL_DATA:-datasets/intel}
STAMP=$(date +%Y%m%d-%H%M%S)
if [ -d "$DATA/seg_train" ] && [ -d "$DATA/seg_test" ]; then
  echo "== Intel Image Classification data in $DATA"
  OUT=runs/${MODEL:-bn_dropout}-$STAMP
  # shellcheck disable=SC2086
  "$BUILD/train" --train-dir "$DATA/seg_train" --test-dir "$DATA/seg_test" \
    --model "${MODEL:-bn_dropout}" --epochs "${EPOCHS:-10}" --out "$OUT" ${EXTRA_ARGS:-}
else
  DATA=runs/synthetic-data
  echo "== no dataset in ${INTEL_DATA:-datasets/intel} (see README: Data); using a synthetic one in $DATA"
  "$BUILD/make_dataset" --out "$DATA" --train-per-class 60 --test-per-class 20 --pred 20 --seed 1
  OUT=runs/${MODEL:-simple}-synthetic-$STAMP
  # shellcheck disable=SC2086
  "$BUILD/train" --train-dir "$DATA/seg_train" --test-dir "$DATA/seg_test" \
    --model "${MODEL:-simple}" --width 0.25 --lr 0.0003 --epochs "${EPOCHS:-8}" --out "$OUT" \
    ${EXTRA_ARGS:-}
fi

echo "== evaluate $OUT/best.safetensors on $DATA/seg_test"
"$BUILD/evaluate" --checkpoint "$OUT/best.safetensors" --data "$DATA/seg_test" \
  --json "$OUT/evaluation.json" | tail -n +2
if [ -d "$DATA/seg_pred" ]; then
  "$BUILD/predict" --checkpoint "$OUT/best.safetensors" --images "$DATA/seg_pred" \
    --output "$OUT/predictions.csv"
fi
# The transfer-learning half (TRANSFER=0 skips it): ResNet-50 and MobileNetV2 heads on frozen
# ImageNet backbones, then their ensemble; see scripts/transfer.sh for where the weights come from.
TOUT=""
if [ "${TRANSFER:-1}" != 0 ]; then
  TOUT=runs/transfer-$STAMP
  if [ "$DATA" = runs/synthetic-data ]; then EP=${TRANSFER_EPOCHS:-3}; else EP=${TRANSFER_EPOCHS:-20}; fi
  BUILD_DIR=$BUILD TRANSFER_EPOCHS=$EP bash scripts/transfer.sh "$DATA/seg_train" "$DATA/seg_test" "$TOUT"
fi
if /usr/bin/python3 tools/plot.py --run "$OUT" 2>/dev/null; then
  PLOTS="$OUT/accuracy.png, $OUT/loss.png, $OUT/confusion.png"
else
  PLOTS="not drawn (python3-matplotlib missing): /usr/bin/python3 tools/plot.py --run $OUT"
fi
# The dataset and model explorer: overview, every image in a filterable grid, outliers,
# duplicates and leakage, and the checkpoint's predictions, errors and embedding.
echo "== explore $DATA with $OUT/best.safetensors"
"$BUILD/explore" --data "$DATA" --checkpoint "$OUT/best.safetensors" --out "$OUT/explore" \
  --overwrite
ACC=$(/usr/bin/python3 -c "import json,sys; print(f\"{json.load(open(sys.argv[1]))['accuracy']:.4f}\")" "$OUT/evaluation.json")
echo
echo "test accuracy (best checkpoint): $ACC"
echo "checkpoint:  $OUT/best.safetensors (last epoch: $OUT/last.safetensors)"
echo "metrics:     $OUT/metrics.csv, $OUT/evaluation.json"
echo "predictions: $OUT/predictions.csv"
echo "plots:       $PLOTS"
if [ -n "$TOUT" ]; then
  echo "transfer:    $TOUT/{resnet50,mobilenet_v2,ensemble} (table $TOUT/transfer_table.md, figure $TOUT/transfer_accuracy.png)"
fi
echo "explorer:    $OUT/explore/index.html (open it in a browser: file://$(pwd)/$OUT/explore/index.html)"
