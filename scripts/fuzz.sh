#!/usr/bin/env bash
# Builds the image-decode fuzz target with clang (libFuzzer, AddressSanitizer, UBSan) and runs it
# for a bounded time from the seed corpus in tests/fuzz/corpus. Any crash, sanitizer report, leak,
# timeout or out-of-memory fails the script; the input that did it is kept in $BUILD/crashes.
#   scripts/fuzz.sh [SECONDS]     (default 60; the test command runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
cmake -S . -B "$BUILD" -G Ninja -DENGINE_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target fuzz_decode
# The corpus grows as the fuzzer finds new paths; keep the grown one beside the build, never in
# the source tree.
mkdir -p "$BUILD/corpus" "$BUILD/crashes"
cp -n tests/fuzz/corpus/* tests/fuzz/regressions/* "$BUILD/corpus/"
echo "fuzz: running fuzz_decode for ${SECONDS_TO_RUN}s under ASan+UBSan"
if ! "$BUILD/tests/fuzz/fuzz_decode" "$BUILD/corpus" -max_total_time="$SECONDS_TO_RUN" -timeout=10 \
    -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$BUILD/crashes/" >"$BUILD/fuzz.log" 2>&1; then
  tail -n 60 "$BUILD/fuzz.log"
  echo "fuzz: FAILED; the input is in $BUILD/crashes/ (reproduce: $BUILD/tests/fuzz/fuzz_decode FILE)"
  exit 1
fi
grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "$BUILD/fuzz.log" | tail -n 2
echo "fuzz: clean after ${SECONDS_TO_RUN}s"
