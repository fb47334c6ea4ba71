"""Reference fixtures for max_pool2d, avg_pool2d, adaptive_avg_pool2d and batch_norm: random
inputs, PyTorch outputs, the gradients of sum(y * gy) for a random upstream gradient gy, and for
batch norm the running statistics before and after one call. One file per op, cases in `cases`."""
import json
import sys

from st import require_torch, save

torch = require_torch()
F = torch.nn.functional
out = sys.argv[1]
torch.manual_seed(2)


def pool_fixture(name, specs, run):
    """specs: dicts with the input shape `x` and the op's parameters; run(x, spec) -> y."""
    tensors, cases = {}, []
    for i, spec in enumerate(specs):
        if spec.get("ties"):  # small integers: many equal maxima, so the tie rule shows in dx
            x = torch.randint(-2, 3, spec["x"]).float().requires_grad_(True)
        else:
            x = torch.randn(*spec["x"], requires_grad=True)
        y = run(x, spec)
        gy = torch.randn_like(y)
        (y * gy).sum().backward()
        pre = f"c{i}."
        tensors.update({pre + "x": x, pre + "y": y, pre + "gy": gy, pre + "gx": x.grad})
        cases.append(spec)
    save(f"{out}/{name}.safetensors", tensors, {"cases": json.dumps(cases)})


# kernel, stride and padding are [h, w].
MAX = [
    dict(x=[2, 3, 8, 8], k=[2, 2], s=[2, 2], p=[0, 0], ceil=False),
    dict(x=[1, 4, 7, 9], k=[3, 3], s=[2, 2], p=[1, 1], ceil=False),   # odd sizes, stride 2, pad 1
    dict(x=[2, 2, 7, 7], k=[3, 3], s=[2, 2], p=[1, 1], ceil=True),
    dict(x=[1, 3, 5, 6], k=[2, 2], s=[2, 2], p=[0, 0], ceil=True),    # partial last window
    dict(x=[2, 3, 6, 5], k=[3, 3], s=[1, 1], p=[1, 1], ceil=False),   # overlapping windows
    dict(x=[1, 2, 9, 8], k=[3, 2], s=[2, 1], p=[1, 0], ceil=False),   # non-square
    dict(x=[2, 3, 7, 7], k=[3, 3], s=[2, 2], p=[1, 1], ceil=False, ties=True),
    dict(x=[1, 2, 6, 6], k=[2, 2], s=[2, 2], p=[0, 0], ceil=False, ties=True),
    dict(x=[2, 16, 33, 35], k=[3, 3], s=[2, 2], p=[1, 1], ceil=True),  # parallel path
]
pool_fixture("max_pool2d", MAX, lambda x, c: F.max_pool2d(
    x, c["k"], c["s"], c["p"], ceil_mode=c["ceil"]))

AVG = [
    dict(x=[2, 3, 8, 8], k=[2, 2], s=[2, 2], p=[0, 0], ceil=False, cip=True),
    dict(x=[1, 4, 7, 9], k=[3, 3], s=[2, 2], p=[1, 1], ceil=False, cip=True),
    dict(x=[1, 4, 7, 9], k=[3, 3], s=[2, 2], p=[1, 1], ceil=False, cip=False),
    dict(x=[2, 2, 7, 7], k=[3, 3], s=[2, 2], p=[1, 1], ceil=True, cip=True),
    dict(x=[2, 2, 8, 8], k=[3, 3], s=[2, 2], p=[1, 1], ceil=True, cip=True),   # window past pad
    dict(x=[2, 2, 8, 8], k=[3, 3], s=[2, 2], p=[1, 1], ceil=True, cip=False),
    dict(x=[1, 3, 5, 6], k=[2, 2], s=[2, 2], p=[0, 0], ceil=True, cip=True),
    dict(x=[2, 3, 6, 5], k=[3, 3], s=[1, 1], p=[1, 1], ceil=False, cip=False),
    dict(x=[1, 2, 9, 8], k=[3, 2], s=[2, 1], p=[1, 0], ceil=False, cip=True),
    dict(x=[2, 16, 33, 35], k=[3, 3], s=[2, 2], p=[1, 1], ceil=True, cip=False),  # parallel
]
pool_fixture("avg_pool2d", AVG, lambda x, c: F.avg_pool2d(
    x, c["k"], c["s"], c["p"], ceil_mode=c["ceil"], count_include_pad=c["cip"]))

ADAPTIVE = [
    dict(x=[2, 3, 8, 8], out=[1, 1]),   # global average pool
    dict(x=[1, 4, 7, 9], out=[3, 4]),   # uneven, overlapping bins
    dict(x=[2, 2, 5, 5], out=[7, 7]),   # more bins than input
    dict(x=[1, 3, 10, 6], out=[4, 5]),
    dict(x=[2, 3, 6, 6], out=[6, 6]),   # identity
    dict(x=[1, 2, 7, 7], out=[2, 2]),
    dict(x=[2, 16, 33, 35], out=[5, 3]),  # parallel path
    dict(x=[2, 16, 33, 35], out=[1, 1]),
]
pool_fixture("adaptive_avg_pool2d", ADAPTIVE, lambda x, c: F.adaptive_avg_pool2d(x, c["out"]))

# x: input shape; affine: weight and bias; running: running stats given; shift/scale: the input
# is randn * scale + shift (a large shift tests the accuracy of the variance). gx_tol: with two
# values per channel xhat is +-1 whatever x is, so dx is only the O(eps / var) remainder of two
# nearly equal terms; PyTorch's own float dx is 1e-3 away from a float64 one there.
BN = [
    dict(x=[4, 3, 5, 5], affine=True, running=True, training=True, momentum=0.1, eps=1e-5),
    dict(x=[1, 3, 5, 7], affine=True, running=True, training=True, momentum=0.1, eps=1e-5),
    dict(x=[4, 3, 5, 5], affine=False, running=True, training=True, momentum=0.3, eps=1e-3),
    dict(x=[3, 4, 2, 6], affine=True, running=False, training=True, momentum=0.1, eps=1e-5),
    dict(x=[2, 5, 9, 7], affine=True, running=True, training=True, momentum=0.1, eps=1e-5,
         shift=50.0, scale=0.5),
    dict(x=[8, 5], affine=True, running=True, training=True, momentum=0.1, eps=1e-5),
    dict(x=[8, 5], affine=False, running=True, training=True, momentum=0.1, eps=1e-5),
    dict(x=[2, 3], affine=True, running=True, training=True, momentum=0.5, eps=1e-5, gx_tol=1e-2),
    dict(x=[3, 4, 7], affine=True, running=True, training=True, momentum=0.1, eps=1e-5),
    dict(x=[4, 16, 24, 24], affine=True, running=True, training=True, momentum=0.1, eps=1e-5),
    dict(x=[2, 4, 3, 3], affine=True, running=True, training=False, momentum=0.1, eps=1e-5),
    dict(x=[4, 16, 24, 24], affine=True, running=True, training=False, momentum=0.1, eps=1e-5),
    dict(x=[1, 4, 5, 3], affine=False, running=True, training=False, momentum=0.1, eps=1e-5),
    dict(x=[6, 5], affine=True, running=True, training=False, momentum=0.1, eps=1e-5),
    dict(x=[1, 5], affine=False, running=True, training=False, momentum=0.1, eps=1e-3),
]
tensors, cases = {}, []
for i, c in enumerate(BN):
    ch = c["x"][1]
    x = (torch.randn(*c["x"]) * c.get("scale", 1.0) + c.get("shift", 0.0)).requires_grad_(True)
    w = (torch.rand(ch) + 0.5).requires_grad_(True) if c["affine"] else None
    b = torch.randn(ch, requires_grad=True) if c["affine"] else None
    rm0 = torch.randn(ch) * 0.5 if c["running"] else None
    rv0 = torch.rand(ch) + 0.5 if c["running"] else None
    rm = rm0.clone() if c["running"] else None
    rv = rv0.clone() if c["running"] else None
    y = F.batch_norm(x, rm, rv, w, b, training=c["training"], momentum=c["momentum"], eps=c["eps"])
    gy = torch.randn_like(y)
    (y * gy).sum().backward()
    pre = f"c{i}."
    tensors.update({pre + "x": x, pre + "y": y, pre + "gy": gy, pre + "gx": x.grad})
    if c["affine"]:
        tensors.update({pre + "w": w, pre + "b": b, pre + "gw": w.grad, pre + "gb": b.grad})
    if c["running"]:
        tensors.update({pre + "rm0": rm0, pre + "rv0": rv0, pre + "rm1": rm, pre + "rv1": rv})
    cases.append(c)
save(f"{out}/batch_norm.safetensors", tensors, {"cases": json.dumps(cases)})
