"""The study's frozen-backbone fine-tune loop in PyTorch, on a converted weights file, for
finetune_compare.py. Run with /usr/bin/python3 (Debian's python3-torch 1.13, torchvision 0.14).

What it runs is the study's loop as it was written:
- torchvision's resnet50 / mobilenet_v2 with the state dict of the weights file (the engine's
  safetensors, tools/convert_torchvision.py) loaded strictly, every parameter frozen
  (requires_grad=False), then a new head as the study made it: `model.fc = nn.Linear(2048, 6)` /
  `model.classifier[-1] = nn.Linear(1280, 6)` (its class count taken from the data);
- `model.train()` every epoch, so the frozen backbone's BatchNorm layers normalise with each
  batch's statistics and keep updating their running statistics ("BatchNorm as the study left
  it"; `train --frozen-bn train` does the same);
- RMSprop(lr 0.05, alpha 0.9) over the trainable parameters, CrossEntropyLoss,
  ReduceLROnPlateau(factor 0.2, patience 15) stepped every 50 batches on their mean loss
  (`if i % 50 == 49`, i counted from each epoch's start);
- ImageFolder with the weights' preprocessing (Resize(256) + CenterCrop(224) + ToTensor +
  Normalize(ImageNet mean/std), the sizes and statistics read from the weights file as `train`
  reads them), DataLoader(batch 8, shuffle, num_workers 0), 10 epochs, a test pass after each
  (model.eval(), no_grad).

Prints one JSON line per epoch (train/test loss and accuracy, the epoch's train and test seconds,
and `elapsed`: seconds since this script's first line, after the interpreter started) and a last
line {"done": ...}. Whole-process wall time is measured by whoever runs it (finetune_compare.py).

  /usr/bin/python3 bench/torch_finetune.py --model resnet50 --weights W.safetensors \
      --train-dir D/seg_train --test-dir D/seg_test --epochs 10
"""
import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "py"))

import torch  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402
import st  # noqa: E402  (tests/py/st.py: a minimal safetensors reader)

T_IMPORTED = time.perf_counter()

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="resnet50", choices=["resnet50", "mobilenet_v2"])
ap.add_argument("--weights", required=True, help="converted weights (tools/convert_torchvision.py)")
ap.add_argument("--train-dir", required=True, help="DIR/<class>/*.jpg (either level)")
ap.add_argument("--test-dir", required=True)
ap.add_argument("--epochs", type=int, default=10)
ap.add_argument("--batch-size", type=int, default=8)
ap.add_argument("--lr", type=float, default=0.05)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--workers", type=int, default=0, help="DataLoader num_workers (study: 0)")
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()


def class_root(d):
    """Kaggle nests the class folders one level down (seg_train/seg_train/<class>); `train`
    accepts either level, so accept both here too."""
    inner = os.path.join(d, os.path.basename(os.path.normpath(d)))
    return inner if os.path.isdir(inner) else d


def load_model(path, arch, num_classes):
    tensors, meta = st.load(path)
    if meta.get("model", arch) != arch:
        sys.exit(f"torch_finetune: {path} holds {meta.get('model')}, not {arch}")
    model = getattr(torchvision.models, arch)(weights=None)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()},
                          strict=True)
    for p in model.parameters():
        p.requires_grad = False
    if arch == "resnet50":
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    else:
        model.classifier[-1] = nn.Linear(model.classifier[-1].in_features, num_classes)
    return model, meta


def preprocessing(meta):
    """torchvision's ImageClassification preset (what `weights.transforms()` gives) written out:
    PIL bilinear (antialiased) resize of the shorter side, centre crop, ToTensor, Normalize."""
    return transforms.Compose([
        transforms.Resize(int(meta.get("resize_size", 256)),
                          interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.CenterCrop(int(meta.get("image_size", 224))),
        transforms.ToTensor(),
        transforms.Normalize(json.loads(meta.get("mean", "[0.485, 0.456, 0.406]")),
                             json.loads(meta.get("std", "[0.229, 0.224, 0.225]"))),
    ])


def train_epoch(model, loader, crit, opt, sched):
    model.train()  # the study's: BatchNorm of the frozen backbone in training mode
    loss_sum, correct, seen, running = 0.0, 0, 0, 0.0
    for i, (x, y) in enumerate(loader):
        opt.zero_grad()
        out = model(x)
        loss = crit(out, y)
        loss.backward()
        opt.step()
        running += loss.item()
        if i % 50 == 49:
            sched.step(running / 50)
            running = 0.0
        loss_sum += loss.item() * x.size(0)
        correct += int((out.argmax(1) == y).sum())
        seen += x.size(0)
    return loss_sum / max(seen, 1), correct / max(seen, 1)


def test_epoch(model, loader, crit):
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            out = model(x)
            loss_sum += crit(out, y).item() * x.size(0)
            correct += int((out.argmax(1) == y).sum())
            seen += x.size(0)
    return loss_sum / max(seen, 1), correct / max(seen, 1)


def main():
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    train_root, test_root = class_root(a.train_dir), class_root(a.test_dir)
    classes = sorted(e.name for e in os.scandir(train_root) if e.is_dir())
    model, meta = load_model(a.weights, a.model, len(classes))
    tf = preprocessing(meta)
    train_ds = datasets.ImageFolder(train_root, tf)
    test_ds = datasets.ImageFolder(test_root, tf)
    train_loader = torch.utils.data.DataLoader(train_ds, batch_size=a.batch_size, shuffle=True,
                                               num_workers=a.workers)
    test_loader = torch.utils.data.DataLoader(test_ds, batch_size=a.batch_size, shuffle=False,
                                              num_workers=a.workers)
    crit = nn.CrossEntropyLoss()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.RMSprop(params, lr=a.lr, alpha=0.9)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.2, patience=15)
    t_ready = time.perf_counter()
    print(json.dumps({"impl": "pytorch " + torch.__version__,
                      "torchvision": torchvision.__version__, "model": a.model,
                      "trainable": sum(p.numel() for p in params),
                      "train_images": len(train_ds), "test_images": len(test_ds),
                      "import_s": round(T_IMPORTED - T_START, 3),
                      "setup_s": round(t_ready - T_IMPORTED, 3)}), flush=True)

    test_acc = None
    for epoch in range(1, a.epochs + 1):
        lr = opt.param_groups[0]["lr"]
        t0 = time.perf_counter()
        train_loss, train_acc = train_epoch(model, train_loader, crit, opt, sched)
        t1 = time.perf_counter()
        test_loss, test_acc = test_epoch(model, test_loader, crit)
        t2 = time.perf_counter()
        print(json.dumps({"epoch": epoch, "lr": lr, "train_loss": round(train_loss, 5),
                          "train_acc": round(train_acc, 5), "test_loss": round(test_loss, 5),
                          "test_acc": round(test_acc, 5), "train_s": round(t1 - t0, 3),
                          "test_s": round(t2 - t1, 3), "epoch_s": round(t2 - t0, 3),
                          "elapsed": round(t2 - T_START, 3)}), flush=True)
    print(json.dumps({"done": a.epochs, "test_acc": test_acc,
                      "elapsed": round(time.perf_counter() - T_START, 3),
                      "peak_rss_mb": round(
                          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}),
          flush=True)


main()
