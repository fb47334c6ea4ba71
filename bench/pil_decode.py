"""The PIL + torchvision side of bench_decode's decode mode: the same file list, the same output
size, one thread, and per file exactly the study's evaluation transform,

    T.ToTensor()(T.Resize((S, S))(Image.open(p).convert("RGB")))

timed over R passes after one untimed warm-up pass (which also fills the page cache, as
bench_decode's does), printing one JSON line with the fields bench_decode prints.

  /usr/bin/python3 bench/pil_decode.py --files LIST.txt --size 64 --repeat 5
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torchvision
import torchvision.transforms as T
from PIL import Image, features

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--files", required=True, help="one image path per line")
ap.add_argument("--size", type=int, default=64)
ap.add_argument("--repeat", type=int, default=5)
a = ap.parse_args()
if a.size < 1 or a.repeat < 1:
    sys.exit("pil_decode: --size and --repeat must be >= 1")
try:
    with open(a.files) as f:
        paths = [line.rstrip("\n") for line in f if line.strip()]
except OSError as e:
    sys.exit(f"pil_decode: cannot read file list {a.files}: {e.strerror}")
if not paths:
    sys.exit(f"pil_decode: file list {a.files} is empty")

torch.set_num_threads(1)
resize = T.Resize((a.size, a.size))  # PIL input: Image.resize(..., BILINEAR), as the study
to_tensor = T.ToTensor()
clock = time.perf_counter


def one_pass(keep_sum):
    t_decode = t_transform = 0.0
    total = 0.0
    for p in paths:
        t0 = clock()
        # Image.open only parses the header; convert("RGB") decodes (a no-op copy for an RGB JPEG
        # apart from the decode itself).
        img = Image.open(p).convert("RGB")
        t1 = clock()
        x = to_tensor(resize(img))
        t2 = clock()
        t_decode += t1 - t0
        t_transform += t2 - t1
        if keep_sum:
            total += float(x.sum())
    return t_decode, t_transform, total


_, _, checksum = one_pass(True)  # warm-up: page cache, imports' lazy initialisation
passes = [one_pass(False)[:2] for _ in range(a.repeat)]
totals = [d + t for d, t in passes]
med = statistics.median(totals)
split = min(passes, key=lambda dt: abs(sum(dt) - med))  # the median pass's own split
n = len(paths)
mean_bytes = sum(os.path.getsize(p) for p in paths) / n
print(json.dumps({
    "impl": f"PIL {Image.__version__} (libjpeg API {features.version('jpg')}"
            f"{', libjpeg-turbo' if features.check_feature('libjpeg_turbo') else ''}) + "
            f"torchvision {torchvision.__version__}",
    "mode": "decode", "size": a.size, "files": n, "repeat": a.repeat,
    "images_per_s": round(n / med, 2), "pass_s": round(med, 6),
    "decode_s": round(split[0], 6), "transform_s": round(split[1], 6),
    "decode_us_per_image": round(1e6 * split[0] / n, 2),
    "transform_us_per_image": round(1e6 * split[1] / n, 2),
    "mean_file_bytes": round(mean_bytes, 1),
    "mean_value": round(checksum / (n * 3 * a.size * a.size), 6),
}))
