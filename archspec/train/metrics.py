"""Losses and metrics of the two tasks, the metrics table and its plot.

Classification: cross-entropy; top-1 accuracy. Segmentation: cross-entropy plus a
soft Dice loss; Dice and IoU. Dice and IoU are the means over the foreground classes
1..K-1 (class 0 is the background), each counted over the whole set before dividing.
Mask pixels of value -100 are ignored by all of them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .data import IGNORE

if TYPE_CHECKING:
    import torch

COLUMNS = ("epoch", "train_loss", "train_acc", "train_dice", "val_loss", "val_acc", "val_dice", "val_iou",
           "lr", "images_per_s", "seconds")


def loss_fn(kind: str, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The training loss: (N, K) or (N, K, *S) logits against (N,) or (N, *S) targets."""
    import torch.nn.functional as F

    ce = F.cross_entropy(logits.float(), y, ignore_index=IGNORE)
    if kind == "classification":
        return ce
    return ce + soft_dice_loss(logits.float(), y)


def soft_dice_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 - the mean soft Dice of the foreground classes (1..K-1), ignored pixels left out."""
    import torch

    k = logits.shape[1]
    valid = (y != IGNORE).unsqueeze(1)  # (N, 1, *S)
    probs = logits.softmax(dim=1) * valid
    onehot = torch.nn.functional.one_hot(y.clamp(min=0), k).movedim(-1, 1) * valid  # (N, K, *S)
    dims = (0, *range(2, logits.dim()))
    inter = (probs * onehot).sum(dims)[1:]
    total = (probs + onehot).sum(dims)[1:]
    return 1 - ((2 * inter + 1) / (total + 1)).mean()


class Meter:
    """Sums over batches: loss, correct predictions, per-class overlap counts."""

    def __init__(self, kind: str, classes: int) -> None:
        self.kind, self.classes = kind, classes
        self.loss = 0.0
        self.n = 0
        self.correct = 0.0
        self.tp = [0.0] * classes
        self.fp = [0.0] * classes
        self.fn = [0.0] * classes

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        import torch

        with torch.no_grad():
            pred = logits.argmax(dim=1)
            n = int(y.shape[0])
            self.loss += float(loss) * n
            self.n += n
            if self.kind == "classification":
                self.correct += float((pred == y).sum())
                return
            valid = y != IGNORE
            for c in range(1, self.classes):
                p, t = (pred == c) & valid, (y == c) & valid
                self.tp[c] += float((p & t).sum())
                self.fp[c] += float((p & ~t).sum())
                self.fn[c] += float((~p & t).sum())

    def state(self) -> list[float]:
        return [self.loss, float(self.n), self.correct, *self.tp, *self.fp, *self.fn]

    def load(self, values: Sequence[float]) -> None:
        k = self.classes
        self.loss, self.n, self.correct = float(values[0]), int(values[1]), float(values[2])
        self.tp, self.fp, self.fn = [list(map(float, values[3 + i * k: 3 + (i + 1) * k])) for i in range(3)]

    def summary(self, prefix: str) -> dict[str, float]:
        if self.n == 0:
            return {}
        out = {f"{prefix}_loss": self.loss / self.n}
        if self.kind == "classification":
            out[f"{prefix}_acc"] = self.correct / self.n
            return out
        fg = range(1, self.classes)
        dice = [2 * self.tp[c] / d if (d := 2 * self.tp[c] + self.fp[c] + self.fn[c]) else 1.0 for c in fg]
        iou = [self.tp[c] / d if (d := self.tp[c] + self.fp[c] + self.fn[c]) else 1.0 for c in fg]
        out[f"{prefix}_dice"] = sum(dice) / len(dice)
        if prefix == "val":
            out["val_iou"] = sum(iou) / len(iou)
        return out


def csv_text(rows: Sequence[dict[str, float]]) -> str:
    """``metrics.csv``: the columns any row has, in COLUMNS order."""
    cols = [c for c in COLUMNS if any(c in r for r in rows)]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow(["" if c not in r else (int(r[c]) if c == "epoch" else f"{r[c]:.6g}") for c in cols])
    return buf.getvalue()


def curves_png(rows: Sequence[dict[str, float]], title: str) -> bytes:
    """``curves.png``: losses on the left, accuracy or Dice/IoU in the middle, lr on the right."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.6), dpi=80)
    axes = fig.subplots(1, 3)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.15, top=0.82, wspace=0.25)  # tight_layout costs seconds
    epochs = [r["epoch"] for r in rows]
    panels: list[tuple[Any, tuple[str, ...], str]] = [
        (axes[0], ("train_loss", "val_loss"), "loss"),
        (axes[1], ("train_acc", "val_acc", "train_dice", "val_dice", "val_iou"), "metric"),
        (axes[2], ("lr",), "learning rate")]
    for ax, keys, label in panels:
        for key in keys:
            pts = [(e, r[key]) for e, r in zip(epochs, rows, strict=True) if key in r]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if len(pts) < 30 else None,
                        label=key)
        ax.set_xlabel("epoch")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
