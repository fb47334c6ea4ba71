"""Reference for WindowedPlateau (engine/scheduler.h): the study's training loop, which steps
ReduceLROnPlateau every `window` batches on the mean loss of those batches, fed fixed losses:

    for epoch in range(epochs):
        running_loss = 0.0
        for i, batch in enumerate(loader):
            ...
            running_loss += loss.item()
            if i % window == window - 1:
                scheduler.step(running_loss / window)
                running_loss = 0.0

plateau_window.safetensors: per case "c<i>.losses" (F32: the batch losses, as loss.item() gives
them) and in the metadata "cases", a JSON list of {lr, window, batches_per_epoch, kwargs, lrs}
with lrs the lr after every batch (repr floats round-trip exactly).
"""
import json
import sys

from st import require_torch, save

torch = require_torch()
out = sys.argv[1]
gen = torch.Generator().manual_seed(3)


def study_loop(losses, lr, window, batches_per_epoch, kwargs):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    values = losses.tolist()  # Python floats, exactly the float32 values, as loss.item() gives
    assert len(values) % batches_per_epoch == 0
    lrs, k = [], 0
    for _ in range(len(values) // batches_per_epoch):
        running_loss = 0.0
        for i in range(batches_per_epoch):
            opt.step()
            running_loss += values[k]
            k += 1
            if i % window == window - 1:
                sched.step(running_loss / window)
                running_loss = 0.0
            lrs.append(opt.param_groups[0]["lr"])
    return lrs


def epochs_of(window_means, window, batches_per_epoch, tail_loss, noise):
    """Batch losses whose full windows have about the given means (noise: relative spread) and
    whose batches after an epoch's last full window are `tail_loss`: far below every mean, so a
    loop that counted them would see improvements the study's loop never sees."""
    per_epoch = batches_per_epoch // window
    assert len(window_means) % per_epoch == 0
    losses = []
    for w, m in enumerate(window_means):
        spread = 1 + noise * (2 * torch.rand(window, generator=gen, dtype=torch.float64) - 1)
        losses += (m * spread).tolist()
        if w % per_epoch == per_epoch - 1:
            losses += [tail_loss] * (batches_per_epoch - per_epoch * window)
    return torch.tensor(losses, dtype=torch.float32)


cases, tensors = [], {}


def add(losses, lr, window, batches_per_epoch, kwargs):
    i = len(cases)
    tensors[f"c{i}.losses"] = losses
    cases.append({"lr": lr, "window": window, "batches_per_epoch": batches_per_epoch,
                  "kwargs": kwargs,
                  "lrs": study_loop(losses, lr, window, batches_per_epoch, kwargs)})


# 1. The study's settings (train --scheduler plateau): window 50, factor 0.2, patience 15, with
# 237 batches an epoch (4 windows, 37 dropped). The mean falls, plateaus long enough for a
# reduction, falls again, and plateaus twice more: at least three reductions.
means = []
v = 2.0
for w in range(128):
    if w < 12 or 40 <= w < 52:
        v *= 0.95
    elif 80 <= w < 84:
        v *= 0.97
    else:
        v *= 1.0 + 0.002 * ((w % 5) - 2) / 2  # wobbles within the relative threshold band
    means.append(v)
add(epochs_of(means, 50, 237, 0.01, 0.1), 0.05, 50, 237, dict(factor=0.2, patience=15))

# 2. Exact ties at the relative threshold, cooldown and min_lr: windows of 4 in epochs of 10. A
# window of mean exactly best * (1 - 0.5) is not an improvement; below it is.
ties = [1.0, 0.5, 0.5, 0.5, 2.0, 2.0, 0.4375, 0.25, 0.25, 0.21875, 0.5, 0.5,
        0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
add(epochs_of(ties, 4, 10, 1e-3, 0.0), 0.1, 4, 10,
    dict(factor=0.5, patience=2, threshold=0.5, cooldown=2, min_lr=0.02))

# 3. Exact ties at an absolute threshold, in max mode, with windows of 3 in epochs of 7.
gains = [1.0, 1.25, 1.5, 1.5, 1.75, 1.75, 1.75, 1.75, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.25, 2.5,
         2.5, 2.5, 2.5, 2.5]
add(epochs_of(gains, 3, 7, 100.0, 0.0), 0.2, 3, 7,
    dict(mode="max", factor=0.5, patience=1, threshold=0.25, threshold_mode="abs", cooldown=1))

# 4. PyTorch's default threshold (1e-4, relative) probed to the last float32 bit: after a best
# window of mean b, windows of mean the float32 just above or just below b * (1 - 1e-4).
# Windows of 2 in epochs of 5, patience 1.
probe, best = [], 1.0
f32 = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
for k in range(24):
    t = best * (1.0 - 1e-4)
    below = torch.nextafter(f32(t), f32(0.0)).item()
    above = f32(t).item() if f32(t).item() >= t else torch.nextafter(f32(t), f32(2.0)).item()
    m = below if k % 3 == 2 else above
    probe.append(m)
    if m < t:
        best = m
add(epochs_of(probe, 2, 5, 1e-6, 0.0), 0.1, 2, 5, dict(patience=1, factor=0.5))

save(f"{out}/plateau_window.safetensors", tensors, {"cases": json.dumps(cases)})
