"""Reference fixtures for the image pipeline: image files in every colour layout we accept, written
by PIL, with PIL's decoded RGB pixels, PIL's bilinear resizes and torchvision's Resize + ToTensor
output. Files go to OUT/images/, the references to OUT/images.safetensors (U8 / F32 tensors)."""
import os
import struct
import sys
import zlib

from st import save, sources_hash, up_to_date

try:
    import numpy as np
    from PIL import Image
except ImportError:
    raise SystemExit("PIL/NumPy are missing: the image fixtures need them. Install them with "
                     "`apt-get install python3-pil python3-numpy` and run the tests with "
                     "/usr/bin/python3 (scripts/install_deps.sh does both).")

out = sys.argv[1]
target = f"{out}/images.safetensors"
digest = sources_hash(__file__, os.path.join(os.path.dirname(__file__), "st.py"))
if up_to_date(target, digest):
    sys.exit(0)
img_dir = f"{out}/images"
os.makedirs(img_dir, exist_ok=True)
rng = np.random.default_rng(7)


def photo(w, h):
    """Smooth colour fields with edges and noise: what resize filters and JPEG find in photos."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 100 * np.sin(x / 9.0) * np.cos(y / 13.0)
    g = 255 * (x + y) / (w + h)
    b = np.where((x // 17 + y // 11) % 2 == 0, 200.0, 40.0)
    a = np.stack([r, g, b], -1) + rng.normal(0, 12, (h, w, 3))
    return np.clip(a, 0, 255).astype(np.uint8)


def png_raw(path, arr, bit_depth, color_type):
    """A PNG writer for what PIL cannot write (16-bit RGB): filter 0 rows, one IDAT."""
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[i].astype(">u2" if bit_depth == 16 else "u1").tobytes()
                   for i in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                + chunk(b"IEND", b""))


tensors = {}
base = photo(150, 150)
Image.fromarray(base).save(f"{img_dir}/photo.png")
Image.fromarray(base).save(f"{img_dir}/photo_q90.jpg", quality=90)
Image.fromarray(base).save(f"{img_dir}/photo_prog.jpg", quality=85, progressive=True)
Image.fromarray(base).save(f"{img_dir}/photo.bmp")
odd = photo(97, 61)
Image.fromarray(odd).save(f"{img_dir}/odd.png")
Image.fromarray(base[:, :, 1]).save(f"{img_dir}/gray.png")
Image.fromarray(base[:, :, 1]).save(f"{img_dir}/gray.jpg", quality=90)
Image.fromarray(np.dstack([base[:, :, 0], base[:, :, 2]]), "LA").save(f"{img_dir}/gray_alpha.png")
rgba = np.dstack([base, rng.integers(0, 256, base.shape[:2], dtype=np.uint8)])
Image.fromarray(rgba, "RGBA").save(f"{img_dir}/rgba.png")
Image.fromarray(base).quantize(colors=64).save(f"{img_dir}/palette.png")
Image.fromarray(base).convert("CMYK").save(f"{img_dir}/cmyk.jpg", quality=95)
Image.fromarray(base[:1, :1]).save(f"{img_dir}/tiny.png")
g16 = rng.integers(0, 65536, (40, 30), dtype=np.uint16)
png_raw(f"{img_dir}/gray16.png", g16, 16, 0)
rgb16 = rng.integers(0, 65536, (30, 40, 3), dtype=np.uint16)
png_raw(f"{img_dir}/rgb16.png", rgb16, 16, 2)

# PIL's decode of every file (what the study's ImageFolder + convert("RGB") produced).
for name in ["photo.png", "photo_q90.jpg", "photo_prog.jpg", "photo.bmp", "odd.png", "gray.png",
             "gray.jpg", "gray_alpha.png", "rgba.png", "palette.png", "cmyk.jpg", "tiny.png",
             "rgb16.png"]:
    tensors[f"pil.{name}"] = np.asarray(Image.open(f"{img_dir}/{name}").convert("RGB"))
# 16-bit grayscale: PIL opens it as 32-bit integers and clips to 255 when converting to RGB; the
# engine keeps the high byte, as PIL itself does for 16-bit RGB. The reference states that rule.
tensors["expect.gray16.png"] = np.repeat((g16 >> 8).astype(np.uint8)[:, :, None], 3, axis=2)

# Bilinear resizes by PIL (torchvision's Resize on PIL images calls exactly this).
resizes = {"photo_64x64": ("photo.png", 64, 64), "photo_224x224": ("photo.png", 224, 224),
           "photo_37x53": ("photo.png", 37, 53), "photo_150x64": ("photo.png", 150, 64),
           "photo_300x151": ("photo.png", 300, 151), "odd_64x64": ("odd.png", 64, 64),
           "odd_13x200": ("odd.png", 13, 200), "tiny_64x64": ("tiny.png", 64, 64),
           "photo_1x1": ("photo.png", 1, 1)}
for key, (name, w, h) in resizes.items():
    im = Image.open(f"{img_dir}/{name}").convert("RGB")
    tensors[f"resize.{key}"] = np.asarray(im.resize((w, h), Image.BILINEAR))

# The study's whole transform: Resize((64, 64)) then ToTensor, and with ImageNet Normalize.
try:
    import torchvision.transforms as T
    im = Image.open(f"{img_dir}/photo_q90.jpg").convert("RGB")
    tensors["tv.resize64"] = T.Compose([T.Resize((64, 64)), T.ToTensor()])(im)
    tensors["tv.resize64_norm"] = T.Compose([
        T.Resize((64, 64)), T.ToTensor(),
        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])(im)
    tensors["tv.center_crop_40x30"] = np.asarray(T.CenterCrop((30, 40))(
        Image.open(f"{img_dir}/odd.png").convert("RGB")))
    tensors["tv.center_crop_120x80"] = np.asarray(T.CenterCrop((80, 120))(
        Image.open(f"{img_dir}/odd.png").convert("RGB")))
except ImportError:
    raise SystemExit("torchvision is missing: apt-get install python3-torchvision")

save(target, tensors, {"sources": digest})
