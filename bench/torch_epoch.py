"""The study's PyTorch training loop (ImageFolder + Resize((64,64)) + ToTensor, DataLoader with
shuffle, StudyCnn, CrossEntropyLoss, RMSprop alpha 0.9), timed per epoch for epoch_compare.py.
Run with /usr/bin/python3 (Debian's python3-torch).

Prints one JSON line per epoch. images_per_s is measured exactly as `train` measures
images_per_second in metrics.csv: the images of the epoch divided by the wall time from the
start of the epoch (before the loader yields its first batch, so worker start-up and decoding are
included) to the end of the last optimizer step, with the per-step loss and accuracy sums the
progress line needs. The test pass is not timed on either side, so none is run here.

  OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_epoch.py --train-dir DS/seg_train --epochs 2
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "py"))

import PIL  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402
from study_models import StudyCnn, train_epoch  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--train-dir", required=True,
                help="DIR/<class>/*.jpg (Kaggle's seg_train, either level)")
ap.add_argument("--model", default="simple")
ap.add_argument("--width", type=float, default=1.0)
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--batch-size", type=int, default=8)
ap.add_argument("--lr", type=float, default=1e-4)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--workers", type=int, default=0, help="DataLoader num_workers (study: 0)")
ap.add_argument("--image-size", type=int, default=64)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()

# Kaggle nests the class folders one level down (seg_train/seg_train/<class>); `train` accepts
# either level, so accept both here too.
root = a.train_dir
inner = os.path.join(root, os.path.basename(os.path.normpath(root)))
if os.path.isdir(inner):
    root = inner

torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
tf = transforms.Compose([transforms.Resize((a.image_size, a.image_size)), transforms.ToTensor()])
ds = datasets.ImageFolder(root, tf)
loader = torch.utils.data.DataLoader(ds, batch_size=a.batch_size, shuffle=True,
                                     num_workers=a.workers)
net = StudyCnn(a.model, num_classes=len(ds.classes), image_size=a.image_size, width=a.width)
crit = torch.nn.CrossEntropyLoss()
opt = torch.optim.RMSprop(net.parameters(), lr=a.lr, alpha=0.9)

for epoch in range(a.epochs):
    t0 = time.perf_counter()
    loss_sum, correct, seen = train_epoch(net, loader, opt, crit)
    dt = time.perf_counter() - t0
    print(json.dumps({"impl": "pytorch " + torch.__version__,
                      "torchvision": torchvision.__version__, "pillow": PIL.__version__,
                      "model": a.model, "width": a.width,
                      "epoch": epoch + 1, "images": seen, "train_seconds": round(dt, 3),
                      "images_per_s": round(seen / dt, 4), "threads": a.threads,
                      "workers": a.workers, "train_loss": round(loss_sum / max(seen, 1), 5),
                      "train_acc": round(correct / max(seen, 1), 5)}), flush=True)
