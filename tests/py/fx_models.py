"""Reference fixtures for the four custom CNNs, in two parts.

Full size (64x64 input, width 1, 6 classes, batch 2): PyTorch's initial weights and a batch, and in
train mode (dropout off, p=0) and eval mode the logits and the loss; in train mode also the running
statistics after the forward. These are continuous functions of the inputs: float32 rounding moves
them by rounding, so the test holds them to 1e-4.

Gradients and five RMSprop steps (alpha 0.9) are checked on a small instance of each model (the
same layers at width 0.25 on 16x16 inputs, batch 2) whose weights and input are chosen so that no
branch is near a tie. Max pooling routes the gradient to each window's maximum and ReLU passes it
where its input is positive; where two values of a window are within float32 rounding of each
other, or a ReLU's input is within rounding of 0, a float32 forward may take the other branch, and
that one flip changes the gradient of every parameter upstream of it by up to 1.7e-1 of its largest
element (measured 2026-12-02 on a 2-core AMD EPYC without AVX-512, engine against float64 at full
size: a ReLU flip after bn_dropout's train-mode batch norm in seq3; which elements flip depends on
the float32 summation order, so on the CPU and its BLAS). RMSprop's first steps move every weight by
about lr x 3.16 whatever the size of its gradient, so a flipped near-zero gradient element moves its
weight the other way: the full-size five-step losses differed from float64 by 2.6e-3 (simple) and
4.1e-3 (bn_dropout) on that machine. A full-size input always has such near-ties (a random
2x3x64x64 batch gives 9-24 ReLU inputs or pool gaps within 1e-6 of the layer's largest value, in
float64), so the small instance is drawn seed after seed until every ReLU input and every pool
window's gap between its two largest values is at least MARGIN x the layer's largest value, in
every forward the reference makes (train and eval, the gradient pass and all five steps), in
float64. float32 forward errors are about 1e-7 of a layer's largest value (the flips above were at
1.2e-7), so MARGIN = 1e-5 leaves a factor 100, and the test can hold every gradient to the strict
rule.

Each result is computed twice from the same float32 weights and inputs: in float32 (what PyTorch
users get) and in float64 (the exact answer to compare against). Why float64: some gradients of
these models are ill-conditioned in float32. The conv biases in front of BatchNorm have a true
gradient of zero in train mode (what remains is rounding noise), and the sigmoid model's early
layers sum many cancelling terms: PyTorch's own float32 gradients are up to 3-6% away from float64
there. The test therefore holds the engine to max(1e-4, 5 x PyTorch-float32's error) against
float64, per parameter; wherever PyTorch is accurate, that is 1e-4. The `torch_err.*` metadata
records PyTorch's error.

The RMSprop steps use lr 1e-5, not the study's 0.05: at 0.05 PyTorch's own loss reaches 1e18 by
the second step, and a diverging run amplifies rounding without bound."""
import json
import os
import sys

from st import require_torch, save, sources_hash, up_to_date

torch = require_torch()
from study_models import StudyCnn  # noqa: E402

out = sys.argv[1]
BATCH, STEPS, RMSPROP_LR = 2, 5, 1e-5
SMALL_WIDTH, SMALL_SIZE, MARGIN, MAX_DRAWS = 0.125, 8, 1e-5, 200
ALL = ["simple", "bn_dropout", "sigmoid", "tanh"]
VARIANTS = sys.argv[2:] or ALL
here = os.path.dirname(os.path.abspath(__file__))
digest = sources_hash(*(os.path.join(here, f) for f in ("fx_models.py", "study_models.py", "st.py")))


class NearTies:
    """Counts, over every forward while attached, the ReLU inputs within MARGIN of 0 and the max
    pool windows whose two largest values are within MARGIN of each other (relative to the layer's
    largest magnitude). A window whose largest value is itself within MARGIN of 0 holds ReLU
    outputs that are all (nearly) zero: whichever is chosen, the gradient behind it is zero."""

    def __init__(self, model):
        self.count = 0
        self.handles = [m.register_forward_hook(self.hook) for m in model.modules()
                        if isinstance(m, (torch.nn.ReLU, torch.nn.MaxPool2d))]

    def hook(self, module, inputs, output):
        z = inputs[0].detach()
        eps = MARGIN * z.abs().max()
        if isinstance(module, torch.nn.ReLU):
            self.count += int((z.abs() < eps).sum())
            return
        n, c, h, w = z.shape
        win = z[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2)
        top2 = win.permute(0, 1, 2, 4, 3, 5).reshape(-1, 4).topk(2, dim=1).values
        self.count += int(((top2[:, 0] - top2[:, 1] < eps) & (top2[:, 0] > eps)).sum())

    def remove(self):
        for h in self.handles:
            h.remove()


def run(model, x, y, mode):
    """Logits, loss, gradients and RMSprop losses of `model` (already holding the weights)."""
    init = {k: v.clone() for k, v in model.state_dict().items()}
    model.train(mode == "train")
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, y)
    model.zero_grad()
    loss.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    after = {k: b.clone() for k, b in model.state_dict().items() if "running" in k}
    model.load_state_dict(init)
    opt = torch.optim.RMSprop(model.parameters(), lr=RMSPROP_LR, alpha=0.9)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss_s = torch.nn.functional.cross_entropy(model(x), y)
        loss_s.backward()
        opt.step()
        losses.append(loss_s.item())
    model.load_state_dict(init)
    return logits.detach(), loss.detach(), grads, after, losses


def rel(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30))


def full_size(variant, tensors):
    """Logits, loss and running statistics of the full-size model."""
    torch.manual_seed(100 + ALL.index(variant))
    m32 = StudyCnn(variant, dropout=0.0)
    init = {k: v.clone() for k, v in m32.state_dict().items()}
    m64 = StudyCnn(variant, dropout=0.0).double()
    m64.load_state_dict(init)
    x = torch.rand(BATCH, 3, 64, 64)
    y = torch.randint(0, 6, (BATCH,))
    tensors.update({"input": x, "target": y})
    tensors.update({"init." + k: v for k, v in init.items()})
    with torch.no_grad():
        for mode in ("train", "eval"):
            for m in (m32, m64):
                m.load_state_dict(init)
                m.train(mode == "train")
            tensors[mode + ".logits"] = m64(x.double()).float()
            tensors[mode + ".loss"] = torch.nn.functional.cross_entropy(
                tensors[mode + ".logits"].double(), y).float().reshape(())
            tensors[mode + ".logits32"] = m32(x)
            if mode == "train":
                for k, b in m64.state_dict().items():
                    if "running" in k:
                        tensors["train.after." + k] = b.float()


def draw_small(variant):
    """The first small instance (weights, input, target) with no near-tie in any forward."""
    for draw in range(MAX_DRAWS):
        torch.manual_seed(1000 * (1 + ALL.index(variant)) + draw)
        m32 = StudyCnn(variant, image_size=SMALL_SIZE, width=SMALL_WIDTH, dropout=0.0)
        x = torch.rand(BATCH, 3, SMALL_SIZE, SMALL_SIZE)
        y = torch.randint(0, 6, (BATCH,))
        m64 = StudyCnn(variant, image_size=SMALL_SIZE, width=SMALL_WIDTH, dropout=0.0).double()
        m64.load_state_dict(m32.state_dict())
        ties = NearTies(m64)
        results = {mode: run(m64, x.double(), y, mode) for mode in ("train", "eval")}
        ties.remove()
        if ties.count == 0:
            return m32, x, y, results, draw
    sys.exit(f"fx_models.py: no {variant} instance free of near-ties in {MAX_DRAWS} draws")


for variant in VARIANTS:
    path = f"{out}/model_{variant}.safetensors"
    if up_to_date(path, digest):  # a minute to write: reuse when unchanged
        print(variant, "up to date")
        continue
    tensors = {}
    full_size(variant, tensors)
    m32, x, y, r64, draw = draw_small(variant)
    tensors.update({"small.input": x, "small.target": y})
    tensors.update({"small.init." + k: v.clone() for k, v in m32.state_dict().items()})
    meta = {"sources": digest, "rmsprop_lr": str(RMSPROP_LR), "small.width": str(SMALL_WIDTH),
            "small.image_size": str(SMALL_SIZE), "small.draw": str(draw)}
    for mode in ("train", "eval"):
        _, _, g32, _, l32 = run(m32, x, y, mode)
        _, _, g64, _, l64 = r64[mode]
        for k in g64:
            tensors[f"small.{mode}.grad.{k}"] = g64[k].float()
        meta[mode + ".torch_err"] = json.dumps({k: rel(g32[k], g64[k]) for k in g64})
        meta[mode + ".rmsprop_losses"] = json.dumps(l64)
        meta[mode + ".rmsprop_losses32"] = json.dumps(l32)
    save(path, tensors, meta)
    print(variant, "small instance: draw", draw, "worst torch f32 grad error",
          max(json.loads(meta["train.torch_err"]).values()))
