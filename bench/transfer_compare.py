"""CPU inference of ResNet-50 and MobileNetV2, the engine against torchvision, side by side in one
run: for each model and batch, bench_transfer's model/ cases (BatchNorm folding on and off) and
torch_transfer.py (under torch.no_grad() and torch.inference_mode(); the faster of the two is
compared), alternating, --rounds times, one model per process so that each peak is that model's.
Prints a markdown table of medians with ours / PyTorch and each side's peak resident set above its
own start-up baseline (as bench/cpu_train_step.py does it).

With --layers B it then times every distinct convolution of both models at batch B on both sides
(bench_transfer's conv/ cases against torch.nn.functional.conv2d), checks that the two lists of
shapes and their counts agree (the engine's is derived from the architectures, PyTorch's from
forward hooks on torchvision's models), and prints per shape and per layer type (7x7 stem, 1x1,
3x3, depthwise 3x3, by stride) the time each model spends there on either side.

Each run records the share of the machine's CPU that other processes used meanwhile (all busy
time in /proc/stat minus the run's own); runs above DISTURBED are flagged and left out of the
medians when an undisturbed run of the same kind exists, as bench/epoch_compare.py does. On this
shared 2-core machine a busy neighbour makes OpenMP's spinning threads several times (up to 40x
at batch 1) slower, so --wait-quiet S holds each run until the machine is quiet (or S seconds).

  /usr/bin/python3 bench/transfer_compare.py --build build-bench --rounds 2 --runs 5 --layers 32 \
      --wait-quiet 600 --json run1.json
  /usr/bin/python3 bench/transfer_compare.py --merge run1.json run2.json --layers 32
"""
import argparse
import collections
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--build", default=os.path.join(here, "..", "build-bench"))
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--warmup", type=int, default=2)
ap.add_argument("--runs", type=int, default=7, help="timed calls per run (median)")
ap.add_argument("--rounds", type=int, default=2, help="alternating runs per implementation")
ap.add_argument("--models", default="resnet50,mobilenet_v2")
ap.add_argument("--batches", default="1,32")
ap.add_argument("--torch-modes", default="no_grad,inference_mode")
ap.add_argument("--layers", type=int, default=0, help="also time each conv shape at this batch")
ap.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                help="before each run, wait up to S seconds for other processes to go quiet")
ap.add_argument("--json", help="write all measurements here")
ap.add_argument("--merge", nargs="+", metavar="JSON",
                help="measure nothing: tabulate the runs of these --json files together")
a = ap.parse_args()

engine_bin = os.path.join(a.build, "bench", "bench_transfer")
if not os.path.exists(engine_bin) and not a.merge:
    sys.exit(f"transfer_compare: {engine_bin} not found: "
             f"cmake --build {a.build} --target bench_transfer")
env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
common = ["--threads", str(a.threads), "--warmup", str(a.warmup), "--runs", str(a.runs)]
modes = a.torch_modes.split(",")
DISTURBED = 0.10
NCPU = os.cpu_count() or 1


def busy_seconds():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def wait_until_quiet():
    """Before a run: waits (up to --wait-quiet seconds) until other processes have used less than
    DISTURBED of the CPU over two seconds, so that runs start on a quiet machine."""
    t_end = time.perf_counter() + a.wait_quiet
    while True:
        b0, t0 = busy_seconds(), time.perf_counter()
        time.sleep(2)
        share = (busy_seconds() - b0) / ((time.perf_counter() - t0) * NCPU)
        if share <= DISTURBED or time.perf_counter() > t_end:
            return


def run_logged(cmd):
    """Runs cmd; returns (stdout, share of the machine's CPU that other processes used)."""
    wait_until_quiet()
    b0, c0, t0 = busy_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    b1, c1, t1 = busy_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    if p.returncode != 0:
        sys.exit(f"transfer_compare: {shlex.join(cmd)} failed ({p.returncode}):\n"
                 f"{p.stderr[-2000:]}")
    own = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    return p.stdout, max(0.0, (b1 - b0 - own) / ((t1 - t0) * NCPU))


def engine_cases(pattern):
    """bench_transfer's cases matching the regex, as dicts of their counters."""
    out, others = run_logged([engine_bin, *common, f"--benchmark_filter={pattern}",
                              "--benchmark_format=json"])
    rows = []
    for b in json.loads(out)["benchmarks"]:
        if b.get("error_occurred"):
            sys.exit(f"transfer_compare: {b['name']}: {b.get('error_message')}")
        rows.append(dict(b, others_cpu=others))
    return rows


def torch_rows(*args):
    out, others = run_logged([sys.executable, os.path.join(here, "torch_transfer.py"), *common,
                              *args])
    return [dict(json.loads(line), others_cpu=others) for line in out.strip().splitlines()]


def log(kind, row):
    note = " (disturbed)" if row["others_cpu"] > DISTURBED else ""
    print(f"{kind}: {row['images_per_s']:.3f} img/s, peak above baseline "
          f"{row.get('peak_above_baseline_mb', float('nan')):.0f} MB, other processes "
          f"{100 * row['others_cpu']:.0f}% of the CPU{note}", file=sys.stderr, flush=True)


def measure_models():
    """{(model, batch, kind): [rows]}, kind 'fold:1', 'fold:0' or a torch grad mode."""
    runs = collections.defaultdict(list)
    kinds = ["fold:1", "fold:0"] + modes
    for r in range(a.rounds):
        for m in a.models.split(","):
            for b in map(int, a.batches.split(",")):
                for k in range(len(kinds)):  # rotate the order from round to round
                    kind = kinds[(k + r) % len(kinds)]
                    if kind.startswith("fold"):
                        row = engine_cases(f"^model/{m}/batch:{b}/{kind}/")[0]
                    else:
                        row = torch_rows("--model", m, "--batch", str(b), "--grad-mode", kind)[0]
                    row["round"] = r + 1
                    runs[(m, b, kind)].append(row)
                    log(f"round {r + 1} {m} batch {b} {kind}", row)
    return runs


def quiet(rows):
    q = [x for x in rows if x["others_cpu"] <= DISTURBED]
    return q or rows


def med(rows, key):
    return statistics.median(x[key] for x in quiet(rows))


def model_table(runs):
    print("| model | batch | ours img/s (BN folded) | ours img/s (BN not folded) | "
          "PyTorch img/s | ours / PyTorch | not folded / PyTorch | ours peak above baseline MB | "
          "PyTorch peak above baseline MB | runs disturbed |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    best = {}
    for m in a.models.split(","):
        for b in map(int, a.batches.split(",")):
            mode = max(modes, key=lambda md: med(runs[(m, b, md)], "images_per_s"))
            best[(m, b)] = mode
            ours, off, ref = (med(runs[(m, b, k)], "images_per_s") for k in
                              ("fold:1", "fold:0", mode))
            mem_o = max(x["peak_above_baseline_mb"] for x in runs[(m, b, "fold:1")])
            folded = runs[(m, b, "fold:1")]
            tensors = [x["tensor_peak_mb"] for x in folded if "tensor_peak_mb" in x]
            kept = [x["kept_after_mb"] for x in folded if "kept_after_mb" in x]
            mem_o = (f"{mem_o:.0f}" + (f" (tensors {max(tensors):.0f}" if tensors else "") +
                     (f", kept after {max(kept):.0f})" if kept else ")" if tensors else ""))
            mem_r = max(x["peak_above_baseline_mb"] for x in runs[(m, b, mode)])
            all_rows = [x for k, v in runs.items() if k[:2] == (m, b) for x in v]
            dist = sum(x["others_cpu"] > DISTURBED for x in all_rows)
            print(f"| {m} | {b} | {ours:.3f} | {off:.3f} | {ref:.3f} ({mode}) | "
                  f"{ours / ref:.2f}x | {off / ref:.2f}x | {mem_o} | {mem_r:.0f} | "
                  f"{dist}/{len(all_rows)} |")
    others = [f"{mode}: " + ", ".join(
        f"{m} b{b} {med(runs[(m, b, mode)], 'images_per_s'):.3f} img/s "
        f"{max(x['peak_above_baseline_mb'] for x in runs[(m, b, mode)]):.0f} MB"
        for m in a.models.split(",") for b in map(int, a.batches.split(","))) for mode in modes]
    print("\nPyTorch by grad mode (img/s, peak above baseline): " + "; ".join(others), flush=True)
    return best


# ---- per-layer profile ----

def layer_type(k, stride, groups, cin):
    kind = ("depthwise 3x3" if groups > 1 else f"{k}x{k} stem" if cin == 3 else f"{k}x{k}")
    return f"{kind} s{stride}"


def shape_key(r):
    return (r["net"], int(r["cin"]), int(r["cout"]), int(r["hw"]), int(r["k"]), int(r["stride"]),
            int(r["groups"]))


def measure_layers(mode):
    """{shape key: {'count', 'ours': [ms], 'torch': [ms]}}, alternating sides per round."""
    shapes = {}
    for r in range(a.rounds):
        sides = ["ours", "torch"] if r % 2 == 0 else ["torch", "ours"]
        for side in sides:
            if side == "ours":
                rows = engine_cases(f"^conv/.*/batch:{a.layers}/")
                for x in rows:
                    x["net"] = x["name"].split("/")[1]
            else:
                rows = torch_rows("--layers", "--batch", str(a.layers), "--grad-mode", mode)
            others = rows[0]["others_cpu"] if rows else 0
            print(f"round {r + 1} layers {side}: {len(rows)} shapes, other processes "
                  f"{100 * others:.0f}% of the CPU", file=sys.stderr, flush=True)
            for x in rows:
                s = shapes.setdefault(shape_key(x), {"count": {}, "ours": [], "torch": []})
                s["count"][side] = int(x["count"])
                # A disturbed side-run is kept apart and used only where no quiet one exists.
                s.setdefault(side + "_disturbed", [])
                s[side if others <= DISTURBED else side + "_disturbed"].append(x["median_ms"])
    bad = [k for k, s in shapes.items() if s["count"].get("ours") != s["count"].get("torch")]
    if bad:
        sys.exit(f"transfer_compare: conv shapes or counts differ between the engine and "
                 f"torchvision: {bad}")
    return shapes


def layer_ms(v, side):
    """The median of a shape's quiet side-runs (of the disturbed ones where none was quiet)."""
    return statistics.median(v[side] or v[side + "_disturbed"])


def layer_tables(shapes, runs, best):
    print(f"\nPer conv shape, batch {a.layers} (median ms per call; ours / PyTorch as speed):\n")
    print("| net | shape (cin x cout @ hw, k, s) | type | count | ours ms | PyTorch ms | "
          "ours / PyTorch | ours GFLOP/s | PyTorch GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (net, cin, cout, hw, k, s, g), v in shapes.items():
        o, t = layer_ms(v, "ours"), layer_ms(v, "torch")
        flops = 2.0 * a.layers * cout * (cin // g) * k * k * (hw // s) ** 2
        print(f"| {net} | {cin}x{cout} @{hw}, k{k}, s{s}{' dw' if g > 1 else ''} | "
              f"{layer_type(k, s, g, cin)} | {v['count']['ours']} | {o:.2f} | {t:.2f} | "
              f"{t / o:.2f}x | {flops / o / 1e6:.0f} | {flops / t / 1e6:.0f} |")
    print(f"\nPer layer type, batch {a.layers}: time per forward (count x median), ms\n")
    print("| net | layer type | convs | ours ms | PyTorch ms | ours / PyTorch | ours - PyTorch ms |")
    print("|---|---|---|---|---|---|---|")
    for net in a.models.split(","):
        totals = collections.defaultdict(lambda: [0, 0.0, 0.0])
        for (n, cin, cout, hw, k, s, g), v in shapes.items():
            if n != net:
                continue
            t = totals[layer_type(k, s, g, cin)]
            c = v["count"]["ours"]
            t[0] += c
            t[1] += c * layer_ms(v, "ours")
            t[2] += c * layer_ms(v, "torch")
        for typ, (c, o, t) in sorted(totals.items()):
            print(f"| {net} | {typ} | {c} | {o:.1f} | {t:.1f} | {t / o:.2f}x | {o - t:+.1f} |")
        co, ct = sum(t[1] for t in totals.values()), sum(t[2] for t in totals.values())
        print(f"| {net} | all convs | {sum(t[0] for t in totals.values())} | {co:.1f} | "
              f"{ct:.1f} | {ct / co:.2f}x | {co - ct:+.1f} |")
        key = (net, a.layers)
        if (net, a.layers, "fold:1") in runs:
            mo = 1e3 * a.layers / med(runs[(net, a.layers, "fold:1")], "images_per_s")
            mt = 1e3 * a.layers / med(runs[(net, a.layers, best[key])], "images_per_s")
            print(f"| {net} | whole model | | {mo:.1f} | {mt:.1f} | {mt / mo:.2f}x | "
                  f"{mo - mt:+.1f} |")
            print(f"| {net} | model minus convs | | {mo - co:.1f} | {mt - ct:.1f} | "
                  f"{(mt - ct) / (mo - co):.2f}x | {(mo - co) - (mt - ct):+.1f} |")


def tree_state():
    root = os.path.dirname(here)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=root).stdout.strip()
    dirty = subprocess.run(["git", "status", "--short", "--", "engine", "kernels", "layers",
                            "models"], capture_output=True, text=True, cwd=root).stdout.split("\n")
    dirty = [d[3:] for d in dirty if d.strip()]
    return head, dirty


def merged():
    """The runs and conv shapes of the --merge files, each kind's rows put together."""
    runs, shapes, heads = collections.defaultdict(list), {}, []
    for path in a.merge:
        with open(path) as f:
            d = json.load(f)
        heads.append(d["head"] + (" (dirty)" if d["dirty"] else ""))
        for k, v in d["models"].items():
            m, b, kind = k.split("|")
            runs[(m, int(b), kind)] += v
        for k, v in d["layers"].items():
            net, *dims = k.split("|")
            s = shapes.setdefault((net, *map(int, dims)), {"count": v["count"]})
            for side in ("ours", "torch", "ours_disturbed", "torch_disturbed"):
                s[side] = s.get(side, []) + v.get(side, [])
    print(f"Merged {len(a.merge)} runs of the engine at {', '.join(heads)}\n", file=sys.stderr)
    return runs, shapes


def main():
    head, dirty = tree_state()
    t0 = time.perf_counter()
    if a.merge:
        runs, shapes = merged()
        best = model_table(runs)
        if shapes:
            layer_tables(shapes, runs, best)
        return
    runs = measure_models()
    best = model_table(runs)
    shapes = None
    if a.layers:
        mode = best.get((a.models.split(",")[0], a.layers), modes[0])
        shapes = measure_layers(mode)
        layer_tables(shapes, runs, best)
    with open("/proc/cpuinfo") as f:
        cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    print(f"\nEngine at {head}" + (f" with uncommitted changes to {', '.join(dirty)}" if dirty
                                   else "") +
          f"; {cpu}, {NCPU} cores; {a.threads} threads, {a.warmup} warm-up calls, median of "
          f"{a.runs} timed calls per run, {a.rounds} rounds, medians of the rounds; "
          f"{time.perf_counter() - t0:.0f} s in all.")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"models": {"|".join(map(str, k)): v for k, v in runs.items()},
                       "layers": {"|".join(map(str, k)): v for k, v in (shapes or {}).items()},
                       "head": head, "dirty": dirty}, f, indent=1)


main()
