"""CPU training-step comparison: for each custom CNN, runs the engine's bench_train_step and
PyTorch's torch_train_step.py (same model, batch, threads) alternately in one run, and prints a
markdown table with images/s, the ratio and memory. Memory is compared as each process's peak
resident set above its own baseline, taken after start-up (libraries loaded, threads set) and
before the model is built: whole-process RSS would charge PyTorch's side with the interpreter and
libtorch's fixed cost. The whole-process peaks are printed too, labelled as such.

  /usr/bin/python3 bench/cpu_train_step.py --build build --threads 2 --steps 5 --rounds 2
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--build", default=os.path.join(here, "..", "build"))
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--rounds", type=int, default=2, help="alternating runs per implementation")
ap.add_argument("--models", default="simple,bn_dropout,sigmoid,tanh")
ap.add_argument("--widths", default="1", help="comma-separated model widths, e.g. 1,0.5,0.25")
ap.add_argument("--image-size", type=int, default=64)
ap.add_argument("--json", help="write all measurements here")
a = ap.parse_args()

engine_bin = os.path.join(a.build, "bench", "bench_train_step")
if not os.path.exists(engine_bin):
    sys.exit(f"cpu_train_step: {engine_bin} not found: build the project first")
env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
common = ["--batch", str(a.batch), "--steps", str(a.steps), "--threads", str(a.threads),
          "--image-size", str(a.image_size)]


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


rows, raw = [], []
for w, m in [(w, m) for w in a.widths.split(",") for m in a.models.split(",")]:
    ours, ref = [], []
    for _ in range(a.rounds):
        ours.append(run([engine_bin, "--model", m, "--width", w] + common))
        ref.append(run([sys.executable, os.path.join(here, "torch_train_step.py"), "--model", m,
                        "--width", w] + common))
    raw += ours + ref
    o_ips = statistics.median(r["images_per_s"] for r in ours)
    r_ips = statistics.median(r["images_per_s"] for r in ref)
    mem = [max(r[k] for r in side) for k in ("peak_above_baseline_mb", "baseline_rss_mb",
                                               "peak_rss_mb") for side in (ours, ref)]
    rows.append((f"{m} w{w}", o_ips, r_ips, o_ips / r_ips, *mem))
    print(f"{m} width {w}: engine {o_ips:.3f} img/s, {ref[0]['impl']} {r_ips:.3f} img/s", file=sys.stderr)

print("| model | engine img/s | PyTorch img/s | ratio | engine peak above baseline MB | "
      "PyTorch peak above baseline MB | engine / PyTorch baseline RSS MB | "
      "engine / PyTorch whole-process peak RSS MB |")
print("|---|---|---|---|---|---|---|---|")
for m, o, r, q, o_above, r_above, o_base, r_base, o_peak, r_peak in rows:
    print(f"| {m} | {o:.3f} | {r:.3f} | {q:.2f}x | {o_above:.0f} | {r_above:.0f} | "
          f"{o_base:.0f} / {r_base:.0f} | {o_peak:.0f} / {r_peak:.0f} |")
if a.json:
    with open(a.json, "w") as f:
        json.dump(raw, f, indent=1)
