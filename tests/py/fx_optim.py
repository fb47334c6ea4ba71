"""Reference fixtures for the optimizers, LR schedules and gradient clipping.

optim.safetensors: three parameters of odd shapes ("init.p<k>"), a fixed sequence of gradients
("grad.<step>.p<k>", absent where the gradient is None on that step), and for every optimizer
config the parameters after every step ("c<i>.step<s>.p<k>") and its final state
("c<i>.state.p<k>.<buffer>"). The lr is halved from step LR_DROP_STEP on (set_lr mid-run).
Metadata: configs (type + kwargs), steps, lr_drop_step.

schedulers.safetensors: the lr after every epoch for each schedule case, in the metadata as JSON
(repr floats round-trip exactly).

clip.safetensors: gradients before/after clip_grad_norm_ and the returned norm, per case.
"""
import json
import math
import sys

from st import require_torch, save

torch = require_torch()
out = sys.argv[1]
torch.manual_seed(7)

SHAPES = [(3, 5), (7,), (2, 3, 4)]
STEPS = 7
LR_DROP_STEP = 4
NONE = {(2, 1), (3, 1), (5, 2)}  # (step, param): gradient is None there

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-2)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-3)),
    ("RMSprop", dict(lr=0.05, alpha=0.9)),
    ("RMSprop", dict(lr=0.01, alpha=0.95, eps=1e-6, weight_decay=1e-2, momentum=0.8,
                     centered=True)),
    ("Adam", dict(lr=1e-3)),
    ("Adam", dict(lr=2e-3, betas=(0.8, 0.99), eps=1e-7, weight_decay=1e-2)),
    ("AdamW", dict(lr=1e-3)),
    ("AdamW", dict(lr=3e-3, betas=(0.85, 0.995), weight_decay=0.1)),
]

tensors = {}
init = [torch.randn(*s) for s in SHAPES]
for k, t in enumerate(init):
    tensors[f"init.p{k}"] = t
grads = []
for s in range(STEPS):
    row = []
    for k, shape in enumerate(SHAPES):
        g = None if (s, k) in NONE else torch.randn(*shape) * (0.1 + s)
        row.append(g)
        if g is not None:
            tensors[f"grad.{s}.p{k}"] = g
    grads.append(row)

for i, (kind, kwargs) in enumerate(CONFIGS):
    params = [t.clone().requires_grad_(True) for t in init]
    opt = getattr(torch.optim, kind)(params, foreach=False, **kwargs)
    for s in range(STEPS):
        if s == LR_DROP_STEP:
            for group in opt.param_groups:
                group["lr"] *= 0.5
        for p, g in zip(params, grads[s]):
            p.grad = None if g is None else g.clone()
        opt.step()
        for k, p in enumerate(params):
            tensors[f"c{i}.step{s}.p{k}"] = p.detach().clone()
    for k, p in enumerate(params):
        for name, v in opt.state[p].items():
            if torch.is_tensor(v) and v.numel() == p.numel():
                tensors[f"c{i}.state.p{k}.{name}"] = v
configs = [{"type": kind, **{k: list(v) if isinstance(v, tuple) else v
                             for k, v in kwargs.items()}} for kind, kwargs in CONFIGS]
save(f"{out}/optim.safetensors", tensors,
     {"configs": json.dumps(configs), "steps": STEPS, "lr_drop_step": LR_DROP_STEP})


# ---- schedules ----
def run_schedule(lr, make, metrics=None, epochs=40):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    sched = make(opt)
    lrs = []
    for e in range(epochs):
        opt.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[e])
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


# A loss that falls, flattens (within the relative threshold), falls, flattens again for
# longer, then wobbles upward: ReduceLROnPlateau reduces on both plateaus and at the end.
plateau_metrics = []
v = 1.0
for e in range(40):
    if e < 8:
        v *= 0.9
    elif e < 14:
        v *= 0.99999  # improvement smaller than threshold 1e-4: a plateau
    elif e < 20:
        v *= 0.85
    elif e < 30:
        v *= 1.0 + 0.001 * math.sin(e)
    else:
        v *= 1.01
    plateau_metrics.append(v)
accuracy_metrics = [min(0.9, 0.3 + 0.05 * e) + 0.001 * (e % 3) for e in range(40)]

P = torch.optim.lr_scheduler
SCHEDULES = [
    ("StepLR", dict(step_size=7, gamma=0.5), 0.1, None),
    ("StepLR", dict(step_size=3), 0.05, None),
    ("CosineAnnealingLR", dict(T_max=10, eta_min=1e-3), 0.05, None),
    ("CosineAnnealingLR", dict(T_max=25), 0.1, None),
    ("ReduceLROnPlateau", dict(factor=0.5, patience=2, cooldown=1, min_lr=1e-3), 0.1,
     plateau_metrics),
    ("ReduceLROnPlateau", dict(), 0.01, plateau_metrics),
    ("ReduceLROnPlateau", dict(mode="max", factor=0.2, patience=3, threshold=0.01,
                               threshold_mode="abs"), 0.1, accuracy_metrics),
]
cases = []
for kind, kwargs, lr, metrics in SCHEDULES:
    lrs = run_schedule(lr, lambda opt: getattr(P, kind)(opt, **kwargs), metrics)
    cases.append({"type": kind, "lr": lr, "kwargs": kwargs, "metrics": metrics, "lrs": lrs})
save(f"{out}/schedulers.safetensors", {"unused": torch.zeros(1)},
     {"cases": json.dumps(cases)})


# ---- gradient clipping ----
tensors, clip_cases = {}, []
for i, max_norm in enumerate([1.0, 50.0, 0.3]):
    gs = [torch.randn(*s) * 2 for s in SHAPES]
    params = [torch.zeros(*s, requires_grad=True) for s in SHAPES]
    for k, (p, g) in enumerate(zip(params, gs)):
        if i == 2 and k == 1:
            continue  # a parameter without a gradient is ignored
        p.grad = g.clone()
        tensors[f"c{i}.before.p{k}"] = g
    total = torch.nn.utils.clip_grad_norm_(params, max_norm)
    for k, p in enumerate(params):
        if p.grad is not None:
            tensors[f"c{i}.after.p{k}"] = p.grad
    clip_cases.append({"max_norm": max_norm, "total": float(total)})
save(f"{out}/clip.safetensors", tensors, {"cases": json.dumps(clip_cases)})
