"""Summarises a tools/gpu_check.sh run from the files its stages left in REPORT_DIR/raw, all JSON
lines appended as each result came, so a stage cut short still counts what it finished:
stages.jsonl (each stage's exit status and time), tests.jsonl (one line per cuda test as it ended;
tests_blocking.jsonl for the reruns with CUDA_LAUNCH_BLOCKING=1), memcheck_*.log, bench.jsonl (one
line per bench_cuda_ops case: native against cudnn per op, shape and pass), cudnn_algos.jsonl (the
algorithm cuDNN chose per conv shape), steps.jsonl (bench_train_step and
bench/torch_train_step.py), transfer.jsonl (bench_transfer and bench/torch_transfer.py) and
cuda_info.json (OS, glibc, driver, runtime, GPU, cuBLAS, cuDNN).
Writes REPORT/report.md and REPORT/report.json and prints a short table last, with the targets:
conv within 1.25x of cuDNN on the custom CNN shapes, depthwise faster than cuDNN, memory-bound
kernels at >= 80% of the device copy's bandwidth, a training step on cudnn at least as fast as
PyTorch (TF32 off) and on native within 1.5x of it.

The verdict (first in report.md, `verdict` in report.json, the exit status) fails when a cuda test
failed, a test suite's process did not finish cleanly, no test ran, or a test skipped for a reason
not in EXPECTED_SKIPS: on the GPU machine the cuda tier must run (gpu_check.sh also sets
ENGINE_REQUIRE_GPU, under which a test that finds no GPU fails rather than skips). Every failed and
every skipped test is listed by name with its message.

    python3 tools/gpu_report.py REPORT_DIR    # exit status 1 when the verdict is a failure
"""
import json
import os
import sys


# Skips that are right on a GPU, by a part of their reason: the cross-backend harness skips a slot
# that engine/op_list.h declares missing on a backend (there is no kernel to run).
EXPECTED_SKIPS = ["engine/op_list.h marks it missing on backend"]


def load_json(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"gpu_report: {path}: {e}", file=sys.stderr)
        return default


def read_jsonl(path):
    """The JSON objects of a JSON-lines file; a line cut short (a killed writer) is skipped."""
    out = []
    for line in read_lines(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def read_stages(raw):
    """stages.jsonl as {stage: "rc=0 in 12 s (limit 120 s)" or "not run: out of time"}."""
    stages = {}
    for st in read_jsonl(os.path.join(raw, "stages.jsonl")):
        if st.get("note"):
            stages[st["stage"]] = st["note"]
        else:
            stages[st["stage"]] = f"rc={st['rc']} in {st['seconds']} s (limit {st['limit']} s)"
    return stages


def tests_summary(raw, stages):
    """Every test that ended (tests.jsonl), a skipped one marked expected or not; for a suite whose
    process did not finish cleanly, one FAILED row naming its log and how many of its tests had
    ended."""
    rows, seen_suites = [], {}
    for t in read_jsonl(os.path.join(raw, "tests.jsonl")):
        row = {"test": t["test"], "status": t["status"], "time": t.get("time_ms", ""),
               "message": t.get("message", "").replace("\n", " ")[:400]}
        if row["status"] == "skipped":
            row["expected_skip"] = any(p in row["message"] for p in EXPECTED_SKIPS)
        rows.append(row)
        suite = t["test"].rsplit(".", 1)[0]
        seen_suites[suite] = seen_suites.get(suite, 0) + 1
    for name in sorted(stages):
        if not name.startswith("test_") or stages[name].startswith("rc=0"):
            continue
        suite = name[5:]
        ended = sum(n for s, n in seen_suites.items() if s.replace("/", "_") == suite)
        if stages[name].startswith("rc=1 ") and ended:
            continue  # gtest's own exit status for failed tests, each already a row
        rows.append({"test": suite + ".*", "status": "FAILED", "time": "",
                     "message": f"the suite's process ended with {stages[name]} after {ended} "
                                f"tests had ended; see raw/{name}.log"})
    return rows


def verdict(tests, stages, gpu):
    """{"passed": bool, "reasons": [...]}: see the module's docstring."""
    reasons = []
    failed = [t for t in tests if t["status"] == "FAILED"]
    unexpected = [t for t in tests if t["status"] == "skipped" and not t.get("expected_skip")]
    # gtest exits 1 when a test failed (each such test is a row already); anything else (a
    # timeout's 124, a crash's signal, out of time) means the suite did not finish.
    unclean = [k for k, v in stages.items()
               if k.startswith("test_") and not v.startswith(("rc=0 ", "rc=1 "))]
    if not tests:
        reasons.append("no cuda test ran")
    if failed:
        reasons.append(f"{len(failed)} cuda tests failed")
    if unexpected:
        reasons.append(f"{len(unexpected)} cuda tests skipped on the GPU run for a reason not "
                       f"listed as expected (first: {unexpected[0]['test']}: "
                       f"{unexpected[0]['message'][:160]}); nvidia-smi said: {gpu[:160]}")
    if unclean:
        reasons.append(f"test suites that did not finish cleanly: "
                       f"{', '.join(f'{k[5:]} ({stages[k]})' for k in unclean[:5])}")
    return {"passed": not reasons, "reasons": reasons}


def read_lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except OSError:
        return []


def memcheck_summary(raw, stages):
    """compute-sanitizer's verdict on each failing suite's failing tests (run only for those)."""
    runs = sorted(k for k in stages if k.startswith("memcheck_"))
    if not runs:
        return "not run (no failing suite, or no compute-sanitizer)"
    out = []
    for k in runs:
        summary = [l for l in read_lines(os.path.join(raw, k + ".log")) if "ERROR SUMMARY" in l]
        out.append(f"{k[9:]}: {summary[-1].strip() if summary else 'no summary'} ({stages[k]})")
    return "; ".join(out)


def bench_rows(raw):
    """{case: {backend: counters}} from bench.jsonl; a case run twice keeps its first result."""
    out = {}
    for b in read_jsonl(os.path.join(raw, "bench.jsonl")):
        parts = b["name"].split("/")
        backend, key = parts[-1], "/".join(parts[:-1])
        if backend in out.get(key, {}):
            continue
        if b.get("error"):
            out.setdefault(key, {})[backend] = {"error": b["error"]}
            continue
        out.setdefault(key, {})[backend] = {k: b[k] for k in ("median_ms", "gflops", "gbps")
                                            if k in b}
    return out


def fmt(v, nd=3):
    return "-" if v is None else f"{v:.{nd}f}"


def main():
    report = sys.argv[1] if len(sys.argv) > 1 else "gpu_report"
    raw = os.path.join(report, "raw")
    stages = read_stages(raw)
    tests = tests_summary(raw, stages)
    memcheck = memcheck_summary(raw, stages)
    counts = {s: sum(t["status"] == s for t in tests) for s in ("passed", "FAILED", "skipped")}
    bench = bench_rows(raw)
    steps = read_jsonl(os.path.join(raw, "steps.jsonl"))
    gpu = "\n".join(read_lines(os.path.join(raw, "gpu.txt"))).strip() or "?"
    info = load_json(os.path.join(raw, "cuda_info.json"), {})
    algos = read_jsonl(os.path.join(raw, "cudnn_algos.jsonl"))
    blocking = read_jsonl(os.path.join(raw, "tests_blocking.jsonl"))

    result = verdict(tests, stages, gpu)
    verdict_line = ("passed" if result["passed"] else "FAILED: " + "; ".join(result["reasons"]))

    md = [f"# gpu_check report\n\nVerdict: {verdict_line}\n\nGPU: {gpu}\n",
          "## machine (cuda_info)\n"] + [f"- {k}: {v}" for k, v in info.items()] + ["",
          f"## cuda tests\n\n{counts['passed']} passed, {counts['FAILED']} failed, "
          f"{counts['skipped']} skipped\n\nmemcheck: {memcheck}\n"]
    failed = [t for t in tests if t["status"] == "FAILED"]
    skipped = [t for t in tests if t["status"] == "skipped"]
    if failed:
        md.append("| failed test | first failure |\n|---|---|")
        md += [f"| {t['test']} | {t['message']} |" for t in failed]
    if skipped:
        md.append("\n| skipped test | reason | expected on a GPU |\n|---|---|---|")
        md += [f"| {t['test']} | {t['message']} | {'yes' if t['expected_skip'] else 'NO'} |"
               for t in skipped]
    if blocking:
        md.append("\n### failing suites rerun with CUDA_LAUNCH_BLOCKING=1\n")
        md.append("| test | status | message |\n|---|---|---|")
        md += [f"| {t['test']} | {t['status']} | {t.get('message', '')[:300]} |"
               for t in blocking if t["status"] != "passed"]
        md.append(f"\n{sum(t['status'] == 'passed' for t in blocking)} passed on the rerun.")
    md.append("\n## machine (probe.txt: what it has of the engine's build dependencies)\n")
    md += [f"- {line}" for line in read_lines(os.path.join(raw, "probe.txt"))]
    if algos:
        md.append("\n## cuDNN's algorithm per conv shape (ENGINE_CUDNN_LOG_ALGOS)\n")
        md.append("| shape | algorithm | Find ms | workspace MB |\n|---|---|---|---|")
        md += [f"| {a.get('shape')} | {a.get('cudnn_algo')} | {fmt(a.get('find_ms'))} | "
               f"{fmt((a.get('workspace_bytes') or 0) / 1e6, 1)} |" for a in algos]
    md.append("\n## stages\n")
    md += [f"- {k}: {v}" for k, v in stages.items()]
    md.append("")

    # Kernels: native vs cudnn.
    conv_rows, lin_rows, mem_rows = [], [], []
    copy_gbps = (bench.get("memory/copy", {}).get("device", {}) or {}).get("gbps")
    for key, by in sorted(bench.items()):
        nat, cud = by.get("native", {}), by.get("cudnn", {})
        tn, tc = nat.get("median_ms"), cud.get("median_ms")
        ratio = tn / tc if tn and tc else None
        if key.startswith("conv/"):
            conv_rows.append((key[5:], tn, tc, ratio, nat.get("gflops"), cud.get("gflops")))
        elif key.startswith("linear/"):
            lin_rows.append((key[7:], tn, tc, ratio, nat.get("gflops"), cud.get("gflops")))
        elif key.startswith("memory/") and key != "memory/copy":
            gn, gc = nat.get("gbps"), cud.get("gbps")
            mem_rows.append((key[7:], tn, tc, gn, gc,
                             gn / copy_gbps if gn and copy_gbps else None))

    def conv_target(rows):
        custom = [r for r in rows if r[0].startswith("custom/") and r[3]]
        dw = [r for r in rows if "_dw/" in r[0] and r[3]]
        return {"custom_within_1.25x": sum(r[3] <= 1.25 for r in custom),
                "custom_cases": len(custom),
                "depthwise_faster": sum(r[3] < 1.0 for r in dw), "depthwise_cases": len(dw)}

    ct = conv_target(conv_rows)
    md.append("## conv2d, native vs cudnn\n")
    md.append("| layer/pass | native ms | cudnn ms | native/cudnn | native GFLOP/s | cudnn GFLOP/s |")
    md.append("|---|---|---|---|---|---|")
    md += [f"| {r[0]} | {fmt(r[1])} | {fmt(r[2])} | {fmt(r[3], 2)} | {fmt(r[4], 0)} | "
           f"{fmt(r[5], 0)} |" for r in conv_rows]
    md.append(f"\nCustom-CNN cases within 1.25x of cuDNN: {ct['custom_within_1.25x']} of "
              f"{ct['custom_cases']}; depthwise faster than cuDNN: {ct['depthwise_faster']} of "
              f"{ct['depthwise_cases']}\n")
    md.append("## linear, native vs cuBLAS\n")
    md.append("| layer/pass | native ms | cublas ms | native/cublas | native GFLOP/s | cublas GFLOP/s |")
    md.append("|---|---|---|---|---|---|")
    md += [f"| {r[0]} | {fmt(r[1])} | {fmt(r[2])} | {fmt(r[3], 2)} | {fmt(r[4], 0)} | "
           f"{fmt(r[5], 0)} |" for r in lin_rows]
    md.append(f"\n## memory-bound kernels on [64, 64, 112, 112] (device copy: {fmt(copy_gbps, 0)} GB/s)\n")
    md.append("| op | native ms | cudnn ms | native GB/s | cudnn GB/s | native / copy |")
    md.append("|---|---|---|---|---|---|")
    md += [f"| {r[0]} | {fmt(r[1])} | {fmt(r[2])} | {fmt(r[3], 0)} | {fmt(r[4], 0)} | "
           f"{fmt(r[5], 2)} |" for r in mem_rows]
    mem_ok = sum(1 for r in mem_rows if r[5] and r[5] >= 0.8)
    md.append(f"\nAt >= 80% of the copy bandwidth: {mem_ok} of {len(mem_rows)}. A cudnn column of "
              "'-' means no cudnn row: the cudnn backend runs the native kernel for that op "
              "(bench_cuda_ops leaves such rows out).\n")

    # Training steps.
    by_model = {}
    for s in steps:
        impl = s.get("backend") if s.get("impl") == "engine" else "torch_tf32" + s.get("tf32", "?")
        by_model.setdefault(s["model"], {})[impl] = s.get("images_per_s")
    step_rows = []
    for m in ("simple", "bn_dropout", "sigmoid", "tanh"):
        d = by_model.get(m, {})
        nat, cud, t_off, t_on = (d.get("native"), d.get("cudnn"), d.get("torch_tf32off"),
                                 d.get("torch_tf32on"))
        step_rows.append((m, nat, cud, t_off, t_on, cud / t_off if cud and t_off else None,
                          nat / t_off if nat and t_off else None))
    md.append("## training step, batch 64, 64x64 (images/s)\n")
    md.append("| model | native | cudnn | PyTorch TF32 off | PyTorch TF32 on | cudnn/PyTorch | native/PyTorch |")
    md.append("|---|---|---|---|---|---|---|")
    md += [f"| {r[0]} | {fmt(r[1], 0)} | {fmt(r[2], 0)} | {fmt(r[3], 0)} | {fmt(r[4], 0)} | "
           f"{fmt(r[5], 2)} | {fmt(r[6], 2)} |" for r in step_rows]
    md.append("\nTargets: cudnn/PyTorch >= 1.0; native/PyTorch >= 0.67 (within 1.5x).\n")

    # Transfer models: inference images/s, ours per backend against PyTorch.
    transfer = read_jsonl(os.path.join(raw, "transfer.jsonl"))
    tr = {}
    for t in transfer:
        impl = t.get("backend") if t.get("impl") == "engine" else "torch"
        tr.setdefault(t.get("model"), {})[impl] = t.get("images_per_s")
    transfer_rows = []
    for m in ("resnet50", "mobilenet_v2"):
        d = tr.get(m, {})
        nat, cud, tor = d.get("native"), d.get("cudnn"), d.get("torch")
        transfer_rows.append((m, nat, cud, tor, cud / tor if cud and tor else None,
                              nat / tor if nat and tor else None))
    md.append("## transfer models: eval inference, batch 32, 224x224, BN folded (images/s)\n")
    md.append("| model | native | cudnn | PyTorch | cudnn/PyTorch | native/PyTorch |")
    md.append("|---|---|---|---|---|---|")
    md += [f"| {r[0]} | {fmt(r[1], 0)} | {fmt(r[2], 0)} | {fmt(r[3], 0)} | {fmt(r[4], 2)} | "
           f"{fmt(r[5], 2)} |" for r in transfer_rows]
    md.append("\nTarget: cudnn/PyTorch >= 1.0. A frozen fine-tune on the GPU costs this pass once "
              "per image (the feature cache), then the head alone.\n")

    with open(os.path.join(report, "report.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(report, "report.json"), "w") as f:
        json.dump({"verdict": result, "gpu": gpu, "cuda_info": info, "tests": tests,
                   "test_counts": counts, "tests_blocking": blocking, "cudnn_algos": algos,
                   "memcheck": memcheck,
                   "stages": stages, "bench": bench,
                   "conv_targets": ct, "memory_at_80pct": [mem_ok, len(mem_rows)],
                   "copy_gbps": copy_gbps, "steps": steps, "transfer": transfer}, f, indent=1)

    # The short table, last.
    print(f"verdict: {verdict_line}")
    print(f"GPU: {gpu}")
    print(f"cuda tests: {counts['passed']} passed, {counts['FAILED']} failed, "
          f"{counts['skipped']} skipped")
    for k in ("os", "glibc", "driver_cuda", "runtime_cuda", "gpu", "cuda_libraries"):
        if k in info:
            print(f"{k}: {str(info[k]).replace(chr(10), '; ')}")
    for t in failed[:15]:
        print(f"  FAILED {t['test']}: {t['message'][:160]}")
    unexpected = [t for t in skipped if not t["expected_skip"]]
    for t in unexpected[:15]:
        print(f"  SKIPPED (not expected) {t['test']}: {t['message'][:160]}")
    if len(failed) > 15 or len(unexpected) > 15:
        print("  (every failed and skipped test is listed in report.md)")
    print(f"memcheck: {memcheck}")
    late = [f"{k} {v}" for k, v in stages.items() if not v.startswith("rc=0")]
    for line in late[:10]:
        print(f"  stage {line}")
    print(f"conv custom within 1.25x of cuDNN: {ct['custom_within_1.25x']}/{ct['custom_cases']}; "
          f"depthwise faster: {ct['depthwise_faster']}/{ct['depthwise_cases']}; "
          f"memory-bound >= 80% of copy ({fmt(copy_gbps, 0)} GB/s): {mem_ok}/{len(mem_rows)}")
    print("| custom conv | pass | native ms | cudnn ms | ratio |")
    print("|---|---|---|---|---|")
    for r in conv_rows:
        if r[0].startswith("custom/"):
            layer, _, pas = r[0][7:].rpartition("/")
            print(f"| {layer.split('/')[0]} | {pas} | {fmt(r[1])} | {fmt(r[2])} | {fmt(r[3], 2)} |")
    print("| step img/s | native | cudnn | torch tf32 off | torch tf32 on |")
    print("|---|---|---|---|---|")
    for r in step_rows:
        print(f"| {r[0]} | {fmt(r[1], 0)} | {fmt(r[2], 0)} | {fmt(r[3], 0)} | {fmt(r[4], 0)} |")
    print("| transfer img/s | native | cudnn | torch |")
    print("|---|---|---|---|")
    for r in transfer_rows:
        print(f"| {r[0]} | {fmt(r[1], 0)} | {fmt(r[2], 0)} | {fmt(r[3], 0)} |")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
