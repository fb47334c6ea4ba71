"""The measurements of bench_transfer.cpp for torchvision's models, on the CPU with Debian's
python3-torch (run with /usr/bin/python3), printing JSON lines with the same keys as the engine's
counters. bench/transfer_compare.py runs both and prints ours / PyTorch.

  torch_transfer.py --model resnet50 --batch 32 [--grad-mode no_grad|inference_mode]
      torchvision.models.<model>(weights=None).eval(), one forward (input -> logits) per call:
      --warmup untimed calls, then --runs timed ones; median. Memory as torch_train_step.py: the
      peak resident set (ru_maxrss) above a baseline taken after `import torch, torchvision` and
      set_num_threads, before the model is built. One model per process, so that the peak is its.
  torch_transfer.py --layers --batch 32
      Every distinct convolution of both models, found by forward hooks on torchvision's modules
      (with how often each occurs), timed alone as torch.nn.functional.conv2d(x, w, b, ...) with a
      bias, as bench_transfer's conv/ cases time engine::conv2d. One JSON line per shape.
"""
import argparse
import json
import resource
import time

import torch
import torchvision

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="resnet50", choices=["resnet50", "mobilenet_v2"])
ap.add_argument("--layers", action="store_true", help="time each distinct conv shape instead")
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--warmup", type=int, default=2)
ap.add_argument("--runs", type=int, default=7)
ap.add_argument("--grad-mode", default="no_grad", choices=["no_grad", "inference_mode"])
ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                help="cuda: TF32 off (as the engine), each timed call ends in a synchronize")
ap.add_argument("--json-lines", action="store_true",
                help="accepted for symmetry with bench_transfer: the output is always JSON lines")
a = ap.parse_args()
if a.device == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True


def sync():
    if a.device == "cuda":
        torch.cuda.synchronize()


def current_rss_mb():
    """The resident set now (VmRSS in /proc/self/status), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def grad_mode():
    return torch.inference_mode() if a.grad_mode == "inference_mode" else torch.no_grad()


def median_time(fn):
    """a.warmup untimed calls, then a.runs timed ones; the median in seconds."""
    for _ in range(a.warmup):
        fn()
    times = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def build(name):
    return getattr(torchvision.models, name)(weights=None).eval()


def bench_model(baseline_rss_mb):
    torch.manual_seed(0)
    with grad_mode():
        net = build(a.model).to(a.device)
        x = torch.rand(a.batch, 3, 224, 224).to(a.device)
        out = {}

        def step():
            out["y"] = net(x)
            sync()
        med = median_time(step)
        assert tuple(out["y"].shape) == (a.batch, 1000)
    peak = peak_rss_mb()
    return {"impl": "pytorch " + torch.__version__, "name": f"model/{a.model}/batch:{a.batch}",
            "model": a.model, "device": a.device,
            "grad_mode": a.grad_mode, "batch": a.batch, "threads": torch.get_num_threads(),
            "median_ms": round(med * 1e3, 3), "images_per_s": round(a.batch / med, 4),
            "peak_rss_mb": round(peak, 1), "baseline_rss_mb": round(baseline_rss_mb, 1),
            "peak_above_baseline_mb": round(peak - baseline_rss_mb, 1)}


def conv_shapes(name):
    """{(cin, cout, hw, k, stride, groups): count} of torchvision's model, from forward hooks."""
    shapes = {}

    def hook(m, inputs, _):
        h = inputs[0].shape[-1]
        key = (m.in_channels, m.out_channels, h, m.kernel_size[0], m.stride[0], m.groups)
        assert m.padding[0] == (m.kernel_size[0] - 1) // 2 and inputs[0].shape[-2] == h
        shapes[key] = shapes.get(key, 0) + 1

    net = build(name)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        net(torch.zeros(1, 3, 224, 224))
    return shapes


def bench_layers():
    rows = []
    for name in ("resnet50", "mobilenet_v2"):
        for (cin, cout, hw, k, s, g), count in conv_shapes(name).items():
            torch.manual_seed(1)
            x = torch.rand(a.batch, cin, hw, hw)
            w = torch.rand(cout, cin // g, k, k) * 0.2 - 0.1
            b = torch.rand(cout)
            out = {}
            with grad_mode():
                med = median_time(lambda: out.__setitem__(
                    "y", torch.nn.functional.conv2d(x, w, b, s, (k - 1) // 2, 1, g)))
            flops = 2.0 * out["y"].numel() * (cin // g) * k * k
            rows.append({"impl": "pytorch " + torch.__version__, "net": name,
                         "grad_mode": a.grad_mode, "batch": a.batch, "cin": cin, "cout": cout,
                         "hw": hw, "k": k, "stride": s, "groups": g, "count": count,
                         "median_ms": round(med * 1e3, 4), "gflops": round(flops / med / 1e9, 2)})
    return rows


torch.set_num_threads(a.threads)
baseline = current_rss_mb()
for row in bench_layers() if a.layers else [bench_model(baseline)]:
    print(json.dumps(row), flush=True)
