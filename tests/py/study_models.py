"""The study's four custom CNNs in PyTorch, with its module names (seq1..3, fc1..3), used as
the reference for the engine's models/custom_cnn.cpp."""
import torch
from torch import nn

ACT = {"simple": nn.ReLU, "bn_dropout": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class StudyCnn(nn.Module):
    def __init__(self, variant, num_classes=6, image_size=64, width=1.0, dropout=0.5):
        super().__init__()
        act = ACT[variant]
        bn = variant == "bn_dropout"

        def ch(c):
            return max(1, round(c * width))

        def block(cin, chans):
            layers = []
            for c in chans:
                layers.append(nn.Conv2d(cin, c, 3, padding=1))
                if bn:
                    layers.append(nn.BatchNorm2d(c))
                layers.append(act())
                cin = c
            layers.append(nn.MaxPool2d(2))
            return nn.Sequential(*layers)

        self.seq1 = block(3, [ch(32), ch(64), ch(64)])
        self.seq2 = block(ch(64), [ch(128), ch(256), ch(256)])
        self.seq3 = block(ch(256), [ch(512), ch(1024), ch(1024)])
        side = image_size // 8
        self.fc1 = nn.Linear(ch(1024) * side * side, ch(256))
        self.fc2 = nn.Linear(ch(256), ch(256))
        self.fc3 = nn.Linear(ch(256), num_classes)
        self.act = act()
        self.dropout = nn.Dropout(dropout) if bn else None
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.seq3(self.seq2(self.seq1(x)))
        x = self.act(self.fc1(torch.flatten(x, 1)))
        if self.dropout is not None:
            x = self.dropout(x)
        x = self.act(self.fc2(x))
        return self.fc3(x)


def train_epoch(net, loader, opt, crit):
    """The study's training loop over one epoch (zero_grad, forward, loss, backward, step), with
    the per-step loss and accuracy sums its progress line needs: (loss_sum, correct, seen)."""
    net.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for x, y in loader:
        opt.zero_grad()
        out = net(x)
        loss = crit(out, y)
        loss.backward()
        opt.step()
        loss_sum += loss.item() * x.size(0)
        correct += int((out.argmax(1) == y).sum())
        seen += x.size(0)
    return loss_sum, correct, seen
