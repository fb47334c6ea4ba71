"""The study's whole PyTorch training script as one process, for run_compare.py: import torch and
torchvision, scan the train and test folders (ImageFolder + Resize + ToTensor), build StudyCnn,
then per epoch train (DataLoader with shuffle, CrossEntropyLoss, the optimizer) and run the test
pass (eval, no_grad), printing one line per epoch. The study writes no checkpoint, so none is
written here. run_compare.py times the whole process from outside (start to exit) and reads its
peak memory; this script prints its own resident set after the imports (the post-start-up
baseline) so that peak can also be taken above it.

  OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_run.py --data DS --epochs 1 --optimizer rmsprop
"""
import argparse
import json
import os
import sys
import time

T0 = time.perf_counter()
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "py"))

import torch  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402
from study_models import StudyCnn, train_epoch  # noqa: E402


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


ap = argparse.ArgumentParser()
ap.add_argument("--data", required=True, help="DS with DS/seg_train and DS/seg_test (Kaggle layout)")
ap.add_argument("--model", default="simple")
ap.add_argument("--width", type=float, default=1.0)
ap.add_argument("--epochs", type=int, default=1)
ap.add_argument("--batch-size", type=int, default=8)
ap.add_argument("--lr", type=float, default=1e-4)
ap.add_argument("--optimizer", default="rmsprop", choices=["rmsprop", "adam"])
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--image-size", type=int, default=64)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
baseline = rss_mb()
t_imported = time.perf_counter()


def split_dir(name):
    d = os.path.join(a.data, name)
    inner = os.path.join(d, name)  # Kaggle nests the class folders one level down
    return inner if os.path.isdir(inner) else d


torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
tf = transforms.Compose([transforms.Resize((a.image_size, a.image_size)), transforms.ToTensor()])
train_ds = datasets.ImageFolder(split_dir("seg_train"), tf)
test_ds = datasets.ImageFolder(split_dir("seg_test"), tf)
train_loader = torch.utils.data.DataLoader(train_ds, batch_size=a.batch_size, shuffle=True)
test_loader = torch.utils.data.DataLoader(test_ds, batch_size=a.batch_size)
net = StudyCnn(a.model, num_classes=len(train_ds.classes), image_size=a.image_size, width=a.width)
crit = torch.nn.CrossEntropyLoss()
if a.optimizer == "rmsprop":
    opt = torch.optim.RMSprop(net.parameters(), lr=a.lr, alpha=0.9)
else:
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)

for epoch in range(a.epochs):
    t_epoch = time.perf_counter()
    loss_sum, correct, seen = train_epoch(net, train_loader, opt, crit)
    net.eval()
    test_loss, test_correct, test_seen = 0.0, 0, 0
    with torch.no_grad():
        for x, y in test_loader:
            out = net(x)
            test_loss += crit(out, y).item() * x.size(0)
            test_correct += int((out.argmax(1) == y).sum())
            test_seen += x.size(0)
    print(json.dumps({"epoch": epoch + 1, "train_loss": round(loss_sum / max(seen, 1), 5),
                      "test_acc": round(test_correct / max(test_seen, 1), 5),
                      "epoch_seconds": round(time.perf_counter() - t_epoch, 3)}), flush=True)

print(json.dumps({"impl": "pytorch " + torch.__version__, "baseline_rss_mb": round(baseline, 1),
                  "import_seconds": round(t_imported - T0, 3),
                  "in_script_seconds": round(time.perf_counter() - T0, 3)}), flush=True)
