"""The frozen-backbone fine-tune, end to end: `train` (feature cache on) against the study's
PyTorch loop (torch_finetune.py), and `train --frozen-bn train` (no cache; BatchNorm as the study
left it, the fair accuracy comparison to PyTorch's loop), for ResNet-50 and MobileNetV2 on the
same synthetic data and the same converted weights. Prints a markdown table.

Each run is one whole process, timed from launch to exit by this driver (wall seconds; for
PyTorch that includes `import torch`), with its peak resident set from os.wait4 (ru_maxrss: the
figure `/usr/bin/time -v` prints as "Maximum resident set size", without a wrapper process in the
way of the signal that stops a run early). Before each run the driver waits until the 1-minute
load average is below --load-below (polling every 10 s, at most --load-wait s, then runs anyway),
and records the load average at the start and the share of the CPU that other processes used
during the run (all busy time in /proc/stat minus the run's own CPU time).

Long runs are stopped and extrapolated: after epoch 2 (and each later one) the driver projects
the whole run as (time from launch to the end of this epoch) + (epochs left) x (mean time of
epochs 2..this one, each timed from the end of the one before, its test pass included); if that
exceeds --max-run-minutes the run is stopped (SIGINT for `train`, which saves and exits; SIGTERM
for PyTorch) and the table shows the projection, marked as such, with the test accuracy after
the epochs that ran.

  /usr/bin/python3 bench/finetune_compare.py --build build --work /tmp/ftb --json ft.json
"""
import argparse
import csv
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
ap = argparse.ArgumentParser()
ap.add_argument("--build", default="build", help="folder with train and make_dataset")
ap.add_argument("--work", help="folder for data, weights and runs (made once, reused; default: "
                "a temporary folder, removed at the end)")
ap.add_argument("--models", default="resnet50,mobilenet_v2")
ap.add_argument("--configs", default="ours,pytorch,ours_bn_train",
                help="which runs, in this order: ours (cache) | pytorch | ours_bn_train")
ap.add_argument("--epochs", type=int, default=10)
ap.add_argument("--batch-size", type=int, default=8)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--train-per-class", type=int, default=100)
ap.add_argument("--test-per-class", type=int, default=20)
ap.add_argument("--size", type=int, default=150)
ap.add_argument("--seed", type=int, default=1, help="dataset seed")
ap.add_argument("--weights-seed", type=int, default=0)
ap.add_argument("--rounds-mobilenet", type=int, default=2,
                help="rounds for mobilenet_v2 (resnet50 runs once); the later rounds only when "
                     "the previous round's time still fits in --budget-minutes")
ap.add_argument("--budget-minutes", type=float, default=50)
ap.add_argument("--max-run-minutes", type=float, default=15,
                help="stop a run whose projected total exceeds this, and extrapolate")
ap.add_argument("--load-below", type=float, default=1.5)
ap.add_argument("--load-wait", type=float, default=600)
ap.add_argument("--python", default="/usr/bin/python3" if os.path.exists("/usr/bin/python3")
                else sys.executable, help="the Python that has torch and torchvision")
ap.add_argument("--json", help="write every measurement here")
a = ap.parse_args()

NCPU = os.cpu_count() or 1
CLASSES = 6
T0 = time.perf_counter()
env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))


def log(msg):
    print(f"[{time.perf_counter() - T0:6.0f} s] {msg}", file=sys.stderr, flush=True)


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def wait_for_quiet():
    """Waits until the 1-minute load average is below --load-below; returns (load, waited s)."""
    t = time.perf_counter()
    while load1() >= a.load_below and time.perf_counter() - t < a.load_wait:
        time.sleep(10)
    waited = time.perf_counter() - t
    if load1() >= a.load_below:
        log(f"load {load1():.2f} still >= {a.load_below} after {waited:.0f} s: running anyway")
    return load1(), waited


def busy_seconds():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


# ---- setup: data and weights, made once ----

def run_checked(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"finetune_compare: {' '.join(cmd)} failed ({p.returncode}):\n"
                 f"{(p.stderr or p.stdout)[-2000:]}")


def prepare(work, models):
    data = os.path.join(work, "data")
    if not os.path.isdir(os.path.join(data, "seg_test")):
        run_checked([os.path.join(a.build, "make_dataset"), "--out", data,
                     "--train-per-class", str(a.train_per_class),
                     "--test-per-class", str(a.test_per_class), "--size", str(a.size),
                     "--seed", str(a.seed)])
    weights = {}
    for m in models:
        w = os.path.join(work, f"{m}-random{a.weights_seed}.safetensors")
        if not os.path.exists(w):
            run_checked([a.python, os.path.join(root, "tools", "convert_torchvision.py"), m,
                         "--random-seed", str(a.weights_seed), "--out", w])
        weights[m] = w
    return data, weights


# ---- one timed run ----

def ours_cmd(model, weights, data, out, bn_train):
    cmd = [os.path.join(a.build, "train"), "--model", model, "--weights", weights,
           "--freeze-backbone", "--train-dir", os.path.join(data, "seg_train"),
           "--test-dir", os.path.join(data, "seg_test"), "--epochs", str(a.epochs),
           "--batch-size", str(a.batch_size), "--threads", str(a.threads), "--out", out,
           "--no-plot"]
    return cmd + (["--frozen-bn", "train"] if bn_train else [])


def torch_cmd(model, weights, data):
    return [a.python, os.path.join(here, "torch_finetune.py"), "--model", model,
            "--weights", weights, "--train-dir", os.path.join(data, "seg_train"),
            "--test-dir", os.path.join(data, "seg_test"), "--epochs", str(a.epochs),
            "--batch-size", str(a.batch_size), "--threads", str(a.threads)]


def epochs_ours(out, _log):
    """[(epoch, test_acc, train seconds from metrics.csv)] of the epochs finished so far."""
    try:
        with open(os.path.join(out, "metrics.csv")) as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return []
    return [(int(r["epoch"]), float(r["test_acc"]), float(r["epoch_seconds"])) for r in rows
            if r.get("epoch_seconds")]


def epochs_torch(_out, log_path):
    eps = []
    with open(log_path) as f:
        for line in f:
            if line.startswith("{") and line.rstrip().endswith("}"):
                e = json.loads(line)
                if "epoch" in e:
                    eps.append((e["epoch"], e["test_acc"], e["train_s"]))
    return eps


def projection(seen):
    """seen: [(epoch, driver seconds at its end)]; the projected whole-run seconds, from epoch 2
    on (epoch 1 carries one-time costs: the feature cache, warm-up)."""
    if len(seen) < 2:
        return None
    ends = [t for _, t in seen]
    per_epoch = statistics.mean(ends[i] - ends[i - 1] for i in range(1, len(ends)))
    return ends[-1] + (a.epochs - len(seen)) * per_epoch


def timed_run(cmd, log_path, read_epochs, out, stop_signal):
    """Runs cmd as one process; follows its epochs; stops and extrapolates a run projected past
    --max-run-minutes. Returns the measurement."""
    load, waited = wait_for_quiet()
    b0 = busy_seconds()
    t0 = time.perf_counter()
    with open(log_path, "w") as lf:
        p = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, env=env)
    seen, stopped, status, ru = [], False, None, None
    while status is None:
        pid, st, r = os.wait4(p.pid, os.WNOHANG)
        if pid:
            status, ru = st, r
            p.returncode = os.waitstatus_to_exitcode(st)
            break
        time.sleep(0.25)
        now = time.perf_counter() - t0
        for e in read_epochs(out, log_path)[len(seen):]:
            seen.append((e[0], now))
        proj = projection(seen)
        if not stopped and proj is not None and len(seen) < a.epochs and \
                proj > 60 * a.max_run_minutes:
            log(f"projected {proj:.0f} s > {a.max_run_minutes:g} min after epoch {len(seen)}: "
                f"stopping ({'SIGINT' if stop_signal == signal.SIGINT else 'SIGTERM'})")
            p.send_signal(stop_signal)
            stopped = True
    wall = time.perf_counter() - t0
    eps = read_epochs(out, log_path)
    for e in eps[len(seen):]:          # epochs that ended just before the exit
        seen.append((e[0], wall))
    if p.returncode != 0 and not stopped:
        with open(log_path) as f:
            sys.exit(f"finetune_compare: {' '.join(cmd)} failed ({p.returncode}):\n"
                     f"{f.read()[-2000:]}")
    own = ru.ru_utime + ru.ru_stime
    n_done = len(eps)
    return {"cmd": " ".join(cmd), "wall_s": round(wall, 2), "stopped": stopped,
            "epochs_run": n_done, "test_acc": eps[-1][1] if eps else None,
            "seconds": round(wall if not stopped else projection(seen[:n_done]), 2),
            "epoch_ends_s": [round(t, 2) for _, t in seen[:n_done]],
            "train_loop_s": [e[2] for e in eps],
            "peak_rss_mb": round(ru.ru_maxrss / 1024, 1), "cpu_s": round(own, 1),
            "load_start": load, "load_waited_s": round(waited), "load_end": load1(),
            "others_cpu": round(max(0.0, (busy_seconds() - b0 - own) / (wall * NCPU)), 3)}


FEATURES = re.compile(r"features \((train|test)\) (\d+)/(\d+)\s+([\d.]+) img/s")


def feature_rates(log_path):
    """The feature-extraction images/s that `train` printed last for each split."""
    rates = {}
    with open(log_path, errors="replace") as f:
        for m in FEATURES.finditer(f.read()):
            rates[m.group(1)] = float(m.group(4))
    return rates


def run_config(config, model, weights, data, work, tag):
    log_path = os.path.join(work, f"{tag}.log")
    if config == "pytorch":
        res = timed_run(torch_cmd(model, weights, data), log_path, epochs_torch, None,
                        signal.SIGTERM)
    else:
        out = os.path.join(work, "runs", tag)
        shutil.rmtree(out, ignore_errors=True)
        res = timed_run(ours_cmd(model, weights, data, out, config == "ours_bn_train"),
                        log_path, epochs_ours, out, signal.SIGINT)
        res["feature_img_s"] = feature_rates(log_path)
    res.update(config=config, model=model, log=log_path)
    log(f"{tag}: {res['wall_s']:.1f} s wall"
        + (f" (stopped after {res['epochs_run']} epochs; projected {res['seconds']:.0f} s)"
           if res["stopped"] else "")
        + f", test acc {res['test_acc']}, peak RSS {res['peak_rss_mb']:.0f} MB, load "
        f"{res['load_start']:.2f} at the start, others used {100 * res['others_cpu']:.0f}% "
        "of the CPU")
    return res


# ---- report ----

DISTURBED = 0.10  # runs where other processes used more of the CPU are marked as such


def fmt_s(r):
    if r is None:
        return "-"
    s = f"{r['seconds']:.1f}"
    if r["stopped"]:
        s += f" (projected from {r['epochs_run']} epochs)"
    if r["others_cpu"] > DISTURBED:
        s += f" (disturbed: others used {100 * r['others_cpu']:.0f}% of the CPU)"
    return s


def fmt_acc(r):
    if r is None or r["test_acc"] is None:
        return "-"
    acc = f"{100 * r['test_acc']:.1f}%"
    return acc + f" (after {r['epochs_run']})" if r["stopped"] else acc


def report(runs):
    print("| backbone | round | ours s (cache) | PyTorch s | speedup | ours test acc | "
          "PyTorch test acc | ours --frozen-bn train s | its test acc | ours / PyTorch / "
          "bn-train peak RSS MB | load at start (ours / PyTorch / bn-train) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (model, rnd), by in runs.items():
        o, t, b = by.get("ours"), by.get("pytorch"), by.get("ours_bn_train")
        speed = f"**{t['seconds'] / o['seconds']:.2f}x**" if o and t else "-"
        rss = " / ".join(f"{r['peak_rss_mb']:.0f}" if r else "-" for r in (o, t, b))
        loads = " / ".join(f"{r['load_start']:.2f}" if r else "-" for r in (o, t, b))
        print(f"| {model} | {rnd} | {fmt_s(o)} | {fmt_s(t)} | {speed} | {fmt_acc(o)} | "
              f"{fmt_acc(t)} | {fmt_s(b)} | {fmt_acc(b)} | {rss} | {loads} |")
    print()
    print("| run | wall s | epochs run | epoch ends (s from launch) | others' CPU share | "
          "load start / end | feature img/s (train / test) |")
    print("|---|---|---|---|---|---|---|")
    for (model, rnd), by in runs.items():
        for config, r in by.items():
            fr = r.get("feature_img_s") or {}
            feat = f"{fr.get('train', '-')} / {fr.get('test', '-')}" if fr else "-"
            ends = ", ".join(f"{t:.0f}" for t in r["epoch_ends_s"])
            print(f"| {model} r{rnd} {config} | {r['wall_s']:.1f} | {r['epochs_run']} | {ends} | "
                  f"{100 * r['others_cpu']:.0f}% | {r['load_start']:.2f} / {r['load_end']:.2f} "
                  f"| {feat} |")


def main():
    models = a.models.split(",")
    configs = a.configs.split(",")
    work = a.work or tempfile.mkdtemp(prefix="finetune_compare_")
    os.makedirs(work, exist_ok=True)
    try:
        data, weights = prepare(work, models)
        runs = {}
        for model in models:
            rounds = a.rounds_mobilenet if model == "mobilenet_v2" else 1
            for rnd in range(1, rounds + 1):
                t_round = time.perf_counter()
                left = 60 * a.budget_minutes - (t_round - T0)
                if rnd > 1 and left < last_round_s * 1.2:
                    log(f"{model} round {rnd} skipped: {left:.0f} s of the budget left, the last "
                        f"round took {last_round_s:.0f} s")
                    break
                by = runs.setdefault((model, rnd), {})
                for config in configs:
                    by[config] = run_config(config, model, weights[model], data, work,
                                            f"{model}-r{rnd}-{config}")
                last_round_s = time.perf_counter() - t_round
        report(runs)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"argv": sys.argv, "total_s": time.perf_counter() - T0,
                           "runs": [r for by in runs.values() for r in by.values()]}, f,
                          indent=1)
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)


main()
