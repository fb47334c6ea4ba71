#!/usr/bin/env bash
# The GPU check, for a machine with a GPU and no internet (the lent H100/H200): runs, from a bundle
# made here by tools/gpu_bundle.sh, what proves the CUDA backends and measures them against their
# targets, and writes a report into REPORT_DIR (report.md, report.json, raw.tar.gz), printing a
# short table last.
#
#   bash tools/gpu_check.sh [--quick] [BUNDLE=gpu_bundle.tar.xz] [REPORT_DIR=gpu_report]
#
# BUNDLE is gpu_bundle.sh's folder or its archive (unpacked into a temporary folder). With the
# device tool: carry ["gpu_bundle.tar.xz"], command "bash tools/gpu_check.sh gpu_bundle.tar.xz $OUT".
#
# What cannot happen here:
# - passing by skipping: ENGINE_REQUIRE_GPU=1 turns every "no usable CUDA device" skip into a
#   failure, and gpu_report.py fails the verdict on any unexpected skip, listing each by name;
# - a library path leaking into other programs: the bundle's executables find their libraries
#   through their own RUNPATH; cuBLAS and cuDNN, loaded at run time, are pointed to by
#   ENGINE_CUDA_LIBRARY_PATH, which only the engine reads. Python (PyTorch) runs untouched.
# - losing finished results to a timeout: each stage appends JSON lines as it goes (tests.jsonl one
#   line per test as it ends, bench.jsonl one per benchmark case, steps.jsonl, transfer.jsonl,
#   cudnn_algos.jsonl, stages.jsonl), and a stage's limit is cut to what is left of the deadline.
# Order (what decides the issue's targets first): cuda_info (OS, glibc, driver, runtime, GPU,
# cuBLAS, cuDNN), the cuda tests one process per suite (a sticky CUDA error poisons only its own
# suite), each failing suite once more with CUDA_LAUNCH_BLOCKING=1 (an asynchronous fault then
# shows at the call that caused it) and its failing tests under compute-sanitizer memcheck, then
# the custom-CNN and depthwise conv benchmarks, the memory-bound ops, linear, the training steps,
# and last, with time left, the other conv shapes and the transfer models.
# --quick (a second try in a short lease): fewer iterations and steps, no transfer-model stage,
# batch-64 conv and linear cases only.
# Files: the device tool brings back at most 8 files from its $OUT: report.md, report.json and
# raw.tar.gz (every log and JSON-lines file, probe.txt, cuda_info.json).
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
QUICK=0
if [ "${1:-}" = "--quick" ]; then QUICK=1; shift; fi
BUNDLE=${1:-gpu_bundle.tar.xz}
REPORT=${2:-gpu_report}
if [ -f "$BUNDLE" ]; then  # the archive: unpack (tar with xz, else Python's tarfile)
  unpacked=$(mktemp -d)
  tar -xJf "$BUNDLE" -C "$unpacked" 2>/dev/null ||
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$BUNDLE" "$unpacked" ||
    { echo "gpu_check: cannot unpack $BUNDLE" >&2; exit 2; }
  BUNDLE=$unpacked/gpu_bundle
fi
TOTAL_LIMIT=${TOTAL_LIMIT:-400}  # the stages; the machine's start-up and the transfers come on top
SUITE_LIMIT=${SUITE_LIMIT:-90}
BENCH_LIMIT=${BENCH_LIMIT:-90}
STEP_LIMIT=${STEP_LIMIT:-30}
ITERS=10 STEPS=20
if (( QUICK )); then ITERS=3 STEPS=8 SUITE_LIMIT=60 BENCH_LIMIT=60; fi
RAW="$REPORT/raw"
mkdir -p "$RAW"
BIN="$BUNDLE/bin"
[ -x "$BIN/engine_cuda_tests" ] || {
  echo "gpu_check: $BIN/engine_cuda_tests missing: run tools/gpu_bundle.sh here first and carry gpu_bundle.tar.xz" >&2
  exit 2
}
export ENGINE_REQUIRE_GPU=1

# What this machine has of the engine's build dependencies (to decide whether to build there one
# day). Cheap: names and versions only.
{
  echo "date: $(date -u +%FT%TZ)  host: $(uname -srm)  quick: $QUICK"
  for c in nvcc cmake ninja g++ c++ clang++ python3 cuobjdump compute-sanitizer ncu; do
    p=$(command -v "$c" 2>/dev/null) && echo "$c: $p ($("$c" --version 2>&1 | grep -m1 -iE 'release|version|[0-9]+\.[0-9]+' | head -c 120))" ||
      echo "$c: not found"
  done
  for h in cblas.h gtest/gtest.h benchmark/benchmark.h CLI/CLI.hpp nlohmann/json.hpp stb/stb_image.h stb_image.h; do
    f=$(find /usr/include /usr/local/include -path "*/$h" 2>/dev/null | head -n 1)
    echo "header $h: ${f:-not found}"
  done
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' 2>&1 | tail -n 1
} > "$RAW/probe.txt" 2>&1

# cuBLAS and cuDNN: the CUDA toolkit's copies, else those inside PyTorch's Python packages
# (nvidia-cublas, nvidia-cudnn-cu13). Their folders go to ENGINE_CUDA_LIBRARY_PATH, read by the
# engine alone; not found, the engine's own search runs and cuda_info says what it found.
find_lib() {  # find_lib libcudnn.so.9 -> the first folder that has it
  local name=$1 d s
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
    [ -e "$d/$name" ] && { echo "$d"; return; }
  done
  for s in $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
    [ -d "$s/nvidia" ] || continue
    d=$(find "$s/nvidia" -name "$name" -printf '%h\n' 2>/dev/null | head -n 1)
    [ -n "$d" ] && { echo "$d"; return; }
  done
}
libdirs=()
for lib in libcublas.so.13 libcudnn.so.9; do
  d=$(find_lib "$lib")
  if [ -n "$d" ]; then
    echo "gpu_check: $lib found in $d" >> "$RAW/probe.txt"
    [[ " ${libdirs[*]} " == *" $d "* ]] || libdirs+=("$d")
  else
    echo "gpu_check: $lib not found by gpu_check.sh" >> "$RAW/probe.txt"
  fi
done
if (( ${#libdirs[@]} )); then export ENGINE_CUDA_LIBRARY_PATH=$(IFS=:; echo "${libdirs[*]}"); fi
echo "gpu_check: bundle $(tr '\n' ' ' < "$BUNDLE/COMMIT" 2>/dev/null || echo '?')" | tee -a "$RAW/probe.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader > "$RAW/gpu.txt" 2>&1
# Once (it loads cuBLAS and cuDNN): the JSON for the report, its fields echoed here.
"$BIN/cuda_info" --json > "$RAW/cuda_info.json" 2> "$RAW/cuda_info.log"
python3 -c 'import json, sys
for k, v in json.load(open(sys.argv[1])).items(): print(f"gpu_check: {k}: {v}")' "$RAW/cuda_info.json" 2>&1
for b in "$BIN"/*; do
  ldd "$b" | grep "not found" | sed "s|^|gpu_check: $(basename "$b") cannot load |"
done | tee -a "$RAW/probe.txt"

left() { echo $(( TOTAL_LIMIT - ($(date +%s) - T0) )); }
stage() {  # stage NAME LIMIT CMD...: runs CMD with LIMIT cut to the deadline, logs to raw/NAME.log
  local name=$1 limit=$2 t0 rc
  shift 2
  local remaining=$(( $(left) - 15 ))  # 15 s kept for the report
  (( remaining < limit )) && limit=$remaining
  if (( limit < 5 )); then
    echo "{\"stage\": \"$name\", \"rc\": null, \"seconds\": 0, \"limit\": 0, \"note\": \"not run: out of time\"}" >> "$RAW/stages.jsonl"
    echo "gpu_check: $name not run: out of time"
    return 124
  fi
  t0=$(date +%s)
  timeout -k 5 "$limit" "$@" > "$RAW/$name.log" 2>&1
  rc=$?
  echo "{\"stage\": \"$name\", \"rc\": $rc, \"seconds\": $(( $(date +%s) - t0 )), \"limit\": $limit}" >> "$RAW/stages.jsonl"
  echo "gpu_check: $name rc=$rc in $(( $(date +%s) - t0 )) s (limit $limit s)"
  return $rc
}

# 1. The cuda tests, one process per suite, each test's result a JSON line as it ends.
suites=$("$BIN/engine_cuda_tests" --gtest_list_tests 2>/dev/null | grep -E '^[A-Za-z_0-9/]+\.$' | tr -d .)
[ -n "$suites" ] || echo '{"stage": "test_list", "rc": 1, "seconds": 0, "limit": 0, "note": "engine_cuda_tests listed no suites"}' >> "$RAW/stages.jsonl"
failed_suites=()
for s in $suites; do
  f=${s//\//_}  # FourCnns/CudaModelStep -> FourCnns_CudaModelStep: one file name
  ENGINE_TEST_JSONL="$RAW/tests.jsonl" stage "test_$f" "$SUITE_LIMIT" "$BIN/engine_cuda_tests" \
    --gtest_filter="$s.*" || failed_suites+=("$s")
done

# 2. Each failing suite once more with synchronous launches, then its failing tests under memcheck.
for s in "${failed_suites[@]}"; do
  f=${s//\//_}
  ENGINE_TEST_JSONL="$RAW/tests_blocking.jsonl" CUDA_LAUNCH_BLOCKING=1 stage "rerun_$f" \
    "$SUITE_LIMIT" "$BIN/engine_cuda_tests" --gtest_filter="$s.*"
  failing=$(python3 - "$RAW/tests.jsonl" "$s" <<'PY'
import json, sys
names = []
for line in open(sys.argv[1]):
    try:
        t = json.loads(line)
    except ValueError:
        continue
    if t["status"] == "FAILED" and t["test"].startswith(sys.argv[2] + "."):
        names.append(t["test"])
print(":".join(names))
PY
)
  [ -n "$failing" ] || failing="$s.*"  # the process died before reporting: the whole suite
  if command -v compute-sanitizer > /dev/null; then
    stage "memcheck_$f" "$SUITE_LIMIT" compute-sanitizer --tool memcheck --error-exitcode 3 \
      "$BIN/engine_cuda_tests" --gtest_filter="$failing" --gtest_brief=1
  fi
done

# 3. Benchmarks, native against cudnn, one JSON line per case as it ends; cuDNN's algorithm for
# each conv shape logged (ENGINE_CUDNN_LOG_ALGOS) and collected.
export ENGINE_CUDNN_LOG_ALGOS=1
bench() {  # bench NAME FILTER
  stage "bench_$1" "$BENCH_LIMIT" "$BIN/bench_cuda_ops" --iters "$ITERS" --json-lines "$RAW/bench.jsonl" \
    --benchmark_filter="$2"
  grep -h '^{"cudnn_algo"' "$RAW/bench_$1.log" >> "$RAW/cudnn_algos.jsonl" 2>/dev/null
}
# Case names carry the batch ("conv/custom/3x32@64_b8/k3_s1/fwd/native"); --quick keeps batch 64.
b='_b[0-9]+'
if (( QUICK )); then b='_b64'; fi
bench conv_custom "^conv/custom/[^/]*$b/"
bench conv_depthwise "^conv/mobilenetv2/[^/]*$b/k[0-9]+_s[0-9]+_dw/"
bench memory "^memory/"
bench linear "^linear/[^/]*$b/"

# 4. The training step of each custom CNN: ours on both backends, PyTorch with TF32 off and on.
for model in simple bn_dropout sigmoid tanh; do
  for backend in native cudnn; do
    stage "step_${model}_${backend}" "$STEP_LIMIT" "$BIN/bench_train_step" --model "$model" \
      --batch 64 --steps "$STEPS" --device cuda --backend "$backend" &&
      grep -h '^{' "$RAW/step_${model}_${backend}.log" | grep -v cudnn_algo >> "$RAW/steps.jsonl"
  done
  for tf32 in off on; do
    stage "step_${model}_torch_tf32${tf32}" "$STEP_LIMIT" python3 bench/torch_train_step.py \
      --model "$model" --batch 64 --steps "$STEPS" --device cuda --tf32 "$tf32" &&
      grep -h '^{' "$RAW/step_${model}_torch_tf32${tf32}.log" >> "$RAW/steps.jsonl"
  done
done

# 5. With time left: the other conv shapes (ResNet-50, MobileNetV2; the depthwise ones again, as
# Google Benchmark's filter has no negation inside a pattern; the report keeps their first run)
# and the transfer models' inference beside PyTorch.
bench conv_transfer "^conv/(resnet50|mobilenetv2)/[^/]*$b/"
if (( ! QUICK )); then
  for model in resnet50 mobilenet_v2; do
    for backend in native cudnn; do
      stage "transfer_${model}_${backend}" "$STEP_LIMIT" "$BIN/bench_transfer" --device cuda \
        --backend "$backend" --json-lines --benchmark_filter="^model/$model/batch:32/fold:1/" &&
        grep -h '^{' "$RAW/transfer_${model}_${backend}.log" | grep -v cudnn_algo >> "$RAW/transfer.jsonl"
    done
    stage "transfer_${model}_torch" "$STEP_LIMIT" python3 bench/torch_transfer.py --model "$model" \
      --batch 32 --device cuda --json-lines &&
      grep -h '^{' "$RAW/transfer_${model}_torch.log" >> "$RAW/transfer.jsonl"
  done
fi

echo "gpu_check: stages done in $(( $(date +%s) - T0 )) s"
# Reads raw/, writes report.md and report.json, prints the table; its exit status is the verdict's
# (a failed or unexpectedly skipped test, a suite that did not finish, no test at all).
python3 tools/gpu_report.py "$REPORT"
verdict=$?
tar -czf "$REPORT/raw.tar.gz" -C "$REPORT" raw && rm -rf "$RAW"
exit $verdict
