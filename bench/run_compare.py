"""Whole training runs, process start to exit: `train` (its test pass each epoch and its three
checkpoint files included) against the study's PyTorch script (bench/torch_run.py: test pass each
epoch, no checkpoint) on the same synthetic data, settings and thread count, alternating in each
round. Prints a markdown table of medians: wall seconds, the ratio, and peak resident memory (the
whole process's, and above its post-start-up baseline: PyTorch's RSS after its imports, ours that
of `train --help`, which loads the same libraries).

The two runs of issue 14:
  small  1 epoch of 96 training images (and 24 test) of 150x150, full width, batch 8, RMSprop
  many   3 epochs of 10,002 training images (and 2,004 test) of 32x32, width 0.25, batch 32, Adam

  /usr/bin/python3 bench/run_compare.py --build build --runs small,many --rounds 2
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--build", default="build")
ap.add_argument("--runs", default="small,many")
ap.add_argument("--rounds", type=int, default=2)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--model", default="simple")
ap.add_argument("--keep", help="keep the datasets and run folders here")
a = ap.parse_args()

RUNS = {
    # name: (make_dataset args, common settings)
    "small": (["--train-per-class", "16", "--test-per-class", "4", "--pred", "0", "--size", "150"],
              {"epochs": 1, "width": 1.0, "batch": 8, "optimizer": "rmsprop", "image_size": 64,
               "lr": 1e-4}),
    "many": (["--train-per-class", "1667", "--test-per-class", "334", "--pred", "0", "--size", "32"],
             {"epochs": 3, "width": 0.25, "batch": 32, "optimizer": "adam", "image_size": 32,
              "lr": 1e-3}),
}


def timed(cmd, env):
    """Runs cmd under GNU time: (wall seconds, peak RSS MB, stdout)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        p = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", tf.name] + cmd, env=env,
                           capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"run_compare: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
        wall, kb = tf.read().split()[-2:]
    return float(wall), int(kb) / 1024.0, p.stdout


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def main():
    root = a.keep or tempfile.mkdtemp(prefix="run_compare_")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    train = os.path.join(a.build, "train")
    _, ours_base, _ = timed([train, "--help"], env)
    rows = []
    for name in a.runs.split(","):
        ds_args, s = RUNS[name]
        ds = os.path.join(root, f"ds_{name}")
        if not os.path.isdir(os.path.join(ds, "seg_train")):
            subprocess.run([os.path.join(a.build, "make_dataset"), "--out", ds] + ds_args,
                           check=True, capture_output=True)
        res = {"ours": [], "torch": []}
        for rnd in range(a.rounds):
            for impl in ("ours", "torch") if rnd % 2 == 0 else ("torch", "ours"):
                load0 = loadavg()
                if impl == "ours":
                    out = os.path.join(root, f"run_{name}_{rnd}")
                    shutil.rmtree(out, ignore_errors=True)
                    cmd = [train, "--model", a.model, "--train-dir", os.path.join(ds, "seg_train"),
                           "--test-dir", os.path.join(ds, "seg_test"), "--epochs", str(s["epochs"]),
                           "--batch-size", str(s["batch"]), "--lr", str(s["lr"]),
                           "--optimizer", s["optimizer"], "--scheduler", "none",
                           "--image-size", str(s["image_size"]), "--width", str(s["width"]),
                           "--threads", str(a.threads), "--out", out, "--no-plot"]
                    wall, peak, _ = timed(cmd, env)
                    base = ours_base
                else:
                    cmd = ["/usr/bin/python3", os.path.join(here, "torch_run.py"), "--data", ds,
                           "--model", a.model, "--epochs", str(s["epochs"]),
                           "--batch-size", str(s["batch"]), "--lr", str(s["lr"]),
                           "--optimizer", s["optimizer"], "--image-size", str(s["image_size"]),
                           "--width", str(s["width"]), "--threads", str(a.threads)]
                    wall, peak, stdout = timed(cmd, env)
                    base = json.loads(stdout.strip().splitlines()[-1])["baseline_rss_mb"]
                res[impl].append({"wall": wall, "peak": peak, "above": peak - base,
                                  "load": max(load0, loadavg())})
                print(f"{name} round {rnd + 1} {impl}: {wall:.1f} s, peak {peak:.0f} MB "
                      f"({peak - base:.0f} above baseline), load {load0:.2f}", file=sys.stderr)
        med = {k: {f: statistics.median(r[f] for r in v) for f in ("wall", "peak", "above", "load")}
               for k, v in res.items()}
        rows.append((name, s, med))
    print(f"| run | ours s | PyTorch s | PyTorch/ours | ours peak MB (above baseline) | "
          f"PyTorch peak MB (above baseline) |")
    print("|---|---|---|---|---|---|")
    for name, s, m in rows:
        o, t = m["ours"], m["torch"]
        print(f"| {name}: {s['epochs']} epoch(s), width {s['width']}, batch {s['batch']}, "
              f"{s['optimizer']} | {o['wall']:.1f} | {t['wall']:.1f} | {t['wall'] / o['wall']:.2f} | "
              f"{o['peak']:.0f} ({o['above']:.0f}) | {t['peak']:.0f} ({t['above']:.0f}) |")
    print(f"\nmedians of {a.rounds} rounds; {a.threads} threads; load average at most "
          f"{max(m[k]['load'] for _, _, m in rows for k in m):.2f} during the runs")
    if not a.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
