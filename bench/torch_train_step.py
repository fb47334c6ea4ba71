"""The same training step as bench_train_step.cpp in PyTorch (the study's model code, RMSprop),
printing the same JSON line. Run with /usr/bin/python3 (Debian's python3-torch) on the CPU; on a
GPU machine with its python3: --device cuda [--tf32 on] (cuDNN with benchmark mode, so it picks
its fastest algorithms as our cudnn backend does; TF32 off unless asked). On CUDA the steps are
queued back to back after 3 warm-up steps and timed to the end of the last, as bench_train_step.
On the CPU, memory is the whole process's peak resident set and that peak above a baseline taken
after `import torch` and set_num_threads, before the model is built, as bench_train_step does."""
import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "py"))

import torch  # noqa: E402
from study_models import StudyCnn  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="simple")
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--image-size", type=int, default=64)
ap.add_argument("--width", type=float, default=1.0)
ap.add_argument("--device", default="cpu")
ap.add_argument("--tf32", default="off", choices=["on", "off"])
a = ap.parse_args()


def current_rss_mb():
    """The resident set now (VmRSS in /proc/self/status), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


if a.device.startswith("cuda"):
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = a.tf32 == "on"
    torch.backends.cuda.matmul.allow_tf32 = a.tf32 == "on"
    torch.manual_seed(1)
    net = StudyCnn(a.model, image_size=a.image_size, width=a.width).to(a.device).train()
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-4, alpha=0.9)
    x = torch.rand(a.batch, 3, a.image_size, a.image_size, device=a.device)
    y = (torch.arange(a.batch) % 6).to(a.device)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    torch.cuda.synchronize()
    per = (time.perf_counter() - t0) / a.steps
    print(json.dumps({"impl": "pytorch " + torch.__version__, "device": a.device,
                      "tf32": a.tf32, "model": a.model, "batch": a.batch, "steps": a.steps,
                      "mean_step_s": round(per, 6), "images_per_s": round(a.batch / per, 2),
                      "peak_device_mb": round(torch.cuda.max_memory_reserved() / 2**20, 1),
                      "loss": round(loss.item(), 5)}))
    sys.exit(0)

torch.set_num_threads(a.threads)
baseline_rss_mb = current_rss_mb()
torch.manual_seed(1)
net = StudyCnn(a.model, image_size=a.image_size, width=a.width)
net.train()
opt = torch.optim.RMSprop(net.parameters(), lr=1e-4, alpha=0.9)
x = torch.rand(a.batch, 3, a.image_size, a.image_size)
y = torch.arange(a.batch) % 6
times = []
for s in range(a.steps + 1):
    t0 = time.perf_counter()
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
    dt = time.perf_counter() - t0
    if s > 0:
        times.append(dt)
times.sort()
med = times[len(times) // 2]
peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"impl": "pytorch " + torch.__version__, "model": a.model, "width": a.width, "batch": a.batch,
                  "threads": a.threads, "steps": a.steps, "median_step_s": round(med, 5),
                  "images_per_s": round(a.batch / med, 4), "peak_rss_mb": round(peak_rss_mb, 1),
                  "baseline_rss_mb": round(baseline_rss_mb, 1),
                  "peak_above_baseline_mb": round(peak_rss_mb - baseline_rss_mb, 1),
                  "loss": round(loss.item(), 5)}))
