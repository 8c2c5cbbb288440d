"""One epoch of training (a :mod:`trainer.step` per batch) and one pass of evaluation."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainer import data, distributed
from trainer.config import RunConfig
from trainer.device import Device
from trainer.distributed import World
from trainer.progress import progress_bar
from trainer.step import Step

SYNC_EVERY = 20  # batches between reading the loss back (a device sync) for the bar and the NaN check
SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))  # the views test-time augmentation averages: (rows, columns)


class NaNLoss(RuntimeError):
    def __init__(self, epoch: int, batch: int, run_dir: Path | None = None) -> None:
        kept = f"; stopped. The last complete epoch is kept in {run_dir}" if run_dir is not None else ""
        super().__init__(f"loss became NaN or infinite in epoch {epoch}, batch {batch}{kept}")
        self.epoch, self.batch, self.run_dir = epoch, batch, run_dir


@dataclass
class Evaluation:
    loss: float
    correct: int
    total: int
    predictions: np.ndarray  # (N,) predicted class
    confidences: np.ndarray  # (N,) softmax probability of the prediction
    confusion: np.ndarray  # (10, 10): rows true class, columns predicted
    single_view_correct: int | None = None  # with test-time augmentation: right on the unshifted image alone

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.total, 1)


def train_epoch(step: Step, split: data.Split, cfg: RunConfig, generator: torch.Generator, epoch: int,
                progress: bool = True, world: World = World()) -> tuple[float, float]:
    """One pass over the shuffled, augmented training split, a :mod:`trainer.step` per batch; returns mean loss
    and accuracy. The loss and the count of right predictions stay on the device, read every
    :data:`SYNC_EVERY` batches.

    With several processes each takes its part of every batch (see :func:`data.batches`)."""
    step.model.train()
    n, on = len(split), split.labels.device
    n_batches = -(-n // cfg.batch_size)
    losses = torch.zeros(n_batches, device=on)
    correct = torch.zeros((), dtype=torch.long, device=on)
    seen, checked, b = 0, 0, -1
    bar = progress_bar(total=n, desc=f"Epoch {epoch}", unit="img", leave=False, disable=not progress)
    augment = data.augmentation(cfg.rotation, cfg.translate)
    with bar:
        for b, (x, y) in enumerate(data.batches(split, cfg.batch_size, generator, augment, rank=world.rank,
                                                 world=world.size)):
            summed, right = step(x, y, min(cfg.batch_size, n - b * cfg.batch_size))
            losses[b] = summed
            correct += right
            seen += len(y)
            if (b + 1) % SYNC_EVERY == 0 or b + 1 == n_batches:
                window = losses[checked : b + 1]
                bad = (~torch.isfinite(window)).nonzero()
                if len(bad):
                    raise NaNLoss(epoch, checked + int(bad[0]) + 1)
                checked = b + 1
                bar.set_postfix(loss=f"{float(losses[: b + 1].sum()) / seen:.4f}",
                                acc=f"{100 * int(correct) / seen:.2f}%", refresh=False)
                bar.update(min(n, seen * world.size) - bar.n)  # redraws no more often than the bar's interval
    sums = distributed.total(torch.stack([losses.sum().double(), correct.double(),
                                          torch.tensor(float(seen), device=on, dtype=torch.double)]))
    return float(sums[0] / sums[2]), float(sums[1] / sums[2])


def shifted(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Images moved by whole pixels, the uncovered edge filled with the edge's own (background) values."""
    if rows == cols == 0:
        return x
    pad = max(abs(rows), abs(cols))
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    h, w = x.shape[-2:]
    return padded[..., pad - rows : pad - rows + h, pad - cols : pad - cols + w]


@torch.no_grad()
def evaluate(model: nn.Module, split: data.Split, device: Device, batch_size: int | None = None,
             world: World = World(), tta: bool = False) -> Evaluation:
    """Loss, accuracy, predictions and confusion matrix on a split. With ``tta`` the model's softmax
    outputs are averaged over the image and its four 1-pixel shifts (:data:`SHIFTS`), and the loss is
    that average's; otherwise the image alone.

    With several processes each evaluates a contiguous part; the sums are added up across them,
    so every process knows the same accuracy, and the predictions are gathered on every process."""
    model.eval()
    lo, hi = len(split) * world.rank // world.size, len(split) * (world.rank + 1) // world.size
    part = data.Split(split.images[lo:hi], split.labels[lo:hi]) if world.size > 1 else split
    loss = torch.zeros((), device=device.device, dtype=torch.double)
    single = torch.zeros((), device=device.device, dtype=torch.double)
    preds, confs = [], []
    for x, y in data.batches(part, batch_size or device.eval_batch):
        views = []
        for rows, cols in SHIFTS if tta else SHIFTS[:1]:
            with device.autocast():
                views.append(model(device.inputs(shifted(x, rows, cols))).float())
        if tta:
            single += (views[0].argmax(1) == y).sum()
            probs = torch.stack(views).softmax(2).mean(0)
            loss += F.nll_loss(probs.clamp_min(torch.finfo(probs.dtype).tiny).log(), y, reduction="sum")
        else:
            probs = views[0].softmax(1)
            loss += F.cross_entropy(views[0], y, reduction="sum")
        conf, pred = probs.max(1)
        preds.append(pred)
        confs.append(conf)
    pred = torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long, device=device.device)
    conf = torch.cat(confs).float() if confs else torch.zeros(0, device=device.device)
    confusion = torch.bincount(part.labels * 10 + pred, minlength=100).reshape(10, 10).double()
    counts = distributed.total(torch.cat([loss.reshape(1), single.reshape(1), confusion.reshape(-1)]))
    gathered = distributed.gather((pred.cpu().numpy(), conf.cpu().numpy()))
    confusion = counts[2:].reshape(10, 10).round().long().cpu().numpy()
    return Evaluation(
        loss=float(counts[0]) / max(len(split), 1),
        correct=int(np.trace(confusion)),
        total=len(split),
        predictions=np.concatenate([p for p, _ in gathered]),
        confidences=np.concatenate([c for _, c in gathered]),
        confusion=confusion,
        single_view_correct=int(round(float(counts[1]))) if tta else None,
    )


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
