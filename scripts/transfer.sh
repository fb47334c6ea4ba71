#!/usr/bin/env bash
# The study's transfer-learning half: fine-tunes the head of ImageNet ResNet-50 and MobileNetV2 on
# frozen backbones, then trains the ensemble of the two fine-tuned models, evaluates all three on
# the test folder, predicts the unlabelled seg_pred folder beside it (when there is one) and draws
# their accuracy curves side by side.
#
#   scripts/transfer.sh TRAIN_DIR TEST_DIR OUT_DIR [train flags...]
#
# Weights: WEIGHTS_DIR (default weights/) holding resnet50.safetensors and
# mobilenet_v2.safetensors (converted by tools/convert_torchvision.py), or the torch.hub files
# resnet50-0676ba61.pth / mobilenet_v2-b0353104.pth there or in ~/.cache/torch/hub/checkpoints/
# (converted here). Without them it says how to get them and uses torchvision's random
# initialisation (--random-seed 0) so that the whole path runs; accuracy then means nothing.
# TRANSFER_EPOCHS (default 20, the study's) sets the epochs. Run folders: OUT_DIR/<model>; one that
# already holds a run is resumed.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n 2,14p "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
cd "$(dirname "$0")/.."
TRAIN=$1 TEST=$2 OUT=$3
shift 3
BUILD=${BUILD_DIR:-build}
WEIGHTS_DIR=${WEIGHTS_DIR:-weights}
EPOCHS=${TRANSFER_EPOCHS:-20}
[ -x "$BUILD/train" ] || { echo "transfer.sh: $BUILD/train not built (run scripts/run.sh or cmake --build $BUILD)" >&2; exit 1; }
mkdir -p "$OUT"

# The engine weights file for an architecture: converted already, converted now from a torch.hub
# file, or (none found) torchvision's random initialisation.
weights_for() {
  local arch=$1 hub=$2 st="$WEIGHTS_DIR/$1.safetensors" pth
  if [ -f "$st" ]; then echo "$st"; return; fi
  for pth in "$WEIGHTS_DIR/$hub" "$HOME/.cache/torch/hub/checkpoints/$hub"; do
    if [ -f "$pth" ]; then
      mkdir -p "$WEIGHTS_DIR"
      /usr/bin/python3 tools/convert_torchvision.py "$arch" "$pth" --out "$st" >&2
      echo "$st"
      return
    fi
  done
  mkdir -p "$OUT/weights-random"
  st="$OUT/weights-random/$arch.safetensors"
  [ -f "$st" ] || /usr/bin/python3 tools/convert_torchvision.py "$arch" --random-seed 0 --out "$st" >&2
  echo "$st"
}
RANDOM_WEIGHTS=0
R50=$(weights_for resnet50 resnet50-0676ba61.pth)
MNV2=$(weights_for mobilenet_v2 mobilenet_v2-b0353104.pth)
if [ "$R50" = "$OUT/weights-random/resnet50.safetensors" ] || [ "$MNV2" = "$OUT/weights-random/mobilenet_v2.safetensors" ]; then
  cat <<EOF
== no ImageNet weights in $WEIGHTS_DIR/ or ~/.cache/torch/hub/checkpoints/: using torchvision's
   random initialisation, so the path runs but the accuracy means nothing. To get the real ones
   (README, "Transfer learning"), on a machine with internet:
     python3 -c "import torchvision.models as m; m.resnet50(weights='IMAGENET1K_V1'); m.mobilenet_v2(weights='IMAGENET1K_V1')"
   then copy ~/.cache/torch/hub/checkpoints/{resnet50-0676ba61,mobilenet_v2-b0353104}.pth into $WEIGHTS_DIR/.
EOF
  RANDOM_WEIGHTS=1
  # Random backbones give features in the thousands: the study's lr 0.05 would diverge.
  set -- --lr 0.0003 "$@"
fi

# --epochs among the flags (compare.sh passes its own) wins over TRANSFER_EPOCHS.
EPOCH_FLAG=(--epochs "$EPOCHS")
for a in "$@"; do [ "$a" != --epochs ] || EPOCH_FLAG=(); done
train() {  # train OUT_NAME [flags...]
  local out="$OUT/$1"
  shift
  if [ -f "$out/last.state.safetensors" ]; then
    "$BUILD/train" --out "$out" --resume "${EPOCH_FLAG[@]}" --no-plot
  else
    "$BUILD/train" --train-dir "$TRAIN" --test-dir "$TEST" --out "$out" "${EPOCH_FLAG[@]}" \
      --no-plot "$@"
  fi
}
echo "== resnet50 (frozen backbone, new fc) from $R50"
train resnet50 --model resnet50 --weights "$R50" --freeze-backbone "$@"
echo "== mobilenet_v2 (frozen backbone, new classifier.1) from $MNV2"
train mobilenet_v2 --model mobilenet_v2 --weights "$MNV2" --freeze-backbone "$@"
echo "== ensemble of the two fine-tuned models (fc1 over their 12 logits)"
train ensemble --model ensemble --weights-a "$OUT/resnet50/best.safetensors" \
  --weights-b "$OUT/mobilenet_v2/best.safetensors" "$@"

RUNS=("$OUT/resnet50" "$OUT/mobilenet_v2" "$OUT/ensemble")
# The unlabelled images beside the test folder (Kaggle's seg_pred), when there are any.
PRED=$(dirname "$TEST")/seg_pred
for r in "${RUNS[@]}"; do
  "$BUILD/evaluate" --checkpoint "$r/best.safetensors" --data "$TEST" --json "$r/evaluation.json" \
    > "$r/evaluation.txt"
  if [ -d "$PRED" ]; then
    "$BUILD/predict" --checkpoint "$r/best.safetensors" --images "$PRED" --output "$r/predictions.csv"
  fi
  /usr/bin/python3 tools/plot.py --run "$r" 2>/dev/null || true
done
/usr/bin/python3 tools/plot.py --compare "${RUNS[@]}" --out "$OUT/transfer_accuracy.png" 2>/dev/null || true
/usr/bin/python3 tools/plot.py --table "${RUNS[@]}" | tee "$OUT/transfer_table.md"
[ "$RANDOM_WEIGHTS" = 0 ] || echo "(random backbone weights: these accuracies mean nothing)"
echo "figure: $OUT/transfer_accuracy.png   table: $OUT/transfer_table.md"
