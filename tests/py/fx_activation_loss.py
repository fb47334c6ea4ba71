"""Reference fixtures for the activations, add, concat, flatten and cross_entropy: random inputs,
PyTorch outputs and the gradients of sum(y * gy) for a random upstream gradient gy. One file per
op family, per-case parameters in the `cases` metadata (JSON)."""
import json
import sys

from st import require_torch, save

torch = require_torch()
F = torch.nn.functional
out = sys.argv[1]
torch.manual_seed(2)


def run(fn, inputs):
    """y = fn(*inputs), then backward of sum(y * gy); returns y, gy and the inputs' grads."""
    y = fn(*inputs)
    gy = torch.randn_like(y)
    (y * gy).sum().backward()
    return y, gy, [x.grad for x in inputs]


# ---- activations: any shape; odd sizes, one element, and one large enough to go parallel ----
KINDS = {"relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid, "tanh": torch.tanh}
SHAPES = [(2, 3, 5, 7), (1, 1, 1, 1), (7,), (1, 5, 3), (2, 8, 48, 48)]
# Exact kinks (0 and 6, both signs of zero) and saturated tails.
KINKS = [-1.0, 0.0, -0.0, 6.0, 3.0, 7.0, 1e-3, 5.999, 6.001, -100.0, 100.0, -6.0]
tensors, cases = {}, []
for kind, fn in KINDS.items():
    for shape in SHAPES + ["kinks"]:
        if shape == "kinks":
            x = torch.tensor(KINKS, requires_grad=True)
        else:
            x = (torch.randn(*shape) * 4).requires_grad_()  # relu6's upper kink is hit too
        y, gy, (gx,) = run(fn, [x])
        pre = f"c{len(cases)}."
        tensors.update({pre + "x": x, pre + "y": y, pre + "gy": gy, pre + "gx": gx})
        cases.append({"kind": kind, "shape": list(x.shape), "kinks": shape == "kinks"})
save(f"{out}/activation.safetensors", tensors, {"cases": json.dumps(cases)})

# ---- add ----
tensors, cases = {}, []
for i, shape in enumerate([(2, 3, 4, 5), (1,), (3, 7), (2, 8, 48, 48)]):
    a = torch.randn(*shape, requires_grad=True)
    b = torch.randn(*shape, requires_grad=True)
    y, gy, (ga, gb) = run(torch.add, [a, b])
    pre = f"c{i}."
    tensors.update({pre + "a": a, pre + "b": b, pre + "y": y, pre + "gy": gy,
                    pre + "ga": ga, pre + "gb": gb})
    cases.append({"shape": list(shape)})
save(f"{out}/add.safetensors", tensors, {"cases": json.dumps(cases)})

# ---- concat: (shapes, dim, which inputs require grad) ----
CONCAT = [
    ([(2, 3, 4, 5), (2, 1, 4, 5), (2, 6, 4, 5)], 1, [True, True, True]),   # NCHW channels
    ([(3, 2), (3, 5)], -1, [True, True]),
    ([(4,), (1,), (3,)], 0, [True, True, True]),
    ([(1, 3, 5)], 0, [True]),                                               # one input
    ([(1, 2, 3, 3), (2, 2, 3, 3)], 0, [True, True]),                        # batch
    ([(2, 3, 4), (2, 3, 1)], -1, [False, True]),                            # one without grad
    ([(2, 4, 3), (2, 4, 2), (2, 4, 5)], 2, [True, False, True]),
    ([(8, 64, 16, 16), (8, 32, 16, 16)], 1, [True, True]),                  # parallel path
]
tensors, cases = {}, []
for i, (shapes, dim, grads) in enumerate(CONCAT):
    xs = [torch.randn(*s, requires_grad=g) for s, g in zip(shapes, grads)]
    y = torch.cat(xs, dim)
    gy = torch.randn_like(y)
    (y * gy).sum().backward()
    pre = f"c{i}."
    tensors.update({pre + "y": y, pre + "gy": gy})
    for j, x in enumerate(xs):
        tensors[pre + f"x{j}"] = x
        if grads[j]:
            tensors[pre + f"gx{j}"] = x.grad
    cases.append({"n": len(xs), "dim": dim, "grad": grads})
save(f"{out}/concat.safetensors", tensors, {"cases": json.dumps(cases)})

# ---- flatten ----
tensors, cases = {}, []
for i, (shape, start) in enumerate([((2, 3, 4, 5), 1), ((1, 3, 5), 0), ((2, 3, 4, 5), 2),
                                    ((3, 2, 5), -1), ((2, 3, 4, 5), -3)]):
    x = torch.randn(*shape, requires_grad=True)
    y, gy, (gx,) = run(lambda t: torch.flatten(t, start), [x])
    pre = f"c{i}."
    tensors.update({pre + "x": x, pre + "y": y, pre + "gy": gy, pre + "gx": gx})
    cases.append({"start": start})
save(f"{out}/flatten.safetensors", tensors, {"cases": json.dumps(cases)})


# ---- cross_entropy ----
def formula(z, t, w, e):
    """Our statement of PyTorch's mean cross-entropy (kernels/cpu/loss.cpp), in float64: checked
    against F.cross_entropy here so the fixture documents which formula the engine matches."""
    z, n, c = z.double(), z.shape[0], z.shape[1]
    w = torch.ones(c, dtype=torch.float64) if w is None else w.double()
    nlp = -torch.log_softmax(z, 1)
    per = (1 - e) * w[t] * nlp[torch.arange(n), t] + e / c * (nlp * w).sum(1)
    return per.sum() / w[t].sum()


# (N, C, weighted, label_smoothing, logit scale)
CE = [(n, c, wt, e, 1.0) for n in (1, 7) for c in (6, 2) for wt in (False, True)
      for e in (0.0, 0.1)]
CE += [(7, 6, False, 0.0, 80.0), (7, 6, True, 0.1, 80.0), (5, 3, True, 0.1, 1e4),  # stability
       (4, 6, True, 1.0, 1.0),                                                    # all smoothing
       (8192, 6, True, 0.1, 3.0)]                                                 # parallel path
tensors, cases = {}, []
for i, (n, c, weighted, e, scale) in enumerate(CE):
    z = (torch.randn(n, c) * scale).requires_grad_()
    t = torch.randint(0, c, (n,))
    w = torch.rand(c) * 1.8 + 0.2 if weighted else None
    loss = F.cross_entropy(z, t, weight=w, label_smoothing=e)
    ref = formula(z.detach(), t, w, e)
    assert abs(loss.item() - ref.item()) <= 1e-5 * max(1.0, abs(ref.item())), (i, loss, ref)
    gy = torch.randn(())
    (loss * gy).backward()
    pre = f"c{i}."
    # st.save writes 0-d arrays as [1] (numpy's ascontiguousarray): say so explicitly.
    tensors.update({pre + "logits": z, pre + "targets": t, pre + "loss": loss.reshape(1),
                    pre + "gy": gy.reshape(1), pre + "glogits": z.grad})
    if weighted:
        tensors[pre + "weight"] = w
    cases.append({"n": n, "c": c, "weighted": weighted, "label_smoothing": e, "scale": scale})
save(f"{out}/cross_entropy.safetensors", tensors, {"cases": json.dumps(cases)})
