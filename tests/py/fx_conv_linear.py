"""Reference fixtures for conv2d (also with a fused activation) and linear: random inputs, PyTorch
outputs and the gradients of sum(y * gy) for a random upstream gradient gy. One file per op, cases
in `cases` metadata."""
import json
import sys

from st import require_torch, save

torch = require_torch()
F = torch.nn.functional
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
# Rows of 11 and 13 outputs: the direct convolution's 16-lane vectors (AVX-512) part-filled. Drawn
# from their own generator, so the cases above and the fixtures below keep their numbers.
CONV_ROWS = [
    (2, 6, 13, 11, 10, 3, 1, 1, 1, True),
    (1, 5, 9, 13, 7, 3, 1, 0, 1, False),
]
rows_gen = torch.Generator().manual_seed(2)
tensors, cases = {}, []
for i, (n, cin, h, w, cout, k, s, p, g, bias) in enumerate(CONV + CONV_ROWS):
    gen = rows_gen if i >= len(CONV) else None
    x = torch.randn(n, cin, h, w, generator=gen).requires_grad_()
    wt = torch.randn(cout, cin // g, k, k, generator=gen).requires_grad_()
    b = torch.randn(cout, generator=gen).requires_grad_() if bias else None
    y = torch.nn.functional.conv2d(x, wt, b, stride=s, padding=p, groups=g)
    gy = torch.randn(y.shape, generator=gen)
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

# conv2d with a fused activation, y = act(conv(x, w) + b), as eval-mode conv + folded BatchNorm +
# ReLU/ReLU6 uses it. The reference is computed in float64 from the float32 inputs (saved as
# float32).
# Weights have stddev 3/sqrt(K), so pre-activations spread over a few units: relu6 clamps at both
# ends, sigmoid and tanh are neither linear nor saturated everywhere. Inputs are redrawn until no
# pre-activation lies within 1e-3 of a kink (0, and 6 for relu6): float32 rounding (~1e-5 here)
# then cannot put an element on the other side of a kink than float64, which would move its
# output and gradient by a whole step.
# (N, Cin, H, W, Cout, k, stride, pad, groups, bias, activation)
CONV_ACT = [
    (2, 3, 16, 14, 8, 7, 2, 3, 1, True, "relu"),       # ResNet stem: 7x7 stride 2 pad 3
    (2, 3, 11, 11, 6, 7, 2, 3, 1, False, "relu6"),     # the stem without bias
    (2, 16, 9, 9, 8, 1, 2, 0, 1, True, "relu6"),       # 1x1 stride 2 (ResNet downsample)
    (2, 12, 6, 5, 16, 1, 1, 0, 1, True, "relu6"),      # 1x1 stride 1 (MobileNetV2 expand)
    (2, 16, 9, 9, 16, 3, 2, 1, 16, True, "relu6"),     # depthwise 3x3 stride 2
    (2, 128, 6, 7, 16, 3, 1, 1, 1, True, "relu"),      # >= 128 channels: Winograd
    (1, 128, 5, 5, 8, 3, 1, 1, 1, False, "relu6"),     # Winograd, no bias
    (2, 8, 7, 7, 12, 3, 1, 1, 1, True, "sigmoid"),     # im2col
    (1, 128, 6, 5, 8, 3, 1, 1, 1, True, "tanh"),       # Winograd
]
ACT = {"relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid, "tanh": torch.tanh}
KINKS = {"relu": [0.0], "relu6": [0.0, 6.0], "sigmoid": [], "tanh": []}
tensors, cases = {}, []
for i, (n, cin, h, w, cout, k, s, p, g, bias, act) in enumerate(CONV_ACT):
    fan_in = cin // g * k * k
    while True:
        x = torch.randn(n, cin, h, w)
        wt = torch.randn(cout, cin // g, k, k) * (3 / fan_in ** 0.5)
        b = torch.randn(cout) if bias else None
        z = F.conv2d(x.double(), wt.double(), b.double() if bias else None, stride=s, padding=p,
                     groups=g)
        if all((z - kink).abs().min() > 1e-3 for kink in KINKS[act]):
            break
    xd, wd = x.double().requires_grad_(), wt.double().requires_grad_()
    bd = b.double().requires_grad_() if bias else None
    y = ACT[act](F.conv2d(xd, wd, bd, stride=s, padding=p, groups=g))
    gy = torch.randn(y.shape)
    (y * gy.double()).sum().backward()
    pre = f"c{i}."
    tensors.update({pre + "x": x, pre + "w": wt, pre + "y": y.float(), pre + "gy": gy,
                    pre + "gx": xd.grad.float(), pre + "gw": wd.grad.float()})
    if bias:
        tensors.update({pre + "b": b, pre + "gb": bd.grad.float()})
    cases.append({"stride": s, "pad": p, "groups": g, "bias": bias, "activation": act})
save(f"{out}/conv2d_activation.safetensors", tensors, {"cases": json.dumps(cases)})
