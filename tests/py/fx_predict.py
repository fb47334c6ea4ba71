"""A checkpoint written by PyTorch, the way a user of the study's code would make one: the
bn_dropout model's state_dict saved as safetensors with the metadata `predict` reads (model,
classes, image_size, width), plus PNG images (lossless, so both sides see the same pixels) and
PyTorch's softmax probabilities for them through the study's pipeline: PIL open, convert("RGB"),
Resize((32, 32)), ToTensor, model.eval(). Files: OUT/predict/{model.safetensors,images/*.png},
OUT/predict.safetensors (probs [N, C] in sorted file order)."""
import json
import os
import sys

from st import require_torch, save, sources_hash, up_to_date

torch = require_torch()
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
import torchvision.transforms as T  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from study_models import StudyCnn  # noqa: E402

out = sys.argv[1]
target = f"{out}/predict.safetensors"
here = os.path.dirname(__file__)
digest = sources_hash(__file__, os.path.join(here, "st.py"), os.path.join(here, "study_models.py"))
if up_to_date(target, digest):
    sys.exit(0)

torch.manual_seed(5)
classes = ["cat", "dog", "owl"]
size, width = 32, 0.25
net = StudyCnn("bn_dropout", num_classes=len(classes), image_size=size, width=width)
with torch.no_grad():  # trained-looking batch-norm statistics, so eval mode matters
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.1, 0.1)
            m.num_batches_tracked.fill_(7)
    net.fc3.weight.mul_(6.0)  # confident, varied predictions, so labels are tested too
net.eval()
os.makedirs(f"{out}/predict/images", exist_ok=True)

rng = np.random.default_rng(3)
names = []
for i, (w, h) in enumerate([(150, 150), (97, 61), (40, 200), (32, 32), (1, 1), (150, 113)]):
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([128 + 100 * np.sin(x / (5.0 + i)), 255 * y / max(h, 1) + 0 * x,
                  np.where((x // 7 + y // 5 + i) % 2 == 0, 220.0, 30.0)], -1)
    a = a * (0.3 + 0.3 * i) + rng.normal(0, 20, a.shape)   # very different brightness per image
    a = np.roll(a, i, axis=2)                               # and channel order
    a = np.clip(a, 0, 255).astype(np.uint8)
    name = f"img_{i}.png"
    Image.fromarray(a).save(f"{out}/predict/images/{name}")
    names.append(name)
names.sort()
tf = T.Compose([T.Resize((size, size)), T.ToTensor()])
x = torch.stack([tf(Image.open(f"{out}/predict/images/{n}").convert("RGB")) for n in names])
with torch.no_grad():
    net.fc3.bias.sub_(net(x).mean(0))  # centre the logits: the predicted class varies per image
    probs = torch.softmax(net(x), dim=1)
save(f"{out}/predict/model.safetensors", net.state_dict(),
     {"model": "bn_dropout", "classes": json.dumps(classes), "image_size": str(size),
      "width": str(width)})
save(target, {"probs": probs}, {"files": json.dumps(names), "sources": digest})
