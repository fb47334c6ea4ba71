#!/usr/bin/python3
"""Writes a fake but schema-valid explorer report (docs/EXPLORE.md) for developing the page and for
the page-only browser test at scale: the page's three files, run.js, data/report.js and thumbnail
sprite sheets drawn with PIL.

  make_fake_report.py --out DIR --images 24000            synthetic images (paths that do not exist)
  make_fake_report.py --out DIR --data DATASET_DIR        the real files of a Kaggle-layout folder
                                                          (seg_train, seg_test, seg_pred): real
                                                          counts, sizes, luma statistics, thumbnails

Everything the checkpoint adds (predictions, probabilities, evaluation, label errors) is made up
but self-consistent: each confusion matrix equals the counts of (label, pred) in `images`, so the
page can be checked against the report exactly. --no-checkpoint leaves that part out.
"""
import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import time

import numpy as np
from PIL import Image

CLASSES = ["buildings", "forest", "glacier", "mountain", "sea", "street"]
FLAGS = ["dark", "bright", "blurry", "low_information", "odd_size", "grayscale",
         "exact_duplicate", "near_duplicate", "leakage", "unlabelled_duplicate",
         "label_conflict", "mistakenness", "confident_learning"]
BIT = {f: 1 << k for k, f in enumerate(FLAGS)}
CLASS_RGB = np.array([[150, 120, 100], [40, 110, 50], [200, 220, 240], [120, 110, 130],
                      [40, 90, 170], [100, 100, 100]], dtype=np.float32)
SIDE, COLS, PER_SHEET = 48, 32, 1024
PAGE_FILES = ["index.html", "explore.js", "explore.css"]


def split_dir(root, kaggle):
    """The Kaggle layout's seg_x/seg_x when it is nested, else seg_x."""
    d = os.path.join(root, kaggle)
    inner = os.path.join(d, kaggle)
    return inner if os.path.isdir(inner) else d


def scan_data(root):
    """Splits and images of a real Kaggle-layout folder, in the report's order."""
    root = os.path.abspath(root)
    splits, items = [], []  # items: (split index, rel path, label, PIL image or None)
    for name, kaggle, labelled in [("train", "seg_train", True), ("test", "seg_test", True),
                                   ("unlabelled", "seg_pred", False)]:
        d = split_dir(root, kaggle)
        if not os.path.isdir(d):
            continue
        rels = []
        for dirpath, dirnames, files in os.walk(d):
            dirnames[:] = [x for x in dirnames if not x.startswith(".")]
            for f in files:
                if f.startswith(".") or not f.lower().endswith((".jpg", ".jpeg", ".png")):
                    continue
                rels.append(os.path.relpath(os.path.join(dirpath, f), d).replace(os.sep, "/"))
        rels.sort()
        s = {"name": name, "dir": d, "labelled": labelled, "images": 0, "first": len(items),
             "bad": [], "hidden": 0, "other": 0}
        for rel in rels:
            try:
                im = Image.open(os.path.join(d, rel))
                im.load()
                im = im.convert("RGB")
            except Exception as e:  # a bad file is reported, not used
                s["bad"].append({"path": os.path.join(d, rel), "reason": str(e)})
                continue
            label = CLASSES.index(rel.split("/")[0]) if labelled and "/" in rel else -1
            items.append((len(splits), rel, label, im))
        s["images"] = len(items) - s["first"]
        splits.append(s)
    return root, splits, items


def synthetic(n, rng):
    """Kaggle's proportions (14034 / 3000 / 7301) of n made-up images."""
    root = "/nonexistent/intel-image-classification"
    counts = [round(n * 14034 / 24335), round(n * 3000 / 24335)]
    counts.append(n - sum(counts))
    splits, items = [], []
    for si, (name, kaggle, labelled) in enumerate([("train", "seg_train", True),
                                                    ("test", "seg_test", True),
                                                    ("unlabelled", "seg_pred", False)]):
        d = f"{root}/{kaggle}/{kaggle}"
        first = len(items)
        if labelled:
            rels = [(f"{CLASSES[i % 6]}/{i // 6:05d}.jpg", i % 6) for i in range(counts[si])]
        else:
            rels = [(f"{i:05d}.jpg", -1) for i in range(counts[si])]
        rels.sort()
        for rel, label in rels:
            items.append((si, rel, label, None))
        bad = [{"path": f"{d}/{CLASSES[0]}/broken{k}.jpg",
                "reason": "truncated JPEG: no end-of-image marker"} for k in range(si == 0 and 2)]
        splits.append({"name": name, "dir": d, "labelled": labelled, "images": len(rels),
                       "first": first, "bad": bad, "hidden": 1 if si == 0 else 0, "other": 0})
    return root, splits, items


def synthetic_thumbs(labels, rng):
    """side x side thumbnails: the class's colour, a gradient and noise (in chunks: 24,000 at once
    would take gigabytes as floats)."""
    n = len(labels)
    out = np.empty((n, SIDE, SIDE, 3), np.uint8)
    yy = np.linspace(-40, 40, SIDE, dtype=np.float32)[None, :, None, None]
    xx = np.linspace(-20, 20, SIDE, dtype=np.float32)[None, None, :, None]
    for a in range(0, n, 1024):
        lab = labels[a:a + 1024]
        m = len(lab)
        base = np.where(lab[:, None] >= 0, CLASS_RGB[np.maximum(lab, 0)], 128.0).astype(np.float32)
        base += rng.normal(0, 25, (m, 3)).astype(np.float32)
        phase = rng.uniform(0, 6.28, (m, 1, 1, 1)).astype(np.float32)
        img = base[:, None, None, :] + yy + 15 * np.sin(xx / 4 + phase)
        img += rng.integers(-12, 13, (m, SIDE, SIDE, 3), dtype=np.int16)
        out[a:a + m] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def fit_thumb(im):
    """The image fitted into side x side, centred on grey 128, as the tool draws it."""
    w, h = im.size
    s = SIDE / max(w, h)
    tw, th = max(1, round(w * s)), max(1, round(h * s))
    out = Image.new("RGB", (SIDE, SIDE), (128, 128, 128))
    out.paste(im.resize((tw, th), Image.BILINEAR), ((SIDE - tw) // 2, (SIDE - th) // 2))
    return np.asarray(out)


def write_sheets(out, thumbs):
    os.makedirs(os.path.join(out, "thumbs"), exist_ok=True)
    sheets = []
    for s0 in range(0, len(thumbs), PER_SHEET):
        block = thumbs[s0:s0 + PER_SHEET]
        rows = math.ceil(len(block) / COLS)
        pad = np.full((rows * COLS - len(block), SIDE, SIDE, 3), 128, np.uint8)
        block = np.concatenate([block, pad])
        sheet = block.reshape(rows, COLS, SIDE, SIDE, 3).transpose(0, 2, 1, 3, 4)
        sheet = sheet.reshape(rows * SIDE, COLS * SIDE, 3)
        name = f"thumbs/sheet-{len(sheets):04d}.jpg"
        Image.fromarray(sheet).save(os.path.join(out, name), quality=85)
        sheets.append(name)
    return sheets


def luma_stats(thumbs):
    """Per-image brightness, contrast, blur (Laplacian variance), entropy of the luma histogram."""
    parts = [luma_chunk(thumbs[a:a + 2048]) for a in range(0, len(thumbs), 2048)]
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(5))


def luma_chunk(thumbs):
    y = thumbs.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    bright = y.mean(axis=(1, 2))
    contrast = y.std(axis=(1, 2))
    lap = (y[:, 1:-1, :-2] + y[:, 1:-1, 2:] + y[:, :-2, 1:-1] + y[:, 2:, 1:-1]
           - 4 * y[:, 1:-1, 1:-1])
    blur = lap.var(axis=(1, 2))
    ent = np.zeros(len(y))
    yi = np.clip(y, 0, 255).astype(np.int64)
    for i in range(len(y)):
        p = np.bincount(yi[i].ravel(), minlength=256) / yi[i].size
        p = p[p > 0]
        ent[i] = -(p * np.log2(p)).sum()
    spread = thumbs.max(axis=3).astype(int) - thumbs.min(axis=3)
    gray = (spread.max(axis=(1, 2)) <= 8).astype(int)
    return bright, contrast, blur, ent, gray


def prop(values, lo_q=0.5, hi_q=99.5):
    v = np.asarray(values, dtype=np.float64)
    lo, hi = float(np.percentile(v, lo_q)), float(np.percentile(v, hi_q))
    mn, mx = float(v.min()), float(v.max())
    hist = np.histogram(v, bins=40, range=(mn, mx if mx > mn else mn + 1))[0]
    return {"low": round(lo, 4), "high": round(hi, 4), "min": round(mn, 4), "max": round(mx, 4),
            "hist": [int(c) for c in hist]}


def groups_of(n, rng, count, size_max):
    idx = rng.permutation(n)
    out, k = [], 0
    for _ in range(count):
        sz = int(rng.integers(2, size_max + 1))
        if k + sz > n:
            break
        out.append(sorted(int(i) for i in idx[k:k + sz]))
        k += sz
    return out


def model_part(rep, labels, split_of, splits, rng):
    n, c = len(labels), len(CLASSES)
    truth = np.where(labels >= 0, labels, rng.integers(0, c, n))
    logits = rng.normal(0, 1, (n, c))
    right = rng.random(n) < 0.8
    target = np.where(right, truth, rng.integers(0, c, n))
    logits[np.arange(n), target] += rng.uniform(1, 5, n)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p = np.round(p, 4)
    pred = p.argmax(axis=1)
    lab = labels >= 0
    pl = np.where(lab, p[np.arange(n), np.maximum(labels, 0)], -1)
    ent = -(np.where(p > 0, p * np.log(np.maximum(p, 1e-12)), 0)).sum(axis=1)
    srt = np.sort(p, axis=1)
    margin = srt[:, -1] - srt[:, -2]
    m = np.where(pred != labels, 1, -1)
    mist = np.where(lab, (m * np.exp(-ent) + 1) / 2, -1)
    cl = (lab & (pred != labels) & (pl < 0.3)).astype(int)
    im = rep["images"]
    im.update(pred=[int(x) for x in pred], prob=[float(x) for x in p.ravel()],
              mistake=[round(float(x), 4) for x in mist], cl=[int(x) for x in cl],
              self_conf=[round(float(x), 4) for x in pl], hard=[round(float(x), 4) for x in ent],
              margin=[round(float(x), 4) for x in margin])
    for i in range(n):
        if mist[i] > 0.5:
            im["flags"][i] |= BIT["mistakenness"]
        if cl[i]:
            im["flags"][i] |= BIT["confident_learning"]
    rep["evaluation"], rep["predicted"] = {}, {}
    for si, s in enumerate(splits):
        rows = np.nonzero(split_of == si)[0]
        rep["predicted"][s["name"]] = [int((pred[rows] == k).sum()) for k in range(c)]
        if not s["labelled"] or len(rows) == 0:
            continue
        cm = np.zeros((c, c), int)
        for i in rows:
            cm[labels[i], pred[i]] += 1
        per = {}
        for k in range(c):
            tp, col, row = cm[k, k], cm[:, k].sum(), cm[k].sum()
            pr = tp / col if col else 0.0
            rc = tp / row if row else 0.0
            per[CLASSES[k]] = {"precision": pr, "recall": rc,
                               "f1": 2 * pr * rc / (pr + rc) if pr + rc else 0.0,
                               "support": int(row)}
        conf = p[rows].max(axis=1)
        ok = pred[rows] == labels[rows]
        ece, bins = 0.0, np.minimum((conf * 15).astype(int), 14)
        for b in range(15):
            sel = bins == b
            if sel.any():
                ece += sel.sum() / len(rows) * abs(ok[sel].mean() - conf[sel].mean())
        loss = float(-np.log(np.maximum(pl[rows], 1e-12)).mean())
        rep["evaluation"][s["name"]] = {
            "accuracy": float(ok.mean()), "loss": loss, "samples": int(len(rows)),
            "classes": CLASSES, "per_class": per, "confusion_matrix": cm.tolist(),
            "ece": round(ece, 6)}
    order = np.nonzero(lab & (mist > 0.5))[0]
    order = sorted(order, key=lambda i: (-mist[i], i))
    clr = sorted(np.nonzero(cl)[0], key=lambda i: (pl[i], i))
    rep["label_errors"] = {"mistakenness": [int(i) for i in order],
                           "confident_learning": [int(i) for i in clr]}


def build(args):
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    if args.data:
        root, splits, items = scan_data(args.data)
        thumbs = np.stack([fit_thumb(it[3]) for it in items]) if items else \
            np.zeros((0, SIDE, SIDE, 3), np.uint8)
        wh = [it[3].size for it in items]
    else:
        root, splits, items = synthetic(args.images, rng)
        labels0 = np.array([it[2] for it in items])
        thumbs = synthetic_thumbs(labels0, rng)
        wh = [(150, 150)] * len(items)
        for i in rng.choice(len(items), min(len(items), 12), replace=False):
            wh[i] = (150, int(rng.integers(76, 149)))
    n = len(items)
    labels = np.array([it[2] for it in items], dtype=int)
    split_of = np.array([it[0] for it in items], dtype=int)
    bright, contrast, blur, ent, gray = luma_stats(thumbs) if n else ([],) * 5
    area = np.array([w * h for w, h in wh], dtype=np.float64)
    aspect = np.array([w / h for w, h in wh], dtype=np.float64)
    props = {"brightness": prop(bright), "contrast": prop(contrast), "blur": prop(blur),
             "entropy": prop(ent), "area": prop(area), "aspect": prop(aspect)}
    flags = [0] * n
    pr = props
    rules = {"dark": f"brightness < {pr['brightness']['low']:.2f} (the 0.5th percentile)",
             "bright": f"brightness > {pr['brightness']['high']:.2f} (the 99.5th percentile)",
             "blurry": f"blur < {pr['blur']['low']:.2f} (the 0.5th percentile)",
             "low_information": f"entropy < {pr['entropy']['low']:.3f} bits (the 0.5th percentile)",
             "odd_size": "size differs from the most common 150x150",
             "grayscale": "every pixel's channel spread <= 8",
             "exact_duplicate": "identical decoded pixels to another image",
             "near_duplicate": "dHash distance <= 8 and pHash distance <= 12 to another image",
             "leakage": "a near duplicate in another labelled split",
             "unlabelled_duplicate": "a near duplicate between a labelled and the unlabelled split",
             "label_conflict": "near duplicates whose labels disagree"}
    common = max(set(wh), key=wh.count) if wh else (0, 0)
    for i in range(n):
        f = 0
        f |= BIT["dark"] if bright[i] < pr["brightness"]["low"] else 0
        f |= BIT["bright"] if bright[i] > pr["brightness"]["high"] else 0
        f |= BIT["blurry"] if blur[i] < pr["blur"]["low"] else 0
        f |= BIT["low_information"] if ent[i] < pr["entropy"]["low"] else 0
        f |= BIT["odd_size"] if wh[i] != common else 0
        f |= BIT["grayscale"] if gray[i] else 0
        flags[i] = f
    exact = groups_of(n, rng, max(1, n // 400), 2) if n >= 4 else []
    near = [list(g) for g in exact] + (groups_of(n, rng, max(1, n // 300), 4) if n >= 8 else [])
    # keep near groups disjoint from each other (components): drop overlaps
    seen, near2 = set(), []
    for g in near:
        if not seen.intersection(g):
            near2.append(g)
            seen.update(g)
    near = near2
    exact_of, near_of = [-1] * n, [-1] * n
    for gi, g in enumerate(exact):
        for i in g:
            exact_of[i] = gi
            flags[i] |= BIT["exact_duplicate"]
    conflicts = []
    within = {s["name"]: 0 for s in splits}
    across = {}
    for gi, g in enumerate(near):
        sp = {int(split_of[i]) for i in g}
        labs = {int(labels[i]) for i in g if labels[i] >= 0}
        for i in g:
            near_of[i] = gi
            flags[i] |= BIT["near_duplicate"]
            if len(sp) > 1 and all(splits[s]["labelled"] for s in sp):
                flags[i] |= BIT["leakage"]
            if len(sp) > 1 and any(not splits[s]["labelled"] for s in sp):
                flags[i] |= BIT["unlabelled_duplicate"]
            if len(labs) > 1:
                flags[i] |= BIT["label_conflict"]
        if len(labs) > 1:
            conflicts.append(gi)
        for a in range(len(g)):
            for b in range(a + 1, len(g)):
                sa, sb = sorted((int(split_of[g[a]]), int(split_of[g[b]])))
                if sa == sb:
                    within[splits[sa]["name"]] += 1
                else:
                    key = f"{splits[sa]['name']}/{splits[sb]['name']}"
                    across[key] = across.get(key, 0) + 1
    # embedding: one blob per class, unlabelled scattered among them
    centres = rng.normal(0, 3, (len(CLASSES), 2))
    emb_xy = centres[np.where(labels >= 0, labels, rng.integers(0, 6, n))] + rng.normal(0, 1, (n, 2))
    sizes = {}
    for w, h in wh:
        sizes[(w, h)] = sizes.get((w, h), 0) + 1
    rep = {
        "format": 1, "engine_version": "0.12.0-fake", "data_root": root,
        "classes": CLASSES, "splits": splits,
        "checkpoint": None,
        "thumbs": {"side": SIDE, "cols": COLS, "per_sheet": PER_SHEET, "sheets": []},
        "flag_names": FLAGS if not args.no_checkpoint else FLAGS[:-2],
        "images": {
            "split": [int(x) for x in split_of], "path": [it[1] for it in items],
            "label": [int(x) for x in labels], "w": [w for w, _ in wh], "h": [h for _, h in wh],
            "brightness": [round(float(x), 2) for x in bright],
            "contrast": [round(float(x), 2) for x in contrast],
            "blur": [round(float(x), 2) for x in blur],
            "entropy": [round(float(x), 3) for x in ent],
            "gray": [int(x) for x in gray], "flags": flags, "exact": exact_of, "near": near_of,
            "emb": [round(float(v), 4) for v in emb_xy.ravel()],
            "uniq": [round(float(x), 4) for x in rng.gamma(2, 0.5, n)],
        },
        "properties": props, "flag_rules": rules,
        "sizes": [{"w": w, "h": h, "count": c}
                  for (w, h), c in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))],
        "duplicates": {"dhash_max": 8, "phash_max": 12, "exact": exact, "near": near,
                       "pairs": {"within": within, "across": across}, "conflicts": conflicts},
        "embedding": {"source": "color_histogram" if args.no_checkpoint else "penultimate",
                      "dim": 256, "explained": [0.41, 0.17]},
    }
    if not args.no_checkpoint:
        rep["checkpoint"] = {"path": "/nonexistent/runs/fake/best.safetensors",
                             "sha256": hashlib.sha256(b"fake").hexdigest(), "model": "bn_dropout",
                             "image_size": 64, "width": 0.25, "weights": ""}
        rules["mistakenness"] = "mistakenness > 0.5"
        rules["confident_learning"] = "off the confident joint's diagonal"
        model_part(rep, labels, split_of, splits, rng)
    out = os.path.abspath(args.out)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "data"))
    rep["thumbs"]["sheets"] = write_sheets(out, thumbs)
    page = args.page or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                     "tools", "explore_page")
    for f in PAGE_FILES:
        shutil.copyfile(os.path.join(page, f), os.path.join(out, f))
    with open(os.path.join(out, "data", "report.js"), "w") as fh:
        fh.write("window.EXPLORE = " + json.dumps(rep, separators=(",", ":")) + ";\n")
    run = {"seconds": round(time.time() - t0, 1),
           "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "command": "make_fake_report.py " + " ".join(sys.argv[1:])}
    with open(os.path.join(out, "run.js"), "w") as fh:
        fh.write("window.EXPLORE_RUN = " + json.dumps(run) + ";\n")
    if args.expectations:  # what run.sh would count in the folders, had they existed
        exp = {"splits": {}}
        for s in splits:
            files = s["images"] + len(s["bad"]) + s["hidden"] + s["other"]
            cls = {}
            if s["labelled"]:
                for i in range(s["first"], s["first"] + s["images"]):
                    cls[CLASSES[labels[i]]] = cls.get(CLASSES[labels[i]], 0) + 1
                for b in s["bad"]:
                    c = b["path"][len(s["dir"]) + 1:].split("/")[0]
                    cls[c] = cls.get(c, 0) + 1
            exp["splits"][s["name"]] = {"dir": s["dir"], "files": files, "classes": cls}
        with open(args.expectations, "w") as fh:
            json.dump(exp, fh, indent=1)
    print(f"make_fake_report: {n} images, {len(rep['thumbs']['sheets'])} sheets -> {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="report folder (replaced)")
    ap.add_argument("--data", help="a Kaggle-layout dataset folder to describe")
    ap.add_argument("--images", type=int, default=2000, help="synthetic images (without --data)")
    ap.add_argument("--no-checkpoint", action="store_true", help="leave out the model's part")
    ap.add_argument("--page", help="folder with the page's files (default tools/explore_page)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--expectations", help="also write the folder counts the browser test expects")
    build(ap.parse_args())


if __name__ == "__main__":
    main()
