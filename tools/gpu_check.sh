#!/usr/bin/env bash
# The GPU check, for a machine with a GPU and no internet (the lent H200): runs, from a bundle made
# here by tools/gpu_bundle.sh, the `cuda` tests, the kernel benchmark (native against cuDNN), and
# the end-to-end training step of each custom CNN on native, cudnn and PyTorch (TF32 off, then on);
# writes a report (report.md, report.json and the raw logs) into REPORT_DIR and prints a short
# table last. Each stage has its own time limit, so one hung kernel cannot cost the rest; the
# whole takes about 5 minutes on an H200.
#
#   bash tools/gpu_check.sh [BUNDLE_DIR=gpu_bundle] [REPORT_DIR=gpu_report]
#
# With the device tool: carry ["gpu_bundle"], command "bash tools/gpu_check.sh gpu_bundle $OUT".
set -uo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${1:-gpu_bundle}
REPORT=${2:-gpu_report}
TEST_LIMIT=${TEST_LIMIT:-240}
OPS_LIMIT=${OPS_LIMIT:-150}
STEP_LIMIT=${STEP_LIMIT:-60}
mkdir -p "$REPORT"
[ -x "$BUNDLE/bin/engine_cuda_tests" ] || {
  echo "gpu_check: $BUNDLE/bin/engine_cuda_tests missing: run tools/gpu_bundle.sh here first and carry $BUNDLE" >&2
  exit 2
}

# cuBLAS and cuDNN: the CUDA toolkit's copies, else those inside PyTorch's Python packages
# (nvidia-cublas, nvidia-cudnn-cu13). Say which.
libdirs=("$PWD/$BUNDLE/lib")
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
for lib in libcublas.so.13 libcublasLt.so.13 libcudnn.so.9; do
  d=$(find_lib "$lib")
  if [ -n "$d" ]; then
    echo "gpu_check: $lib from $d"
    [[ " ${libdirs[*]} " == *" $d "* ]] || libdirs+=("$d")
  else
    echo "gpu_check: $lib not found (tests needing it will fail to load)"
  fi
done
export LD_LIBRARY_PATH=$(IFS=:; echo "${libdirs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "gpu_check: bundle $(cat "$BUNDLE/COMMIT" 2>/dev/null || echo '?')"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader 2>&1 | tee "$REPORT/gpu.txt"
ldd "$BUNDLE/bin/engine_cuda_tests" | grep -E "not found" && echo "gpu_check: missing libraries above"

stage() {  # stage NAME LIMIT CMD...: runs CMD with a time limit, logs to $REPORT/NAME.log
  local name=$1 limit=$2
  shift 2
  local t0=$(date +%s)
  timeout -k 5 "$limit" "$@" > "$REPORT/$name.log" 2>&1
  local rc=$?
  echo "gpu_check: $name rc=$rc in $(( $(date +%s) - t0 )) s" | tee -a "$REPORT/stages.txt"
  return $rc
}

stage cuda_tests "$TEST_LIMIT" "$BUNDLE/bin/engine_cuda_tests" --gtest_output="json:$REPORT/cuda_tests.json"
tests_rc=$?

# The kernel benchmark in three parts, so that a part that runs out of time costs only its own
# results (Google Benchmark writes its JSON at the end).
if [ -x "$BUNDLE/bin/bench_cuda_ops" ]; then
  for part in "custom:^conv/custom/" "transfer:^conv/(resnet50|mobilenetv2)/" "other:^(linear|memory)/"; do
    name=${part%%:*} filter=${part#*:}
    stage "bench_ops_$name" "$OPS_LIMIT" "$BUNDLE/bin/bench_cuda_ops" --iters 10 \
      --benchmark_filter="$filter" --benchmark_out="$REPORT/bench_ops_$name.json" \
      --benchmark_out_format=json
  done
fi

: > "$REPORT/steps.jsonl"
for model in simple bn_dropout sigmoid tanh; do
  for backend in native cudnn; do
    stage "step_${model}_${backend}" "$STEP_LIMIT" "$BUNDLE/bin/bench_train_step" --model "$model" \
      --batch 64 --steps 20 --device cuda --backend "$backend" &&
      grep '^{' "$REPORT/step_${model}_${backend}.log" >> "$REPORT/steps.jsonl"
  done
  for tf32 in off on; do
    stage "step_${model}_torch_tf32${tf32}" "$STEP_LIMIT" python3 bench/torch_train_step.py \
      --model "$model" --batch 64 --steps 20 --device cuda --tf32 "$tf32" &&
      grep '^{' "$REPORT/step_${model}_torch_tf32${tf32}.log" >> "$REPORT/steps.jsonl"
  done
done

python3 tools/gpu_report.py "$REPORT"
exit $tests_rc
