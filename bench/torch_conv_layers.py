"""PyTorch's side of bench_conv_cpu: the study's nine 3x3 conv layers (channels scaled by --width,
sides --image-size, /2, /4 as in the models), forward, backward-data and backward-weight (with
the bias gradient, as the engine's), median of --reps after one warm-up, printed as the same
markdown table with the algorithm column "pytorch".

  OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_conv_layers.py --batch 32 --width 0.25 --image-size 32
"""
import argparse
import statistics
import time

import torch

ap = argparse.ArgumentParser()
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--reps", type=int, default=5)
ap.add_argument("--width", type=float, default=1.0)
ap.add_argument("--image-size", type=int, default=64)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads)


def ch(c):
    return max(1, round(c * a.width))


s = a.image_size
layers = [(3, ch(32), s), (ch(32), ch(64), s), (ch(64), ch(64), s),
          (ch(64), ch(128), s // 2), (ch(128), ch(256), s // 2), (ch(256), ch(256), s // 2),
          (ch(256), ch(512), s // 4), (ch(512), ch(1024), s // 4), (ch(1024), ch(1024), s // 4)]


def timed(fn):
    fn()
    t = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return statistics.median(t)


print(f"threads {a.threads}, batch {a.batch}, median of {a.reps}, torch {torch.__version__}\n")
print("| layer | algo | fwd ms | bwd-data ms | bwd-weight ms | fwd GF/s | step GF/s |")
print("|---|---|---|---|---|---|---|")
conv_bwd = torch.ops.aten.convolution_backward
with torch.no_grad():
    for cin, cout, hw in layers:
        x = torch.rand(a.batch, cin, hw, hw)
        w = torch.rand(cout, cin, 3, 3) * 0.2 - 0.1
        b = torch.rand(cout)
        y = torch.nn.functional.conv2d(x, w, b, padding=1)
        args = ([cout], [1, 1], [1, 1], [1, 1], False, [0, 0], 1)
        f = timed(lambda: torch.nn.functional.conv2d(x, w, b, padding=1))
        d = timed(lambda: conv_bwd(y, x, w, *args, [True, False, False]))
        g = timed(lambda: conv_bwd(y, x, w, *args, [False, True, True]))
        flops = 2.0 * a.batch * cout * cin * 9 * hw * hw
        print(f"| {cin}->{cout} @{hw}x{hw} | pytorch | {f * 1e3:.1f} | {d * 1e3:.1f} | "
              f"{g * 1e3:.1f} | {flops / f / 1e9:.0f} | {3 * flops / (f + d + g) / 1e9:.0f} |")
