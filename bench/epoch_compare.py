"""Full-epoch training throughput on the CPU, data loading included: `train` against the study's
PyTorch loop (torch_epoch.py) on the same synthetic dataset, batch size, learning rate and
thread count, alternating in one run. Prints a markdown table of medians over rounds.

Both sides report train images / wall time of the epoch's training loop, from before the loader
yields its first batch to the last optimizer step; the test pass is excluded on both (train's
metrics.csv images_per_second, torch_epoch.py's images_per_s). Epoch 1 is reported apart from
the later ones because `train` decodes every JPEG in epoch 1 and keeps the resized images in its
cache, so later epochs decode nothing, while the study's ImageFolder decodes every epoch.
PyTorch runs twice per round: with DataLoader num_workers=0 (the study's setting) and with as
many workers as `train` has loader threads.

Each run records the share of the CPU that other processes used meanwhile (a compiler beside
the benchmark on a 2-core machine slows it several times over); disturbed runs are left out of
the medians when an undisturbed run of the same kind exists, and the report says so.

  /usr/bin/python3 bench/epoch_compare.py --build build --width 1.0,0.25 --rounds 2
"""
import argparse
import collections
import csv
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--build", default="build")
ap.add_argument("--model", default="simple")
ap.add_argument("--width", default="1.0,0.25",
                help="channel-width multipliers, comma-separated: one table block each")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--workers", type=int, default=2, help="train's loader threads; PyTorch's "
                "DataLoader runs with 0 and with this many")
ap.add_argument("--batch-size", type=int, default=8)
ap.add_argument("--lr", type=float, default=1e-4)
# 20 per class (120 images) makes a full-width epoch about 15-20 s on a 2-core machine, so both
# widths, three runs each and two rounds fit in about five minutes.
ap.add_argument("--train-per-class", type=int, default=20)
ap.add_argument("--test-per-class", type=int, default=1, help="the test pass is not timed")
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--rounds", type=int, default=2, help="alternating runs per implementation")
ap.add_argument("--seed", type=int, default=1, help="dataset seed")
ap.add_argument("--python", default="/usr/bin/python3" if os.path.exists("/usr/bin/python3")
                else sys.executable, help="the Python that has torch and torchvision")
ap.add_argument("--json", help="write every measurement here")
a = ap.parse_args()
if a.epochs < 2:
    sys.exit("epoch_compare: --epochs must be at least 2 (epoch 1 and the cached epochs differ)")

train_bin = os.path.join(a.build, "train")
make_bin = os.path.join(a.build, "make_dataset")
for b in (train_bin, make_bin):
    if not os.path.exists(b):
        sys.exit(f"epoch_compare: {b} not found: "
                 f"cmake --build {a.build} --target train make_dataset")
widths = [float(w) for w in a.width.split(",")]
env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))

# ---- CPU taken by other processes ----
# On a 2-core machine another process (a compiler, a test run) slows both sides, and OpenMP's
# spinning threads can make a contended run several times slower, so each run records how much
# CPU the rest of the machine used meanwhile: all busy time in /proc/stat (steal included) minus
# the run's own CPU time. Runs where others took more than DISTURBED of the CPU are left out of
# the medians when an undisturbed run of the same kind exists.
DISTURBED = 0.10
NCPU = os.cpu_count() or 1
others_seen = collections.Counter()  # names of other running processes, one count per second
stop_watch = threading.Event()


def busy_seconds():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def watch():
    """Once a second, names the running processes outside this driver's process tree."""
    me = os.getpid()
    while not stop_watch.wait(1.0):
        parent, state, name = {}, {}, {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    st = f.read()
            except OSError:
                continue
            comm_end = st.rindex(")")
            fields = st[comm_end + 2:].split()
            p = int(pid)
            name[p], state[p], parent[p] = st[st.index("(") + 1:comm_end], fields[0], int(fields[1])
        for p in name:
            q = p
            while q not in (0, me) and q in parent:
                q = parent[q]
            if q != me and p != me and state[p] == "R":
                others_seen[name[p]] += 1


def run_logged(cmd):
    """Runs cmd; returns (stdout, share of the machine's CPU that other processes used)."""
    b0, c0, t0 = busy_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    b1, c1, t1 = busy_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    if p.returncode != 0:
        sys.exit(f"epoch_compare: {shlex.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    own = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    return p.stdout, max(0.0, (b1 - b0 - own) / ((t1 - t0) * NCPU))


def run_ours(ds, width, out):
    shutil.rmtree(out, ignore_errors=True)
    cmd = [train_bin, "--train-dir", os.path.join(ds, "seg_train"),
           "--test-dir", os.path.join(ds, "seg_test"), "--model", a.model, "--width", str(width),
           "--epochs", str(a.epochs), "--batch-size", str(a.batch_size),
           "--threads", str(a.threads), "--workers", str(a.workers), "--lr", str(a.lr),
           "--no-plot", "--out", out]
    _, others = run_logged(cmd)
    with open(os.path.join(out, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    n = a.train_per_class * 6
    return {"impl": "ours", "width": width, "others_cpu": others,
            "epochs": [{"epoch": int(r["epoch"]), "images": n,
                        "images_per_s": float(r["images_per_second"])} for r in rows]}


def run_torch(ds, width, workers):
    cmd = [a.python, os.path.join(here, "torch_epoch.py"),
           "--train-dir", os.path.join(ds, "seg_train"), "--model", a.model,
           "--width", str(width), "--epochs", str(a.epochs), "--batch-size", str(a.batch_size),
           "--lr", str(a.lr), "--threads", str(a.threads), "--workers", str(workers)]
    out, others = run_logged(cmd)
    eps = [json.loads(line) for line in out.strip().splitlines()]
    return {"impl": f"torch_w{workers}", "width": width, "others_cpu": others, "epochs": eps,
            "versions": {"torch": eps[0]["impl"].split()[1],
                         "torchvision": eps[0]["torchvision"], "pillow": eps[0]["pillow"]}}


def rate(run, first, last):
    """Images/s over epochs first..last of one run: total images over total time."""
    eps = [e for e in run["epochs"] if first <= e["epoch"] <= last]
    return sum(e["images"] for e in eps) / sum(e["images"] / e["images_per_s"] for e in eps)


t_start = time.perf_counter()
threading.Thread(target=watch, daemon=True).start()
tmp = tempfile.mkdtemp(prefix="epoch_compare_")
try:
    ds = os.path.join(tmp, "ds")
    run_logged([make_bin, "--out", ds, "--train-per-class", str(a.train_per_class),
                "--test-per-class", str(a.test_per_class), "--pred", "0", "--seed", str(a.seed)])
    impls = ["ours", "torch_w0", f"torch_w{a.workers}"]
    runs = {(w, i): [] for w in widths for i in impls}
    for r in range(a.rounds):
        for w in widths:
            # Rotate the order each round so that a slow drift of the machine does not always
            # land on the same implementation.
            for k in range(len(impls)):
                impl = impls[(k + r) % len(impls)]
                t0 = time.perf_counter()
                if impl == "ours":
                    res = run_ours(ds, w, os.path.join(tmp, "out"))
                else:
                    res = run_torch(ds, w, int(impl.split("_w")[1]))
                res["round"] = r + 1
                runs[(w, impl)].append(res)
                ips = ", ".join(f"{e['images_per_s']:.2f}" for e in res["epochs"])
                note = " (disturbed)" if res["others_cpu"] > DISTURBED else ""
                print(f"round {r + 1} width {w:g} {impl}: {ips} img/s per epoch, "
                      f"{time.perf_counter() - t0:.0f} s, other processes used "
                      f"{100 * res['others_cpu']:.0f}% of the CPU{note}", file=sys.stderr,
                      flush=True)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
    stop_watch.set()
total_s = time.perf_counter() - t_start

# ---- report ----
spans = [("1 (ours: decode + fill cache)", 1, 1),
         (f"2-{a.epochs} (ours: from cache)" if a.epochs > 2 else "2 (ours: from cache)",
          2, a.epochs),
         (f"all {a.epochs}", 1, a.epochs)]
W = a.workers
print(f"| model | width | epoch | ours img/s | PyTorch (workers 0) img/s | "
      f"PyTorch (workers {W}) img/s | ours / PyTorch w0 | ours / PyTorch w{W} |")
print("|---|---|---|---|---|---|---|---|")
used, any_disturbed_used = {}, False
for key, rs in runs.items():
    quiet = [x for x in rs if x["others_cpu"] <= DISTURBED]
    used[key] = quiet or rs
    any_disturbed_used |= not quiet
for w in widths:
    # † : some kind of run was disturbed every time, so its median includes disturbed runs.
    mark = " †" if any(all(x["others_cpu"] > DISTURBED for x in runs[(w, i)])
                       for i in impls) else ""
    for label, e0, e1 in spans:
        med = {i: statistics.median(rate(x, e0, e1) for x in used[(w, i)]) for i in impls}
        o, p0, pw = med["ours"], med["torch_w0"], med[f"torch_w{W}"]
        print(f"| {a.model} | {w:g}{mark} | {label} | {o:.2f} | {p0:.2f} | {pw:.2f} | "
              f"{o / p0:.2f}x | {o / pw:.2f}x |")

cpu = platform.processor() or "unknown CPU"
try:
    with open("/proc/cpuinfo") as f:
        cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
except (OSError, StopIteration):
    pass
cxx = "unknown compiler"
try:
    with open(os.path.join(a.build, "CMakeCache.txt")) as f:
        comp = next(line.split("=", 1)[1].strip() for line in f
                    if line.startswith("CMAKE_CXX_COMPILER:"))
    cxx = subprocess.run([comp, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
except (OSError, StopIteration, IndexError):
    pass
ver = runs[(widths[0], "torch_w0")][0]["versions"]
n_runs = sum(len(x) for x in runs.values())
n_dist = sum(1 for x in runs.values() for y in x if y["others_cpu"] > DISTURBED)
n_used = sum(len(x) for x in used.values())
busiest = ", ".join(f"{n} ({c} s)" for n, c in others_seen.most_common(4)) or "none"
print()
print(f"Hardware: {cpu}, {os.cpu_count()} logical cores; {a.threads} compute threads, "
      f"batch {a.batch_size}, lr {a.lr:g}, {a.train_per_class * 6} train images of 150x150 "
      f"resized to 64x64, {a.epochs} epochs, median of {a.rounds} rounds.")
print(f"Versions: {cxx}; Python {platform.python_version()} (driver), torch {ver['torch']}, "
      f"torchvision {ver['torchvision']}, Pillow {ver['pillow']}; {platform.platform()}.")
print("Measured: train images / train-loop wall time per epoch, data loading included, "
      "test pass excluded, on both sides.")
print(f"Disturbance: other processes used more than {100 * DISTURBED:.0f}% of the CPU during "
      f"{n_dist} of {n_runs} runs; the medians use {n_used} runs"
      + (" († : no undisturbed run of some kind, disturbed ones included)"
         if any_disturbed_used else "")
      + f". Other running processes seen: {busiest}.")
print(f"Command: {shlex.join([sys.executable] + sys.argv)}")
print(f"Total time: {total_s:.0f} s")
if a.json:
    with open(a.json, "w") as f:
        json.dump({"args": vars(a), "runs": [x for rs in runs.values() for x in rs],
                   "total_s": total_s}, f, indent=1)
