#!/usr/bin/env bash
# Installs the Debian packages the engine builds and tests with. Idempotent: packages already
# present are not reinstalled, and apt is not touched at all when nothing is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libopenblas-openmp-dev libgtest-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev libstb-dev
  libssl-dev
  python3-torch python3-torchvision python3-numpy python3-matplotlib python3-pil
  clang libclang-rt-14-dev
  chromium
  patchelf
)
# patchelf: the GPU bundle's libraries find each other through RUNPATH $ORIGIN
# (tools/assemble_bundle.sh, checked by the test GpuBundle.Portable).
# The browser test (tests/browser) drives chromium from node; Debian's nodejs only when no node
# is on PATH (a newer one installed another way is kept).
if ! command -v node >/dev/null; then PACKAGES+=(nodejs npm); fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install_deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install_deps: done"
