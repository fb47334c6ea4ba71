"""Reference fixtures for torchvision's ImageClassification preset (the transforms of the ImageNet
weights ResNet-50 and MobileNetV2 are fine-tuned from): PNG images (lossless, so the engine decodes
exactly PIL's pixels) of shapes that exercise both orientations, both roundings of the centre
crop's half-pixel offset, no-op resizes and an image smaller than the crop. For each image, under
`tv{R}.<name>` the preset's output for resize_size R in (256, 232) with crop 224 (F32 [3, 224, 224])
and under `crop{R}.<name>` its uint8 image before ToTensor (U8 [224, 224, 3]); `plain.<name>` is
Resize((224, 224)) + ToTensor + Normalize (what resize_size 0 keeps); `sizes` holds rows
(w, h, size, new_w, new_h) of torchvision's shorter-side Resize. Files go to OUT/preprocess/, the
references to OUT/preprocess.safetensors."""
import os
import sys

from st import require_torch, save, sources_hash, up_to_date

try:
    import numpy as np
    from PIL import Image
except ImportError:
    raise SystemExit("PIL/NumPy are missing: the image fixtures need them. Install them with "
                     "`apt-get install python3-pil python3-numpy` and run the tests with "
                     "/usr/bin/python3 (scripts/install_deps.sh does both).")

out = sys.argv[1]
target = f"{out}/preprocess.safetensors"
digest = sources_hash(__file__, os.path.join(os.path.dirname(__file__), "st.py"))
if up_to_date(target, digest):
    sys.exit(0)
require_torch()  # torchvision needs it; also fixes the thread count
try:
    import torchvision.transforms as T
    import torchvision.transforms.functional as F
    from torchvision.transforms._presets import ImageClassification
except ImportError:
    raise SystemExit("torchvision is missing: apt-get install python3-torchvision")

img_dir = f"{out}/preprocess"
os.makedirs(img_dir, exist_ok=True)
rng = np.random.default_rng(11)
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def photo(w, h):
    """Smooth gradients and waves at a per-image phase, a few hard edges and noise: content on
    which every filter tap and every crop offset shows."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    p = rng.uniform(0, 6.28, 3)
    r = 128 + 110 * np.sin(x / (5.0 + w / 40) + p[0]) * np.cos(y / (7.0 + h / 50) + p[1])
    g = 255 * (0.7 * x / w + 0.3 * y / h)
    b = np.where(((x + 3 * y) // 23 + x // 31) % 2 == 0, 210.0, 30.0)
    b += 20 * np.sin(p[2] + x * y / 500)
    a = np.stack([r, g, b], -1) + rng.normal(0, 14, (h, w, 3))
    return np.clip(a, 0, 255).astype(np.uint8)


# (w, h) and what each exercises, for resize_size 256 / 232: the crop offset is
# int(round(excess / 2)) with Python's round half to even, so an odd excess rounds up or down.
#   150x150  square: both sides resized
#   150x113  landscape, width 339 / 307: left 57.5 -> 58, 41.5 -> 42 (up)
#   120x90   smaller than the crop (the resize enlarges it), width 341 / 309: 58.5 -> 58 and
#            42.5 -> 42 (down)
#   90x120   the same in portrait: top 58.5 -> 58, 42.5 -> 42
#   97x211   portrait, height 556 / 504
#   300x200  exact 3:2, width 384 / 348
#   256x256  no-op resize at 256 (torchvision returns the image untouched)
#   256x300  portrait, no-op resize at 256; at 232 height 271: top 23.5 -> 24 (up)
#   224x224  already the crop size: enlarged, then cropped back
SHAPES = [(150, 150), (150, 113), (120, 90), (90, 120), (97, 211), (300, 200), (256, 256),
          (256, 300), (224, 224)]
tensors = {}
for w, h in SHAPES:
    name = f"{w}x{h}"
    Image.fromarray(photo(w, h)).save(f"{img_dir}/{name}.png")
    im = Image.open(f"{img_dir}/{name}.png").convert("RGB")
    for r in (256, 232):
        tensors[f"tv{r}.{name}"] = ImageClassification(crop_size=224, resize_size=r)(im)
        # The same steps up to the crop, kept as uint8 pixels (HWC, as the engine's Image).
        resized = F.resize(im, [r], interpolation=T.InterpolationMode.BILINEAR)
        cropped = F.center_crop(resized, [224])
        tensors[f"crop{r}.{name}"] = np.asarray(cropped)
    tensors[f"plain.{name}"] = T.Compose([T.Resize((224, 224)), T.ToTensor(),
                                          T.Normalize(MEAN, STD)])(im)

# Output sizes of the shorter-side resize, read off torchvision's Resize on real PIL images.
size_cases = [(150, 113, 256), (113, 150, 256), (97, 211, 232), (211, 97, 232), (1, 1, 8),
              (3, 7, 256), (7, 3, 10), (640, 480, 232), (500, 333, 256), (333, 500, 224),
              (299, 299, 256), (1000, 3, 5), (255, 256, 256), (257, 256, 256)]
rows = []
for w, h, s in size_cases:
    nw, nh = F.resize(Image.new("RGB", (w, h)), [s]).size
    rows.append([w, h, s, nw, nh])
tensors["sizes"] = np.array(rows, dtype=np.int64)

save(target, tensors, {"sources": digest})
