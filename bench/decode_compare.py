"""Image input throughput: the engine's decode + resize + to-tensor (bench_decode) against PIL +
torchvision transforms (bench/pil_decode.py) on the same JPEG files in the same run, per core,
at 64x64 and 224x224; then the engine's threaded DataLoader against the rate at which a CPU
training step consumes images. Prints markdown tables.

  /usr/bin/python3 bench/decode_compare.py --build build-bench --rounds 3 --photo-like

Data: --data DIR (a Kaggle-layout folder, an ImageFolder or any folder of JPEGs), or by default a
synthetic dataset written by DIR/make_dataset into a temporary folder. The synthetic scenes are
flat-shaded shapes, so their JPEGs are small and quick to decode; --photo-like also writes copies
of the same images with added multi-scale texture and grain (PIL, quality 90, 4:2:0), whose
JPEGs are about the size of the real Intel photographs (~10-15 KB at 150x150), and runs both.

Per-core numbers: both sides run single-threaded, pinned to CPU 0 with taskset when it exists,
and read the files from the page cache (each does an untimed warm-up pass first). Ours and PIL
alternate `rounds` times so that machine noise hits both; medians are reported.
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
ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                             formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--build", default=os.path.join(here, "..", "build"),
                help="build folder holding bench/bench_decode and make_dataset")
ap.add_argument("--data", help="folder of JPEGs (default: a synthetic dataset in a temp folder)")
ap.add_argument("--files", type=int, default=600, help="first N JPEGs in sorted order")
ap.add_argument("--sizes", default="64,224")
ap.add_argument("--rounds", type=int, default=3, help="alternating runs per implementation")
ap.add_argument("--repeat", type=int, default=5, help="timed passes over the files per run")
ap.add_argument("--photo-like", action="store_true",
                help="also run on noisier, photo-sized JPEGs made from the same images")
ap.add_argument("--loader-threads", type=int, default=2)
ap.add_argument("--loader-batch", type=int, default=8)
ap.add_argument("--loader-size", type=int, default=64)
ap.add_argument("--loader-epochs", type=int, default=4)
ap.add_argument("--step-images-per-s", type=float, default=6.9,
                help="images/s a CPU training step consumes (bench/RESULTS.md: simple CNN, "
                     "batch 8, 64x64, 2 threads: 6.885)")
ap.add_argument("--json", help="write every measurement here")
a = ap.parse_args()

t_start = time.time()
bench_bin = os.path.join(a.build, "bench", "bench_decode")
if not os.path.exists(bench_bin):
    sys.exit(f"decode_compare: {bench_bin} not found: build the target bench_decode first")
if a.rounds < 1 or a.repeat < 1 or a.files < 1:
    sys.exit("decode_compare: --rounds, --repeat and --files must be >= 1")
sizes = [int(s) for s in a.sizes.split(",")]
pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
# One thread everywhere in the per-core runs (OpenMP/OpenBLAS in ours, intra-op in PyTorch).
env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
tmp = tempfile.mkdtemp(prefix="decode_compare_")


def run_json(cmd, environ=env):
    p = subprocess.run(cmd, capture_output=True, text=True, env=environ)
    if p.returncode != 0:
        sys.exit(f"decode_compare: {' '.join(cmd)} failed ({p.returncode}): "
                 f"{p.stderr.strip().splitlines()[-1] if p.stderr.strip() else 'no message'}")
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def list_jpegs(root):
    out = []
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if not x.startswith(".")]
        out += [os.path.join(d, f) for f in files
                if not f.startswith(".") and f.lower().endswith((".jpg", ".jpeg"))]
    return sorted(out)


def loader_root(root):
    """The folder the loader should scan: seg_train of a Kaggle layout, else root itself."""
    for cand in (os.path.join(root, "seg_train"), root):
        if os.path.isdir(cand):
            return cand
    return root


def write_photo_like(paths, src_root, out_root):
    """Copies of paths (same relative layout, so class folders survive) with texture and grain.

    Real photographs carry detail at every scale, which is what makes their JPEGs bigger and
    slower to entropy-decode than flat shapes. Noise at 1, 2, 4 and 8 pixel scales (nearest-
    upsampled, then one bilinear blur by PIL) plus per-pixel grain approximates that; each
    file's noise is seeded by its index, so a rerun writes the same bytes.
    """
    import numpy as np
    from PIL import Image
    out = []
    for i, p in enumerate(paths):
        rng = np.random.default_rng(1000 + i)
        img = np.asarray(Image.open(p).convert("RGB"), dtype=np.float32)
        h, w, _ = img.shape
        tex = np.zeros((h, w, 1), np.float32)
        for cell, amp in ((8, 14.0), (4, 10.0), (2, 8.0)):
            small = rng.normal(0, amp, ((h + cell - 1) // cell, (w + cell - 1) // cell, 1))
            tex += np.repeat(np.repeat(small, cell, 0), cell, 1)[:h, :w].astype(np.float32)
        tex_img = Image.fromarray(np.clip(tex[..., 0] + 128, 0, 255).astype(np.uint8))
        tex = np.asarray(tex_img.resize((w, h), Image.BILINEAR, reducing_gap=None),
                         np.float32)[..., None] - 128
        grain = rng.normal(0, 6.0, (h, w, 3)).astype(np.float32)
        pix = np.clip(img + tex + grain, 0, 255).astype(np.uint8)
        dst = os.path.join(out_root, os.path.relpath(p, src_root))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        Image.fromarray(pix).save(dst, quality=90)
        out.append(dst)
    return out


# --- data ---------------------------------------------------------------------------------------
if a.data:
    if not os.path.isdir(a.data):
        sys.exit(f"decode_compare: --data {a.data} is not a folder")
    base_root = loader_root(a.data)
    base_label = f"`{a.data}`"
else:
    make = os.path.join(a.build, "make_dataset")
    if not os.path.exists(make):
        sys.exit(f"decode_compare: {make} not found: build the target make_dataset or pass --data")
    synth = os.path.join(tmp, "synthetic")
    per_class = (a.files + 5) // 6
    p = subprocess.run([make, "--out", synth, "--train-per-class", str(per_class),
                        "--test-per-class", "1", "--pred", "1"], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"decode_compare: make_dataset failed: {p.stderr.strip()}")
    base_root = os.path.join(synth, "seg_train")
    base_label = f"synthetic (make_dataset, {per_class}/class, 150x150, quality 90)"
base_files = list_jpegs(base_root)[:a.files]
if not base_files:
    sys.exit(f"decode_compare: no JPEG files under {base_root}")
datasets = [(base_label, base_files, base_root)]
if a.photo_like:
    photo_root = os.path.join(tmp, "photo_like")
    datasets.append(("photo-like (the same images + texture and grain, PIL quality 90)",
                     write_photo_like(base_files, base_root, photo_root), photo_root))


def jpeg_facts(paths):
    from PIL import Image
    sizes_b = [os.path.getsize(p) for p in paths]
    with Image.open(paths[0]) as im:
        dims = f"{im.width}x{im.height}"
        # JpegImagePlugin's layer info: (id, h-sampling, v-sampling, table) per component.
        samp = {(1, 1): "4:4:4", (2, 2): "4:2:0", (2, 1): "4:2:2"}.get(
            tuple(im.layer[0][1:3]) if getattr(im, "layer", None) else None, "?")
    return statistics.mean(sizes_b), dims, samp


# --- per-core decode + resize + to-tensor -------------------------------------------------------
raw, decode_rows = [], []
for label, files, _ in datasets:
    list_path = os.path.join(tmp, f"files_{len(decode_rows)}.txt")
    with open(list_path, "w") as f:
        f.write("\n".join(files) + "\n")
    mean_bytes, dims, samp = jpeg_facts(files)
    for s in sizes:
        args = ["--files", list_path, "--size", str(s), "--repeat", str(a.repeat)]
        ours, ref = [], []
        for _ in range(a.rounds):
            ours += run_json(pin + [bench_bin, "--mode", "decode"] + args)
            ref += run_json(pin + [sys.executable, os.path.join(here, "pil_decode.py")] + args)
        raw += [dict(r, data=label) for r in ours + ref]
        med = {k: (statistics.median(r[k] for r in ours), statistics.median(r[k] for r in ref))
               for k in ("images_per_s", "decode_us_per_image", "transform_us_per_image",
                         "mean_value")}
        if abs(med["mean_value"][0] - med["mean_value"][1]) > 1.0 / 255:
            print(f"warning: mean output value differs: ours {med['mean_value'][0]:.5f}, "
                  f"PIL {med['mean_value'][1]:.5f}", file=sys.stderr)
        decode_rows.append((label, len(files), dims, samp, mean_bytes, s, med))
        o, r = med["images_per_s"]
        print(f"{label[:20]} {s}x{s}: ours {o:.0f} img/s, PIL {r:.0f} img/s ({o / r:.2f}x)",
              file=sys.stderr)

# --- loader --------------------------------------------------------------------------------------
loader_rows = []
loader_env = dict(env, OMP_NUM_THREADS=str(a.loader_threads))
for label, files, root in datasets:
    runs = []
    for _ in range(a.rounds):
        runs += run_json([bench_bin, "--mode", "loader", "--data", root,
                          "--threads", str(a.loader_threads), "--batch", str(a.loader_batch),
                          "--size", str(a.loader_size), "--epochs", str(a.loader_epochs)],
                         loader_env)
    raw += [dict(r, data=label) for r in runs]
    phase = {ph: statistics.median(r["images_per_s"] for r in runs if r["phase"] == ph)
             for ph in ("first_epoch", "cached_epochs", "no_cache")}
    n_images = runs[0]["images"]
    loader_rows.append((label, n_images, phase))

# --- report --------------------------------------------------------------------------------------
cpu = "unknown CPU"
try:
    with open("/proc/cpuinfo") as f:
        cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
except (OSError, StopIteration):
    pass
ref_impl = next(r["impl"] for r in raw if r["impl"] != "engine")
print(f"Machine: {cpu}, {os.cpu_count()} cores. Per-core rows pinned with "
      f"{'`taskset -c 0`' if pin else 'no pinning (taskset not found)'}; "
      f"reference: {ref_impl}, torch.set_num_threads(1).")
print(f"Command: `{' '.join([sys.executable] + sys.argv)}`")
print(f"{a.rounds} alternating rounds x {a.repeat} passes over each file list, medians.\n")
print("Decode + resize to SxS + to float CHW tensor, one core "
      "(ours: read_file_bytes, decode_image, resize_bilinear, to_chw_float; "
      "PIL: `ToTensor()(Resize((S,S))(Image.open(p).convert('RGB')))`):\n")
print("| data | files | JPEG | mean JPEG bytes | S | ours img/s | PIL img/s | ratio | "
      "ours decode / transform us | PIL decode / transform us |")
print("|---|---|---|---|---|---|---|---|---|---|")
for label, n, dims, samp, mean_bytes, s, med in decode_rows:
    o, r = med["images_per_s"]
    od, rd = med["decode_us_per_image"]
    ot, rt = med["transform_us_per_image"]
    print(f"| {label} | {n} | {dims} {samp} | {mean_bytes:.0f} | {s} | {o:.0f} | {r:.0f} | "
          f"{o / r:.2f}x | {od:.0f} / {ot:.0f} | {rd:.0f} / {rt:.0f} |")
print("\n(decode = read the file + decode to RGB; transform = resize + to tensor; the PIL decode "
      "time includes Image.open's Python-side header parsing.)\n")
print(f"DataLoader, {a.loader_threads} threads, batch {a.loader_batch}, "
      f"{a.loader_size}x{a.loader_size}, shuffled, no augmentation, batches drained as fast as "
      f"they come (the loader alone: in training it shares the cores with the step); a CPU "
      f"training step consumes {a.step_images_per_s:g} img/s:\n")
print("| data | images/epoch | first epoch (decode) img/s | cached epochs img/s | "
      "no cache img/s | loader/step ratio, decoding | loader/step ratio, cached |")
print("|---|---|---|---|---|---|---|")
for label, n, ph in loader_rows:
    decoding = min(ph["first_epoch"], ph["no_cache"])
    print(f"| {label} | {n} | {ph['first_epoch']:.0f} | {ph['cached_epochs']:.0f} | "
          f"{ph['no_cache']:.0f} | {decoding / a.step_images_per_s:.0f}x | "
          f"{ph['cached_epochs'] / a.step_images_per_s:.0f}x |")
print(f"\nTotal run time: {time.time() - t_start:.0f} s.")
if a.json:
    with open(a.json, "w") as f:
        json.dump(raw, f, indent=1)
shutil.rmtree(tmp, ignore_errors=True)
