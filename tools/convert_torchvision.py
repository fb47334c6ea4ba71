#!/usr/bin/python3
"""Converts torchvision ImageNet weights into the engine's weights file (safetensors + metadata).

    /usr/bin/python3 tools/convert_torchvision.py resnet50 resnet50-0676ba61.pth --out resnet50.safetensors
    /usr/bin/python3 tools/convert_torchvision.py mobilenet_v2 --random-seed 0 --out mnv2-random.safetensors

ARCH is resnet50 or mobilenet_v2. The input is either a local state-dict file as torch.hub caches
it (~/.cache/torch/hub/checkpoints/resnet50-0676ba61.pth after `models.resnet50(weights=
"IMAGENET1K_V1")` on a machine with internet; the file name says which weights it holds), or
--random-seed N: torchvision's own initialisation under torch.manual_seed(N), then every
BatchNorm's weight, bias, running_mean and running_var drawn at random, so that a parity test
cannot pass with BatchNorm being a no-op. No network is used either way.

The output holds exactly torchvision's state_dict (names, shapes, float32; num_batches_tracked as
I64) and __metadata__: model, weights (IMAGENET1K_V1 / IMAGENET1K_V2 / random:N), classes (the
1000 ImageNet names as JSON), image_size (224), resize_size (256 for V1, 232 for V2), mean, std:
what train, predict and evaluate read to preprocess as torchvision's preset does.
"""
import argparse
import json
import os
import struct
import sys

try:
    import torch
    import torchvision
    from torchvision.models import MobileNet_V2_Weights, ResNet50_Weights
except ImportError as e:
    sys.exit(f"convert_torchvision: {e}. Install Debian's python3-torch and python3-torchvision "
             "(apt-get install python3-torch python3-torchvision) and run this script with "
             "/usr/bin/python3.")

ARCHS = {"resnet50": (torchvision.models.resnet50, ResNet50_Weights),
         "mobilenet_v2": (torchvision.models.mobilenet_v2, MobileNet_V2_Weights)}
DTYPES = {torch.float32: "F32", torch.int64: "I64"}


def fail(msg):
    sys.exit(f"convert_torchvision: {msg}")


def save_safetensors(path, tensors, metadata):
    """Writes the file atomically (temporary file, then rename): a failed run leaves nothing."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        b = t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def weights_for_file(enum, path):
    """The weights enum member whose download URL ends in this file's name (torch.hub keeps it)."""
    base = os.path.basename(path)
    for w in enum:
        if w.url.rsplit("/", 1)[-1] == base:
            return w
    return None


def load_state_dict(path):
    try:
        sd = torch.load(path, map_location="cpu")
    except Exception as e:  # torch raises many kinds for a file that is not a checkpoint
        fail(f"{path}: not a PyTorch state-dict file ({type(e).__name__}: {e})")
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
        fail(f"{path}: expected a state dict (names -> tensors), got {type(sd).__name__}")
    return sd


def check_against(model, sd, path, arch):
    ref = model.state_dict()
    missing = sorted(set(ref) - set(sd))
    unexpected = sorted(set(sd) - set(ref))
    misshaped = [f"{k} (file {list(sd[k].shape)}, {arch} {list(ref[k].shape)})"
                 for k in sorted(set(ref) & set(sd)) if sd[k].numel() != ref[k].numel()
                 or (sd[k].dim() > 1 and sd[k].shape != ref[k].shape)]
    if missing or unexpected or misshaped:
        parts = [f"{path} does not hold torchvision {arch} weights"]
        for what, keys in (("missing", missing), ("unexpected", unexpected),
                           ("mis-shaped", misshaped)):
            if keys:
                parts.append(f"{len(keys)} {what}: " + ", ".join(keys[:12]) +
                             (" ..." if len(keys) > 12 else ""))
        fail("; ".join(parts))


def randomise_batch_norm(model, seed):
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=g) * 1.0 + 0.5)    # [0.5, 1.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)  # [0.5, 2)
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=g)))


def main():
    ap = argparse.ArgumentParser(
        description="Convert torchvision ImageNet weights (a local .pth file, or torchvision's "
                    "initialisation with a seed) into an engine weights file.")
    ap.add_argument("arch", choices=sorted(ARCHS), help="torchvision architecture")
    ap.add_argument("pth", nargs="?", help="state-dict file as torch.hub caches it, e.g. "
                    "resnet50-0676ba61.pth")
    ap.add_argument("--random-seed", type=int, help="no file: torchvision's initialisation "
                    "under this seed, BatchNorm parameters and statistics randomised")
    ap.add_argument("--weights", help="the torchvision weights name when the file was renamed "
                    "(IMAGENET1K_V1 or IMAGENET1K_V2); it sets resize_size")
    ap.add_argument("--out", required=True, help="output .safetensors file")
    a = ap.parse_args()
    if (a.pth is None) == (a.random_seed is None):
        fail("give either a .pth file or --random-seed N (exactly one)")
    build, enum = ARCHS[a.arch]
    model = build(weights=None)

    if a.pth is not None:
        if not os.path.isfile(a.pth):
            fail(f"{a.pth}: no such file")
        if a.weights:
            try:
                w = enum[a.weights]
            except KeyError:
                fail(f"--weights {a.weights}: not a {a.arch} weights name (known: "
                     f"{', '.join(x.name for x in enum)})")
        else:
            w = weights_for_file(enum, a.pth)
            if w is None:
                fail(f"{a.pth}: file name matches none of torchvision's {a.arch} weights ("
                     + ", ".join(f"{x.name}: {x.url.rsplit('/', 1)[-1]}" for x in enum)
                     + "); say which with --weights NAME")
        sd = load_state_dict(a.pth)
        check_against(model, sd, a.pth, a.arch)
        model.load_state_dict({k: v.reshape(model.state_dict()[k].shape) for k, v in sd.items()})
        weights_name = w.name
    else:
        torch.manual_seed(a.random_seed)
        model = build(weights=None)
        randomise_batch_norm(model, a.random_seed)
        w = enum.IMAGENET1K_V1  # its preset and class names go with the 1000-class head
        weights_name = f"random:{a.random_seed}"

    preset = w.transforms()
    tensors = {k: (v.float() if v.is_floating_point() else v.long())
               for k, v in model.state_dict().items()}
    metadata = {
        "model": a.arch,
        "weights": weights_name,
        "classes": json.dumps(w.meta["categories"]),
        "image_size": str(preset.crop_size[0]),
        "resize_size": str(preset.resize_size[0]),
        "mean": json.dumps(list(preset.mean)),
        "std": json.dumps(list(preset.std)),
        "width": "1",
    }
    out_dir = os.path.dirname(os.path.abspath(a.out))
    if not os.path.isdir(out_dir):
        fail(f"--out {a.out}: folder {out_dir} does not exist")
    save_safetensors(a.out, tensors, metadata)
    n = sum(v.numel() for k, v in tensors.items() if "running" not in k and
            "num_batches" not in k)
    print(f"wrote {a.out}: {a.arch} {weights_name}, {len(tensors)} tensors, {n:,} parameters, "
          f"image_size {metadata['image_size']}, resize_size {metadata['resize_size']}")


if __name__ == "__main__":
    main()
