#!/usr/bin/env bash
# Runs on a machine with a GPU and no internet: the `cuda` tests and (when they exist) the GPU
# benchmarks from a bundle made by tools/gpu_bundle.sh, writes a report (markdown and JSON) into
# REPORT_DIR, and prints a short table last.
#
#   bash tools/gpu_check.sh [BUNDLE_DIR=gpu_bundle] [REPORT_DIR=gpu_report]
set -uo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${1:-gpu_bundle}
REPORT=${2:-gpu_report}
mkdir -p "$REPORT"
[ -x "$BUNDLE/bin/engine_cuda_tests" ] || { echo "gpu_check: $BUNDLE/bin/engine_cuda_tests missing: run tools/gpu_bundle.sh here first and carry $BUNDLE" >&2; exit 2; }

# cuBLAS (and later cuDNN): the CUDA toolkit's copy, else the one inside PyTorch's Python
# packages. Say which.
libdirs=("$PWD/$BUNDLE/lib")
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -e "$d/libcublas.so.13" ] && libdirs+=("$d") && break
done
if [ ${#libdirs[@]} -eq 1 ]; then
  py=$(command -v python3 || true)
  if [ -n "$py" ]; then
    site=$("$py" -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null)
    for s in $site; do
      for d in "$s"/nvidia/cublas/lib "$s"/nvidia/cu13/lib "$s"/nvidia/cudnn/lib; do
        [ -d "$d" ] && libdirs+=("$d")
      done
    done
  fi
fi
export LD_LIBRARY_PATH=$(IFS=:; echo "${libdirs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "gpu_check: bundle $(cat "$BUNDLE/COMMIT" 2>/dev/null || echo '?'), libraries from: ${libdirs[*]}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$REPORT/gpu.txt"

start=$(date +%s)
"$BUNDLE/bin/engine_cuda_tests" --gtest_output="json:$REPORT/cuda_tests.json" > "$REPORT/cuda_tests.log" 2>&1
rc=$?
secs=$(( $(date +%s) - start ))

python3 - "$REPORT" "$rc" "$secs" <<'PY'
import json, sys
report, rc, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    j = json.load(open(f"{report}/cuda_tests.json"))
except Exception as e:
    j = {"tests": 0, "failures": 0, "testsuites": [], "error": str(e)}
rows = []
for suite in j.get("testsuites", []):
    for t in suite.get("testsuite", []):
        skipped = t.get("result") == "SKIPPED"
        status = "skipped" if skipped else ("FAILED" if t.get("failures") else "passed")
        rows.append((suite["name"] + "." + t["name"], status, t.get("time", "")))
passed = sum(r[1] == "passed" for r in rows)
failed = sum(r[1] == "FAILED" for r in rows)
skipped = sum(r[1] == "skipped" for r in rows)
summary = {"exit_code": rc, "seconds": secs, "passed": passed, "failed": failed,
           "skipped": skipped, "tests": rows}
json.dump(summary, open(f"{report}/report.json", "w"), indent=1)
with open(f"{report}/report.md", "w") as f:
    f.write(f"# gpu_check\n\n{passed} passed, {failed} failed, {skipped} skipped in {secs} s\n\n")
    f.write("| test | result | time |\n|---|---|---|\n")
    for r in rows:
        f.write(f"| {r[0]} | {r[1]} | {r[2]} |\n")
print()
print("| test | result |")
print("|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]} |")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $rc
