#!/usr/bin/env bash
# Builds the CUDA binaries here (nvcc, sm_90 for the H100/H200) and gathers them, with the shared
# libraries a bare GPU machine may lack, into gpu_bundle/ and its compressed copy gpu_bundle.tar.xz
# (both git-ignored; about 75 MB and 15 MB: the device tool carries at most 64 MiB, so the archive
# is what travels), to be run there by tools/gpu_check.sh. The GPU machine has CUDA and PyTorch but
# none of our Debian packages (OpenBLAS, GoogleTest, ...) and no network, so we build here and
# ship binaries rather than ship headers and build there.
#
#   bash tools/gpu_bundle.sh    # then: device run with carry ["gpu_bundle.tar.xz"] and command
#                               #   "bash tools/gpu_check.sh gpu_bundle.tar.xz $OUT"
#
# Portability (checked by tools/assemble_bundle.sh, which fails the script otherwise): the
# executables link libstdc++ and libgcc statically and find the bundle's libraries through their
# own RUNPATH ($ORIGIN/../lib), so nothing needs a glibc newer than 2.35 (Ubuntu 22.04) and no
# LD_LIBRARY_PATH is set for anyone (PyTorch's Python included). cuBLAS and cuDNN are not shipped:
# the engine loads them at run time, and gpu_check.sh tells it where they are.
# Google Benchmark: Debian has only a shared libbenchmark, which would bring the system's
# libstdc++ back in, so the bundle's benchmarks link a static one built here from Debian's source
# package of the same version (checksum pinned; cached in the build folder).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build-gpu}
OUT=gpu_bundle
BM_VERSION=1.7.1
BM_SHA256=6430e4092653380d9dc4ccb45a1e2dc9259d581f4866dc0759713126056bc1d7
BM_URL=http://deb.debian.org/debian/pool/main/b/benchmark/benchmark_${BM_VERSION}.orig.tar.gz
BM_PREFIX=$PWD/$BUILD/_deps/benchmark-$BM_VERSION
if [ ! -f "$BM_PREFIX/lib/cmake/benchmark/benchmarkConfig.cmake" ]; then
  src=$PWD/$BUILD/_deps/src
  mkdir -p "$src"
  tgz=$src/benchmark_${BM_VERSION}.orig.tar.gz
  [ -f "$tgz" ] || curl -fsSL -o "$tgz" "$BM_URL" ||
    { echo "gpu_bundle: cannot download $BM_URL" >&2; exit 1; }
  echo "$BM_SHA256  $tgz" | sha256sum -c --quiet ||
    { echo "gpu_bundle: $tgz: checksum mismatch" >&2; rm -f "$tgz"; exit 1; }
  tar -xzf "$tgz" -C "$src"
  cmake -S "$src/benchmark-$BM_VERSION" -B "$src/benchmark-build" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DBENCHMARK_ENABLE_TESTING=OFF \
    -DBENCHMARK_ENABLE_GTEST_TESTS=OFF -DBENCHMARK_ENABLE_WERROR=OFF \
    -DBENCHMARK_INSTALL_DOCS=OFF -DCMAKE_INSTALL_PREFIX="$BM_PREFIX" > /dev/null
  cmake --build "$src/benchmark-build" -j "$(nproc)" > /dev/null
  cmake --install "$src/benchmark-build" > /dev/null
fi
# -DENGINE_NATIVE_ARCH=OFF: the binaries must run on the GPU machine's CPU, not only this one's.
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DENGINE_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DENGINE_NATIVE_ARCH=OFF -DENGINE_CUDA_EMU=OFF \
  -Dbenchmark_DIR="$BM_PREFIX/lib/cmake/benchmark" > /dev/null
# Only what gpu_check.sh runs: the bundle must stay under the device tool's 64 MiB (OpenBLAS alone
# is 35 MB).
TARGETS=(cuda_info engine_cuda_tests bench_cuda_ops bench_train_step bench_transfer)
cmake --build "$BUILD" -j "$(nproc)" --target "${TARGETS[@]}"
paths=()
for t in "${TARGETS[@]}"; do
  f=$(find "$BUILD" -maxdepth 2 -type f -name "$t" | head -n 1)
  [ -n "$f" ] || { echo "gpu_bundle: $t was not built" >&2; exit 1; }
  paths+=("$f")
done
bash tools/assemble_bundle.sh "$OUT" "${paths[@]}"
git rev-parse HEAD > "$OUT/COMMIT" 2>/dev/null || true
if ! git diff --quiet HEAD 2>/dev/null; then echo "(with uncommitted changes)" >> "$OUT/COMMIT"; fi
tar -cJf "$OUT.tar.xz" "$OUT"
echo "gpu_bundle: $OUT ($(du -sh "$OUT" | cut -f1)) and $OUT.tar.xz ($(du -sh "$OUT.tar.xz" | cut -f1)), to carry"
