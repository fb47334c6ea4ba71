#!/usr/bin/env bash
# Builds the fuzz targets with clang (libFuzzer, AddressSanitizer, UBSan) and runs each for a
# bounded time from its seed corpus and its regression inputs:
#   decode      image files                      tests/fuzz/corpus, tests/fuzz/regressions
#   checkpoint  weights files: safetensors parser tests/fuzz/corpus_checkpoint,
#               and the tools' checkpoint loader  tests/fuzz/regressions_checkpoint
# The targets share SECONDS of wall time: with two or more cores they run side by side for SECONDS
# each, on one core one after the other for half each. Any crash, sanitizer report, leak, timeout
# or out-of-memory fails the script naming the target; the input that did it is kept in
# $BUILD/crashes/<target>/.
#   scripts/fuzz.sh [SECONDS]     (default 60; the test command runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
LAUNCHER=()
if command -v ccache >/dev/null; then
  LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$BUILD" -G Ninja -DENGINE_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ "${LAUNCHER[@]}" >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target fuzz_decode fuzz_checkpoint
# The checkpoint target writes every input to a file; on tmpfs that costs microseconds, on a
# disk it costs most of the run.
SCRATCH_PARENT=$BUILD
if [ -d /dev/shm ] && [ -w /dev/shm ]; then SCRATCH_PARENT=/dev/shm; fi
SCRATCH=$(mktemp -d "$SCRATCH_PARENT/engine_fuzz.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT

# fuzz TARGET SECONDS SEED_DIR... : runs fuzz_TARGET; prints its summary, or its log's tail and
# where the input is on failure.
fuzz() {
  local target=$1 secs=$2
  shift 2
  # The corpus grows as the fuzzer finds new paths; keep the grown one beside the build, never
  # in the source tree.
  local corpus="$BUILD/corpus/$target" crashes="$BUILD/crashes/$target"
  local log="$BUILD/fuzz_$target.log" bin="$BUILD/tests/fuzz/fuzz_$target"
  mkdir -p "$corpus" "$crashes"
  for dir in "$@"; do cp -n "$dir"/* "$corpus/"; done
  echo "fuzz: running fuzz_$target for ${secs}s under ASan+UBSan"
  if ! TMPDIR="$SCRATCH" "$bin" "$corpus" -max_total_time="$secs" -timeout=10 \
      -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="$crashes/" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: fuzz_$target FAILED; the input is in $crashes/ (reproduce: $bin FILE)"
    return 1
  fi
  grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|Done [0-9]+ runs" "$log" |
    tail -n 3 | sed "s/^/fuzz_$target: /"
}

decode_seeds=(tests/fuzz/corpus tests/fuzz/regressions)
checkpoint_seeds=(tests/fuzz/corpus_checkpoint tests/fuzz/regressions_checkpoint)
status=0
if [ "$(nproc)" -ge 2 ]; then
  fuzz decode "$SECONDS_TO_RUN" "${decode_seeds[@]}" &
  decode_pid=$!
  fuzz checkpoint "$SECONDS_TO_RUN" "${checkpoint_seeds[@]}" &
  checkpoint_pid=$!
  wait "$decode_pid" || status=1
  wait "$checkpoint_pid" || status=1
else
  half=$(((SECONDS_TO_RUN + 1) / 2))
  fuzz decode "$half" "${decode_seeds[@]}" || status=1
  fuzz checkpoint "$half" "${checkpoint_seeds[@]}" || status=1
fi
if [ "$status" -ne 0 ]; then
  echo "fuzz: FAILED"
  exit 1
fi
echo "fuzz: both targets clean after ${SECONDS_TO_RUN}s"
