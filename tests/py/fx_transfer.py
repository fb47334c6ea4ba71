"""Reference fixtures for ResNet-50 and MobileNetV2 (tests/test_transfer.cpp).

Per architecture, the weights come from the real converter, `tools/convert_torchvision.py ARCH
--random-seed 0` (torchvision's initialisation, BatchNorm weights, biases and statistics drawn at
random so that BN cannot pass as a no-op), and the file is what the C++ side loads: the round
trip from torchvision through the converter to the engine is part of the test.

eval:  a batch of 2 at 224x224, the 1000-class logits in eval mode (running statistics).
train: the study's setting, a 6-class head (drawn here) on 64x64 inputs, batch 2, the model in
       training mode (BatchNorm on batch statistics, running statistics updated: what the study's
       PyTorch loop did with its frozen backbone), everything frozen but the last stage (`layer4`
       / `features.17` onward) and the head; classifier.0's dropout is off (p = 0). Saved: the
       logits, the cross-entropy loss, the gradient of every trainable parameter, and every
       BatchNorm's running statistics after the forward.

Every reference is computed in float64 from the float32 weights and inputs (the exact answer for
those inputs). Gradients pass through ReLU/ReLU6 masks, and a float32 forward whose value lands
on the other side of a kink would move an upstream gradient element by its whole size (see
fx_models.py), so the train batch is drawn seed after seed until every ReLU/ReLU6 input in the
trainable part is at least MARGIN x that call's largest magnitude away from 0 (and 6).
"""
import copy
import importlib.util
import os
import subprocess
import sys

from st import require_torch, save, sources_hash, up_to_date

torch = require_torch()
import torchvision  # noqa: E402

out = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
converter = os.path.join(root, "tools", "convert_torchvision.py")
digest = sources_hash(os.path.join(here, "fx_transfer.py"), os.path.join(here, "st.py"), converter)
MARGIN, MAX_DRAWS, CLASSES = 1e-5, 100, 6
ARCHS = {"resnet50": ("layer4", "fc"), "mobilenet_v2": ("features.17", "classifier.1")}
os.makedirs(out, exist_ok=True)


def load_converted(path, arch):
    from st import load
    tensors, meta = load(path)
    model = getattr(torchvision.models, arch)(weights=None)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()})
    return model, meta


def trainable_names(model, first):
    names, on = [], False
    for n, _ in model.named_parameters():
        on = on or n.startswith(first + ".")
        if on:
            names.append(n)
    return names


class Kinks:
    """Smallest distance of a ReLU/ReLU6 input from its kink, relative to the call's largest
    magnitude, over the modules given."""

    def __init__(self, modules):
        self.worst = float("inf")
        # A pre-hook: torchvision's ReLUs are in place, so a forward hook would see the output.
        self.handles = [m.register_forward_pre_hook(self.hook) for m in modules]

    def hook(self, m, inp):
        x = inp[0].detach()
        scale = x.abs().max().item()
        d = x.abs()
        if isinstance(m, torch.nn.ReLU6):
            d = torch.minimum(d, (x - 6).abs())
        if scale > 0:
            self.worst = min(self.worst, d.min().item() / scale)

    def close(self):
        for h in self.handles:
            h.remove()


def build(arch, first, head):
    path = os.path.join(out, f"transfer_{arch}.safetensors")
    if up_to_date(os.path.join(out, f"transfer_{arch}_ref.safetensors"), digest) and \
            os.path.exists(path):
        return
    subprocess.run([sys.executable, converter, arch, "--random-seed", "0", "--out", path],
                   check=True)
    model, meta = load_converted(path, arch)
    ref = {}
    # The converter's round trip: the file holds torchvision's own state_dict for that seed.
    spec = importlib.util.spec_from_file_location("convert_torchvision", converter)
    conv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conv)
    torch.manual_seed(0)
    direct = getattr(torchvision.models, arch)(weights=None)
    conv.randomise_batch_norm(direct, 0)
    diff = max(float((model.state_dict()[k].double() - v.double()).abs().max())
               for k, v in direct.state_dict().items())
    assert set(direct.state_dict()) == set(model.state_dict())

    # eval: 1000-class logits at 224.
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 224, 224, generator=g)
    m64 = load_converted(path, arch)[0].double().eval()
    with torch.no_grad():
        ref["eval.x"] = x
        ref["eval.logits"] = m64(x.double()).float()

    # train: 6-class head, last stage and head trainable, training mode, 64x64.
    head_mod = model.fc if arch == "resnet50" else model.classifier[1]
    new_head = torch.nn.Linear(head_mod.in_features, CLASSES)
    with torch.no_grad():
        new_head.weight.copy_(torch.randn(CLASSES, head_mod.in_features, generator=g) * 0.05)
        new_head.bias.copy_(torch.randn(CLASSES, generator=g) * 0.1)
    if arch == "resnet50":
        model.fc = new_head
    else:
        model.classifier[1] = new_head
        model.classifier[0].p = 0.0
    ref["train.head.weight"] = new_head.weight.detach().clone()
    ref["train.head.bias"] = new_head.bias.detach().clone()
    names = trainable_names(model, first)

    def kink_mods(m):
        mods = [k for k in dict(m.named_modules())[first].modules()
                if isinstance(k, (torch.nn.ReLU, torch.nn.ReLU6))]
        if arch == "mobilenet_v2":
            mods += [k for k in m.features[18].modules() if isinstance(k, torch.nn.ReLU6)]
        return mods

    state0 = {k: v.clone() for k, v in model.state_dict().items()}

    def fresh(dtype):
        m = copy.deepcopy(model).to(dtype)
        m.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v
                           for k, v in state0.items()})
        m.train()
        for n, p in m.named_parameters():
            p.requires_grad_(n in names)
        return m

    def tail(m, x):
        """The model from `first` on: the stage, what follows it, pooling and the head."""
        if arch == "resnet50":
            h = m.layer4(x)
            return m.fc(torch.flatten(m.avgpool(h), 1))
        h = m.features[18](m.features[17](x))
        return m.classifier(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(h, 1), 1))

    # The whole model in training mode: logits, loss, the head's gradient, running statistics.
    gx = torch.Generator().manual_seed(100)
    x = torch.randn(2, 3, 64, 64, generator=gx)
    t = torch.randint(0, CLASSES, (2,), generator=gx)
    m = fresh(torch.float64)
    stage_in = {}
    hook = dict(m.named_modules())[first].register_forward_pre_hook(lambda mod, inp: stage_in.setdefault("x", inp[0]))
    logits = m(x.double())
    hook.remove()
    loss = torch.nn.functional.cross_entropy(logits, t)
    loss.backward()
    ref["train.x"], ref["train.targets"] = x, t
    ref["train.logits"], ref["train.loss"] = logits.detach().float(), loss.detach().float()
    for n, p in m.named_parameters():
        if n.startswith(head + "."):
            ref["grad." + n] = p.grad.float()
    for n, b in m.named_buffers():
        if "running_" in n:
            ref["after." + n] = b.float()
    # PyTorch's own float32 error on the head's gradient, against the float64 reference: the
    # whole backbone's rounding, amplified by train-mode BatchNorm over a batch of 2 (the test
    # allows a multiple of it, as for the stage's gradients below).
    m32 = fresh(torch.float32)
    torch.nn.functional.cross_entropy(m32(x), t).backward()
    head_err = {}
    for n, p in m32.named_parameters():
        if n.startswith(head + "."):
            head_err[n] = float((p.grad.double() - m.get_parameter(n).grad).abs().max() /
                                m.get_parameter(n).grad.abs().max().clamp_min(1e-300))
    print(f"{arch}: train-mode head gradient, PyTorch float32 error up to "
          f"{max(head_err.values()):.1e}")

    # The trainable part's gradients, from the stage's input (rounded to float32) on: 40-odd
    # frozen float32 layers in front would carry ~1e-5 of rounding into the stage, enough to flip
    # a ReLU there (measured: ours and PyTorch's float32 both moved layer4's gradients by 1e-2).
    xs = stage_in["x"].detach().float()
    for draw in range(MAX_DRAWS):
        tt = torch.randint(0, CLASSES, (xs.shape[0],), generator=gx)
        noise = torch.randn(xs.shape, generator=gx) * 0.1 * xs.std() if draw else 0
        xd = (xs + noise).float()
        m = fresh(torch.float64)
        k = Kinks(kink_mods(m))
        out_d = tail(m, xd.double())
        k.close()
        if k.worst < MARGIN:
            continue
        torch.nn.functional.cross_entropy(out_d, tt).backward()
        m32 = fresh(torch.float32)
        torch.nn.functional.cross_entropy(tail(m32, xd), tt).backward()
        g32 = {n: p.grad for n, p in m32.named_parameters() if p.grad is not None}
        torch_err = {}
        ref["stage.x"], ref["stage.targets"] = xd, tt
        for n, p in m.named_parameters():
            if n in names:
                ref["stage_grad." + n] = p.grad.float()
                torch_err[n] = float((g32[n].double() - p.grad).abs().max() /
                                     p.grad.abs().max().clamp_min(1e-300))
        print(f"{arch}: stage batch draw {draw}, nearest kink {k.worst:.2e} of the largest "
              f"input, {len(names)} trainable tensors, PyTorch float32 gradient error up to "
              f"{max(torch_err.values()):.1e}")
        break
    else:
        sys.exit(f"{arch}: no tie-free stage batch in {MAX_DRAWS} draws")
    save(os.path.join(out, f"transfer_{arch}_ref.safetensors"), ref,
         {"sources": digest, "trainable_from": first, "head": head,
          "roundtrip_max_abs_diff": repr(diff),
          **{"torch_err." + n: f"{e:.3e}" for n, e in torch_err.items()},
          **{"torch_err.train." + n: f"{e:.3e}" for n, e in head_err.items()}})


for arch, (first, head) in ARCHS.items():
    build(arch, first, head)
