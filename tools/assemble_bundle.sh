#!/usr/bin/env bash
# Gathers executables into a self-contained bundle and checks that it is one:
#   OUT/bin  the executables (built by engine_portable() in CMakeLists.txt: libstdc++ and libgcc
#            linked in, RUNPATH $ORIGIN/../lib)
#   OUT/lib  every shared library they load except the C library's own (libc, libm, libdl,
#            libpthread, librt, the loader), libgcc_s (which every Linux system has, and which
#            libgfortran, not our executables, loads) and the NVIDIA driver's libcuda: OpenBLAS,
#            libgomp, libgfortran, libquadmath, libcudart; each given RUNPATH $ORIGIN, so they find
#            each other (a RUNPATH is not inherited: libopenblas finds libgfortran through its own).
# cuBLAS and cuDNN are not among them: the engine loads them at run time (kernels/cudnn/dynload.h).
# Checks, each failing the script: no executable loads libstdc++ or libgcc_s; every library the
# executables load resolves inside OUT/lib (ldd, with LD_LIBRARY_PATH unset) or is the C
# library's; nothing needs a glibc newer than GLIBC_MAX (2.35, Ubuntu 22.04; tools/check_glibc.sh).
#
#   bash tools/assemble_bundle.sh OUT EXECUTABLE...
# tools/gpu_bundle.sh calls it; the test GpuBundle.Portable calls it on the test build's own
# portable executables.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: assemble_bundle.sh OUT EXECUTABLE..." >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
OUT=$1
shift
GLIBC_MAX=${GLIBC_MAX:-2.35}
command -v patchelf > /dev/null || { echo "assemble_bundle: patchelf is needed (apt-get install patchelf)" >&2; exit 2; }
system_lib='/(libc|libm|libdl|libpthread|librt|libresolv|ld-linux[^/]*|libgcc_s|libcuda)\.so'
rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/lib"
fail=0
for exe in "$@"; do
  [ -x "$exe" ] || { echo "assemble_bundle: $exe: not an executable" >&2; exit 2; }
  cp "$exe" "$OUT/bin/"
  name=$(basename "$exe")
  needed=$(readelf -d "$exe" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  if grep -qE '^(libstdc\+\+|libgcc_s)\.so' <<< "$needed"; then
    echo "assemble_bundle: $name loads $(grep -E '^(libstdc\+\+|libgcc_s)' <<< "$needed" | tr '\n' ' ')dynamically: build it through engine_portable() with static C++ dependencies" >&2
    fail=1
  fi
  readelf -d "$exe" | grep -q 'RUNPATH.*\$ORIGIN/../lib' ||
    { echo "assemble_bundle: $name has no RUNPATH \$ORIGIN/../lib" >&2; fail=1; }
done
# Every library the executables load (transitively), less the C library's and the driver's.
for exe in "$OUT"/bin/*; do ldd "$exe"; done | awk '/=>/ && $3 ~ /^\// {print $3}' | sort -u |
  grep -vE "$system_lib" | while read -r lib; do cp -L "$lib" "$OUT/lib/"; done
for lib in "$OUT"/lib/*; do
  [ -e "$lib" ] || continue
  patchelf --set-rpath '$ORIGIN' "$lib"
done
# Resolution from the bundle alone: every non-system library ldd names must be one of OUT/lib.
out_abs=$(cd "$OUT" && pwd)
for f in "$OUT"/bin/* "$OUT"/lib/*; do
  [ -e "$f" ] || continue
  while read -r soname path; do
    if [ "$path" = "not" ]; then
      echo "assemble_bundle: $(basename "$f"): $soname not found" >&2
      fail=1
    elif ! grep -qE "$system_lib" <<< "$path" && [[ "$(realpath "$path")" != "$out_abs/lib/"* ]]; then
      echo "assemble_bundle: $(basename "$f"): $soname resolves outside the bundle ($path)" >&2
      fail=1
    fi
  done < <(env -u LD_LIBRARY_PATH ldd "$f" 2>/dev/null | awk '/=>/ {print $1, $3}')
done
bash "$here/check_glibc.sh" "$GLIBC_MAX" "$OUT"/bin/* "$OUT"/lib/* || fail=1
if (( fail )); then
  echo "assemble_bundle: $OUT is not portable (above)" >&2
  exit 1
fi
echo "assemble_bundle: $OUT: $(ls "$OUT/bin" | wc -l) executables, $(ls "$OUT/lib" | wc -l) libraries ($(ls "$OUT/lib" | tr '\n' ' ')), $(du -sh "$OUT" | cut -f1); all load from the bundle and need glibc <= $GLIBC_MAX"
