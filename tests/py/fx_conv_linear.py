"""Reference fixtures for conv2d and linear: random inputs, PyTorch outputs and the gradients
of sum(y * gy) for a random upstream gradient gy. One file per op, cases in `cases` metadata."""
import json
import sys

from st import require_torch, save

torch = require_torch()
out = sys.argv[1]
torch.manual_seed(1)

# (N, Cin, H, W, Cout, k, stride, pad, groups, bias)
CONV = [
    (2, 3, 8, 8, 4, 3, 1, 1, 1, True),
    (1, 4, 7, 9, 6, 3, 2, 0, 1, False),
    (3, 6, 5, 5, 6, 3, 1, 1, 6, True),    # depthwise (groups = channels)
    (2, 4, 9, 7, 8, 3, 2, 1, 2, True),    # grouped, stride 2, odd sizes
    (2, 5, 6, 6, 7, 1, 1, 0, 1, True),    # 1x1
    (1, 3, 11, 11, 5, 5, 2, 2, 1, False),
    (2, 8, 4, 4, 8, 1, 2, 0, 8, True),    # strided depthwise 1x1
    # 3x3 stride 1 with >= 128 input channels: the Winograd F(2x2,3x3) path (odd sizes, pad
    # 0/1/2); the test also runs every case with each algorithm forced
    (2, 128, 9, 7, 16, 3, 1, 1, 1, True),
    (1, 130, 5, 6, 8, 3, 1, 0, 1, False),
    (3, 128, 4, 3, 10, 3, 1, 2, 1, True),
    (2, 160, 16, 16, 24, 3, 1, 1, 1, True),
]
tensors, cases = {}, []
for i, (n, cin, h, w, cout, k, s, p, g, bias) in enumerate(CONV):
    x = torch.randn(n, cin, h, w, requires_grad=True)
    wt = torch.randn(cout, cin // g, k, k, requires_grad=True)
    b = torch.randn(cout, requires_grad=True) if bias else None
    y = torch.nn.functional.conv2d(x, wt, b, stride=s, padding=p, groups=g)
    gy = torch.randn_like(y)
    (y * gy).sum().backward()
    pre = f"c{i}."
    tensors.update({pre + "x": x, pre + "w": wt, pre + "y": y, pre + "gy": gy,
                    pre + "gx": x.grad, pre + "gw": wt.grad})
    if bias:
        tensors.update({pre + "b": b, pre + "gb": b.grad})
    cases.append({"stride": s, "pad": p, "groups": g, "bias": bias})
save(f"{out}/conv2d.safetensors", tensors, {"cases": json.dumps(cases)})

# (N, in, out, bias)
LINEAR = [(4, 7, 5, True), (1, 16, 3, False), (9, 33, 17, True)]
tensors, cases = {}, []
for i, (n, fin, fout, bias) in enumerate(LINEAR):
    x = torch.randn(n, fin, requires_grad=True)
    wt = torch.randn(fout, fin, requires_grad=True)
    b = torch.randn(fout, requires_grad=True) if bias else None
    y = torch.nn.functional.linear(x, wt, b)
    gy = torch.randn_like(y)
    (y * gy).sum().backward()
    pre = f"c{i}."
    tensors.update({pre + "x": x, pre + "w": wt, pre + "y": y, pre + "gy": gy,
                    pre + "gx": x.grad, pre + "gw": wt.grad})
    if bias:
        tensors.update({pre + "b": b, pre + "gb": b.grad})
    cases.append({"bias": bias})
save(f"{out}/linear.safetensors", tensors, {"cases": json.dumps(cases)})
