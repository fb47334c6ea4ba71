#!/usr/bin/env bash
# Builds the CUDA binaries here (nvcc, sm_90 for the H200) and gathers them with the shared
# libraries a bare GPU machine lacks into gpu_bundle/ (git-ignored), to be carried to the device
# machine and run there by tools/gpu_check.sh. The GPU machine has CUDA, cuBLAS and PyTorch but
# none of our Debian packages (OpenBLAS, GoogleTest, ...) and no network, so we build here and
# ship binaries rather than ship headers and build there.
#
#   bash tools/gpu_bundle.sh            # then: device run with carry ["gpu_bundle"] and
#                                       #       command "bash tools/gpu_check.sh gpu_bundle $OUT"
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build-gpu}
OUT=gpu_bundle
# -DENGINE_NATIVE_ARCH=OFF: the binaries must run on the GPU machine's CPU, not only this one's.
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DENGINE_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DENGINE_NATIVE_ARCH=OFF >/dev/null
# Only what gpu_check.sh runs: the bundle must stay under the device tool's 64 MiB (OpenBLAS alone
# is 35 MB).
cmake --build "$BUILD" -j "$(nproc)" --target engine_cuda_tests bench_cuda_ops bench_train_step \
  bench_transfer
rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/lib"
cp "$BUILD/tests/engine_cuda_tests" "$BUILD/bench/bench_cuda_ops" "$BUILD/bench/bench_train_step" \
  "$BUILD/bench/bench_transfer" "$OUT/bin/"
# Every shared library the binaries load, except the C library, the loader and CUDA's own
# cuBLAS and cuDNN (hundreds of MB; the GPU machine has both, at least in PyTorch's packages, and
# gpu_check.sh finds them). libcudart is small and pinned to our nvcc.
for b in "$OUT"/bin/*; do ldd "$b"; done | awk '/=>/ {print $3}' | sort -u |
  grep -vE '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*|libcublas[^/]*|libcublasLt[^/]*|libcudnn[^/]*|libcuda)\.so' |
  while read -r lib; do cp -L "$lib" "$OUT/lib/"; done
git rev-parse HEAD > "$OUT/COMMIT" 2>/dev/null || true
du -sh "$OUT"
ls "$OUT/bin" "$OUT/lib"
