#!/usr/bin/env bash
# ctest driver of the explorer's browser test (label `browser`):
#   tests/browser/run.sh BUILD_DIR OUT_DIR
# 1. a small synthetic dataset (make_dataset) and a tiny checkpoint trained on it (train: 2 epochs
#    reach about 60% test accuracy, so the confusion matrix has cells off its diagonal);
# 2. `explore --data ... --checkpoint ... --out OUT_DIR/report` (EXPLORE_FAKE=1 and no explore
#    binary: make_fake_report.py describes the same folders instead, to develop the page);
# 3. the folder counts, with find, as the expectations; the page in Debian chromium against them;
# 4. the page again on a fake report of 24,000 images (real sprite sheets), ready within 3 s.
# Screenshots land in OUT_DIR/shots and OUT_DIR/shots-24000. A missing chromium or node fails the
# test (scripts/install_deps.sh installs them); it is never skipped.
set -euo pipefail

if [ $# -ne 2 ]; then echo "usage: run.sh BUILD_DIR OUT_DIR" >&2; exit 2; fi
BUILD=$(cd "$1" && pwd)
OUT=$2
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export CHROMIUM

if [ ! -x "$CHROMIUM" ]; then
  echo "run.sh: no chromium at $CHROMIUM: run scripts/install_deps.sh (Debian package chromium)"
  exit 1
fi
if ! command -v node >/dev/null; then
  echo "run.sh: node is not on PATH: run scripts/install_deps.sh (Debian packages nodejs npm)"
  exit 1
fi
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 18 ]; then
  echo "run.sh: node $(node --version) is older than 18, which puppeteer-core needs"
  exit 1
fi
# node_modules is git-ignored: install the pinned packages when missing or older than the lock.
if [ ! -f "$HERE/node_modules/.package-lock.json" ] ||
   [ "$HERE/package-lock.json" -nt "$HERE/node_modules/.package-lock.json" ]; then
  echo "run.sh: npm ci (puppeteer-core, no browser download)"
  PUPPETEER_SKIP_DOWNLOAD=1 npm ci --prefix "$HERE" --no-audit --no-fund --loglevel=error
fi

rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
t0=$SECONDS

# 1-2. dataset, checkpoint, report
"$BUILD/make_dataset" --out "$OUT/data" --train-per-class 20 --test-per-class 10 --pred 20 \
  --size 48 --seed 7 | tail -n 1
if [ -x "$BUILD/explore" ]; then
  "$BUILD/train" --train-dir "$OUT/data/seg_train/seg_train" --test-dir "$OUT/data/seg_test/seg_test" \
    --model simple --width 0.25 --image-size 32 --epochs 2 --batch-size 8 \
    --optimizer adam --lr 0.001 --scheduler none --device cpu --threads 2 --workers 1 --no-plot \
    --out "$OUT/run" | tail -n 2
  "$BUILD/explore" --data "$OUT/data" --checkpoint "$OUT/run/best.safetensors" \
    --out "$OUT/report" --overwrite | tail -n 3
elif [ "${EXPLORE_FAKE:-0}" = 1 ]; then
  echo "run.sh: EXPLORE_FAKE=1 and no $BUILD/explore: a fake report of the same folders"
  "$PY" "$HERE/make_fake_report.py" --data "$OUT/data" --out "$OUT/report"
else
  echo "run.sh: $BUILD/explore is missing: build it (EXPLORE_FAKE=1 tests the page on a fake report)"
  exit 1
fi
echo "run.sh: dataset and report in $((SECONDS - t0)) s"
for f in index.html explore.js explore.css; do  # explore embeds the page when it is built
  cmp -s "$HERE/../../tools/explore_page/$f" "$OUT/report/$f" ||
    echo "run.sh: note: the report's $f differs from tools/explore_page/$f (rebuild explore)"
done

# 3. expectations: files per split folder and per class folder, as find counts them
split_dir() {  # the Kaggle layout's seg_x/seg_x when nested, else seg_x
  if [ -d "$OUT/data/$1/$1" ]; then echo "$OUT/data/$1/$1"; else echo "$OUT/data/$1"; fi
}
{
  echo '{"splits": {'
  first=1
  for pair in train:seg_train test:seg_test unlabelled:seg_pred; do
    name=${pair%%:*}
    dir=$(split_dir "${pair#*:}")
    [ -d "$dir" ] || continue
    [ $first = 1 ] || echo ','
    first=0
    printf '"%s": {"dir": "%s", "files": %d, "classes": {' "$name" "$dir" \
      "$(find "$dir" -type f | wc -l)"
    sep=''
    if [ "$name" != unlabelled ]; then
      for c in "$dir"/*/; do
        printf '%s"%s": %d' "$sep" "$(basename "$c")" "$(find "$c" -type f | wc -l)"
        sep=', '
      done
    fi
    printf '}}'
  done
  echo '}}'
} >"$OUT/expect.json"

status=0
node "$HERE/explore_page.test.mjs" "$OUT/report" "$OUT/expect.json" "$OUT/shots" || status=1

# 4. the page at the Kaggle dataset's scale
"$PY" "$HERE/make_fake_report.py" --images 24000 --out "$OUT/large" --expectations "$OUT/large.json"
node "$HERE/explore_page.test.mjs" "$OUT/large" "$OUT/large.json" "$OUT/shots-24000" \
  --missing-images-ok --max-cells 8 --ready-ms 3000 || status=1

echo "run.sh: $((SECONDS - t0)) s; screenshots in $OUT/shots and $OUT/shots-24000"
exit $status
