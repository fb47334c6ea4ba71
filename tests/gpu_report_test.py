"""tools/gpu_report.py's verdict on fabricated gpu_check.sh results, since the real ones only come
from a GPU machine: a clean run passes; a run where every test skipped for want of a GPU, a failed
test, a suite killed by its time limit after some tests, or no tests at all each fail, and every
failed or skipped test is named in report.md. Partial JSON lines (a killed writer) are tolerated.

    python3 tests/gpu_report_test.py   # exit status 0 when every case holds
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPORT = os.path.join(HERE, "..", "tools", "gpu_report.py")


def write(raw, name, lines):
    with open(os.path.join(raw, name), "w") as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")


def run(case):
    """Runs gpu_report.py on a raw folder made by case(raw); returns (exit status, report.md)."""
    with tempfile.TemporaryDirectory() as d:
        raw = os.path.join(d, "raw")
        os.makedirs(raw)
        case(raw)
        p = subprocess.run([sys.executable, REPORT, d], capture_output=True, text=True)
        with open(os.path.join(d, "report.md")) as f:
            return p.returncode, f.read(), p.stdout


def stage(name, rc, seconds=3):
    return {"stage": name, "rc": rc, "seconds": seconds, "limit": 90}


def clean(raw):
    write(raw, "stages.jsonl", [stage("test_CudaRuntime", 0), stage("test_Native_CudaSlot", 0)])
    write(raw, "tests.jsonl", [
        {"test": "CudaRuntime.Copies", "status": "passed", "time_ms": 3, "message": ""},
        {"test": "Native/CudaSlot.MatchesCpu/conv2d_forward", "status": "passed", "time_ms": 9,
         "message": ""},
        {"test": "Native/CudaSlot.MatchesCpu/lrn", "status": "skipped", "time_ms": 0,
         "message": "x.cpp:62: lrn: engine/op_list.h marks it missing on backend native"}])
    write(raw, "bench.jsonl", [
        {"name": "conv/custom/3x32@64/k3_s1/fwd/native", "median_ms": 0.5, "gflops": 900},
        {"name": "conv/custom/3x32@64/k3_s1/fwd/cudnn", "median_ms": 0.45, "gflops": 1000},
        '{"name": "memory/relu_fwd/nat'])  # cut short by a kill
    write(raw, "cudnn_algos.jsonl", [{"cudnn_algo": "WINOGRAD_NONFUSED", "algo_id": 7,
                                      "shape": "forward, x [64, 3, 64, 64]", "find_ms": 0.3,
                                      "workspace_bytes": 1000000, "math": "fma"}])
    with open(os.path.join(raw, "cuda_info.json"), "w") as f:
        json.dump({"os": "Ubuntu 22.04", "glibc": "2.35", "gpu": "NVIDIA H200"}, f)


def all_skipped(raw):
    write(raw, "stages.jsonl", [stage("test_CudaRuntime", 0)])
    write(raw, "tests.jsonl", [
        {"test": "CudaRuntime.Copies", "status": "skipped", "time_ms": 0,
         "message": "no usable CUDA device: cudaGetDeviceCount: insufficient driver"}])


def one_failed(raw):
    clean(raw)
    write(raw, "stages.jsonl", [stage("test_CudaRuntime", 1), stage("test_Native_CudaSlot", 0)])
    with open(os.path.join(raw, "tests.jsonl"), "a") as f:
        f.write(json.dumps({"test": "CudaRuntime.Streams", "status": "FAILED", "time_ms": 4,
                            "message": "test_cuda_runtime.cpp:40: expected 3, got 4"}) + "\n")


def killed_suite(raw):
    clean(raw)
    write(raw, "stages.jsonl", [stage("test_CudaRuntime", 0), stage("test_Native_CudaSlot", 124, 90)])


def nothing(raw):
    write(raw, "stages.jsonl", [])


def main():
    failures = []

    def check(name, cond, detail):
        if not cond:
            failures.append(f"{name}: {detail}")

    rc, md, out = run(clean)
    check("clean", rc == 0 and "Verdict: passed" in md, md[:300])
    check("clean lists the expected skip", "Native/CudaSlot.MatchesCpu/lrn" in md, md)
    check("clean shows cuDNN's algorithm", "WINOGRAD_NONFUSED" in md, md)
    check("clean shows the machine", "glibc: 2.35" in md, md)
    check("clean reads the benchmark", "| custom/3x32@64/k3_s1/fwd | 0.500 | 0.450 | 1.11" in md, md)

    rc, md, out = run(all_skipped)
    check("all skipped", rc == 1 and "Verdict: FAILED" in md and "skipped on the GPU run" in md,
          md[:400])
    check("all skipped names the test", "| CudaRuntime.Copies | no usable CUDA device" in md, md)

    rc, md, out = run(one_failed)
    check("one failed", rc == 1 and "1 cuda tests failed" in md, md[:400])
    check("one failed names it", "| CudaRuntime.Streams | test_cuda_runtime.cpp:40" in md, md)
    check("one failed: gtest's exit 1 alone is no unclean suite", "did not finish" not in md, md)

    rc, md, out = run(killed_suite)
    check("killed", rc == 1 and "did not finish cleanly" in md and "Native_CudaSlot" in md,
          md[:400])
    check("killed keeps what ended", "2 passed, 1 failed, 1 skipped" in md, md[:600])

    rc, md, out = run(nothing)
    check("nothing", rc == 1 and "no cuda test ran" in md, md[:400])

    for f in failures:
        print("FAILED", f[:2000])
    print(f"gpu_report_test: {len(failures)} checks failed" if failures
          else "gpu_report_test: every check holds")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
