#!/usr/bin/env python3
"""Plots of training runs, drawn from the files `train` and `evaluate` write (matplotlib; run with
/usr/bin/python3 on Debian, package python3-matplotlib).

  plot.py --run DIR                       DIR/accuracy.png (train blue, test red, as the study's
                                          figures) and DIR/loss.png from DIR/metrics.csv; also
                                          DIR/confusion.png when DIR/evaluation.json exists
  plot.py --compare DIR... --out FILE     one accuracy panel per run, side by side
  plot.py --table DIR...                  markdown table of final and best accuracies
  plot.py --confusion JSON --out FILE     confusion matrix image from evaluate --json output
"""
import argparse
import csv
import json
import os
import sys


def die(msg):
    print(f"plot.py: {msg}", file=sys.stderr)
    sys.exit(1)


def pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        die("matplotlib is missing: apt-get install python3-matplotlib, and run with /usr/bin/python3")


def read_metrics(run):
    path = os.path.join(run, "metrics.csv")
    if not os.path.exists(path):
        die(f"{path} does not exist (is {run} a run folder written by train?)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc"}
    if not rows or not need <= set(rows[0]):
        die(f"{path}: no epochs, or not the columns train writes")
    return {k: [float(r[k]) for r in rows] for k in rows[0]}


def run_name(run):
    cfg = os.path.join(run, "config.json")
    try:
        with open(cfg) as f:
            return json.load(f).get("model", os.path.basename(os.path.normpath(run)))
    except (OSError, ValueError):
        return os.path.basename(os.path.normpath(run))


def integer_epochs(ax):
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def accuracy_axes(ax, m, title):
    ax.plot(m["epoch"], m["train_acc"], color="blue", marker="o", ms=3, label="train")
    ax.plot(m["epoch"], m["test_acc"], color="red", marker="o", ms=3, label="test")
    ax.set_xlabel("epoch")
    integer_epochs(ax)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()


def plot_run(run):
    plt = pyplot()
    m = read_metrics(run)
    name = run_name(run)
    fig, ax = plt.subplots(figsize=(6, 4))
    accuracy_axes(ax, m, f"{name}: accuracy")
    fig.tight_layout()
    fig.savefig(os.path.join(run, "accuracy.png"), dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(m["epoch"], m["train_loss"], color="blue", marker="o", ms=3, label="train")
    ax.plot(m["epoch"], m["test_loss"], color="red", marker="o", ms=3, label="test")
    ax.set_xlabel("epoch")
    integer_epochs(ax)
    ax.set_ylabel("cross-entropy loss")
    ax.set_title(f"{name}: loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(run, "loss.png"), dpi=120)
    plt.close(fig)
    ev = os.path.join(run, "evaluation.json")
    if os.path.exists(ev):
        plot_confusion(ev, os.path.join(run, "confusion.png"))


def plot_compare(runs, out):
    plt = pyplot()
    fig, axes = plt.subplots(1, len(runs), figsize=(4.5 * len(runs), 4), squeeze=False)
    for ax, run in zip(axes[0], runs):
        accuracy_axes(ax, read_metrics(run), run_name(run))
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def table(runs):
    lines = ["| model | epochs | final train acc | final test acc | best test acc |",
             "|---|---|---|---|---|"]
    for run in runs:
        m = read_metrics(run)
        lines.append(f"| {run_name(run)} | {int(m['epoch'][-1])} | {m['train_acc'][-1]:.4f} | "
                     f"{m['test_acc'][-1]:.4f} | {max(m['test_acc']):.4f} |")
    return "\n".join(lines)


def plot_confusion(path, out):
    plt = pyplot()
    try:
        with open(path) as f:
            ev = json.load(f)
        classes, cm = ev["classes"], ev["confusion_matrix"]
    except (OSError, ValueError, KeyError) as e:
        die(f"{path}: not an evaluate --json file ({e})")
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.1 * n + 2, 1.1 * n + 1.5))
    ax.imshow(cm, cmap="Blues")
    peak = max(max(r) for r in cm) or 1
    for i in range(n):
        for j in range(n):
            ax.text(j, i, cm[i][j], ha="center", va="center",
                    color="white" if cm[i][j] > peak / 2 else "black")
    ax.set_xticks(range(n))
    ax.set_xticklabels(classes, rotation=45, ha="right")
    ax.set_yticks(range(n))
    ax.set_yticklabels(classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {ev.get('accuracy', 0):.4f}")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", help="a run folder: draw accuracy.png and loss.png into it")
    p.add_argument("--compare", nargs="+", metavar="DIR", help="run folders for one combined figure")
    p.add_argument("--table", nargs="+", metavar="DIR", help="print a markdown table of the runs")
    p.add_argument("--confusion", metavar="JSON", help="evaluate --json output")
    p.add_argument("--out", help="output image for --compare / --confusion")
    a = p.parse_args()
    if not (a.run or a.compare or a.table or a.confusion):
        p.error("give --run, --compare, --table or --confusion")
    if a.run:
        plot_run(a.run)
    if a.compare:
        if not a.out:
            p.error("--compare needs --out FILE.png")
        plot_compare(a.compare, a.out)
    if a.table:
        print(table(a.table))
    if a.confusion:
        if not a.out:
            p.error("--confusion needs --out FILE.png")
        plot_confusion(a.confusion, a.out)


if __name__ == "__main__":
    main()
