#!/usr/bin/env bash
# Starts every executable of a GPU bundle inside a bare Debian 12 root (debootstrap's minbase: no
# CUDA, cuBLAS, cuDNN, OpenBLAS, Python or compiler), so what loads there is the bundle alone. Run
# as root; makes the root on first use. The record of a run is in bench/RESULTS.md.
#
#   bash tools/bare_root_check.sh [ROOT=/tmp/bare-bookworm] [BUNDLE=gpu_bundle]
#
# Each executable must start and answer its listing or --help; cuda_info must name what is
# missing (no driver, no cuBLAS, no cuDNN) rather than fail to load; the CUDA tests that need no
# GPU must pass. Then the same again with the root's own libstdc++ moved away, to show that none
# of our executables uses it. (libgcc_s stays: like libc it is part of every Linux system, and
# libgfortran, which OpenBLAS loads, needs it; our executables link libgcc statically.)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=${1:-/tmp/bare-bookworm}
BUNDLE=${2:-gpu_bundle}
[ -x "$BUNDLE/bin/engine_cuda_tests" ] || { echo "bare_root_check: no bundle at $BUNDLE (run tools/gpu_bundle.sh)" >&2; exit 2; }
if [ ! -x "$ROOT/bin/sh" ]; then
  command -v debootstrap > /dev/null || apt-get install -y -qq debootstrap > /dev/null
  debootstrap --variant=minbase bookworm "$ROOT" http://deb.debian.org/debian > /dev/null || exit 2
fi
# /proc, as on any real machine: the loader reads /proc/self/exe to expand $ORIGIN in the
# executable's RUNPATH, so without it the bundle's libraries would not be found.
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc" || exit 2
trap 'umount "$ROOT/proc" 2> /dev/null' EXIT
rm -rf "$ROOT/opt/gpu_bundle"
cp -a "$BUNDLE" "$ROOT/opt/gpu_bundle"
fail=0
check() {  # check NAME EXPECTED_REGEX CMD...: runs CMD in the root, wants its output to match
  local name=$1 want=$2 out rc
  shift 2
  out=$(chroot "$ROOT" "$@" 2>&1)
  rc=$?
  if grep -qE "$want" <<< "$out"; then
    echo "ok   $name (exit $rc): $(grep -E -m1 "$want" <<< "$out" | cut -c1-150)"
  else
    echo "FAIL $name (exit $rc): $(tail -n 3 <<< "$out" | tr '\n' ' ' | cut -c1-300)"
    fail=1
  fi
}
run_all() {
  local B=/opt/gpu_bundle/bin
  check "engine_cuda_tests --gtest_list_tests" "^CudaRuntime\." $B/engine_cuda_tests --gtest_list_tests
  check "engine_cuda_tests, tests that need no GPU" "PASSED" $B/engine_cuda_tests \
    --gtest_filter='CudaRuntime.*:CudnnCheck.*:CudnnLibraries.*'
  check "bench_cuda_ops --benchmark_list_tests" "^conv/custom/" $B/bench_cuda_ops --benchmark_list_tests
  check "bench_transfer --benchmark_list_tests" "^model/" $B/bench_transfer --benchmark_list_tests
  check "bench_train_step --help" "^usage: bench_train_step" $B/bench_train_step --help
  check "cuda_info" "cuDNN: not loaded: no usable libcudnn" $B/cuda_info
  check "cuda_info names the driver" "no NVIDIA driver found" $B/cuda_info
}
echo "== $ROOT: $(chroot "$ROOT" sh -c '. /etc/os-release; echo $PRETTY_NAME'), glibc $(chroot "$ROOT" ldd --version | head -n 1 | grep -oE '[0-9.]+$')"
echo "== what the root lacks: $(for l in libcuda.so.1 libcublas.so.13 libcudnn.so.9 libopenblas.so.0 libgomp.so.1 libgfortran.so.5; do chroot "$ROOT" sh -c "ldconfig -p | grep -q $l" || printf '%s ' "$l"; done)$(chroot "$ROOT" sh -c 'command -v gcc python3 nvcc' > /dev/null || echo '(and gcc, python3, nvcc)')"
run_all
echo "== again without the root's libstdc++"
hidden=$ROOT/opt/hidden
mkdir -p "$hidden"
for l in "$ROOT"/usr/lib/x86_64-linux-gnu/libstdc++.so.6*; do
  mv "$l" "$hidden/"
done
run_all
mv "$hidden"/* "$ROOT/usr/lib/x86_64-linux-gnu/"
rmdir "$hidden"
echo "== $( ((fail)) && echo FAILED || echo 'all passed')"
exit $fail
