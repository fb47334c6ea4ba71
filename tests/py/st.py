"""Minimal safetensors writer/reader for the fixture scripts (the `safetensors` package is not
a Debian package). Writes F32 and I64 tensors from numpy arrays or torch tensors."""
import json
import os
import struct

try:
    import numpy as np
except ImportError:
    raise SystemExit(
        "NumPy/PyTorch are missing: the parity fixtures need them. Install them with "
        "`apt-get install python3-torch python3-numpy` (Debian) and run the tests with "
        "/usr/bin/python3 (scripts/install_deps.sh does both).")

_DTYPES = {np.dtype("float32"): "F32", np.dtype("int64"): "I64", np.dtype("uint8"): "U8",
           np.dtype("float64"): "F64", np.dtype("float16"): "F16"}


def _as_numpy(t):
    if hasattr(t, "detach"):
        t = t.detach().cpu().contiguous().numpy()
    # np.require keeps 0-d arrays 0-d (ascontiguousarray would make them 1-d).
    return np.require(t, requirements="C")


def save(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = _as_numpy(tensors[name])
        b = a.tobytes()
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    inv = {v: k for k, v in _DTYPES.items()}
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[b:end], dtype=inv[e["dtype"]]).reshape(e["shape"])
    return out, meta


def require_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SystemExit(
            "PyTorch is missing: the parity fixtures need it. Install it with "
            "`apt-get install python3-torch` (Debian) and run the tests with /usr/bin/python3.")
    import torch
    torch.set_num_threads(1)
    return torch


def sources_hash(*paths):
    """A digest of the scripts that produce a fixture, to skip regenerating an up-to-date one."""
    import hashlib
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def up_to_date(path, digest):
    """True when `path` exists and was written by sources with this digest."""
    try:
        _, meta = load_header(path)
    except (OSError, ValueError):
        return False
    return meta.get("sources") == digest


def load_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return header, header.get("__metadata__", {})
