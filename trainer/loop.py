"""One epoch of training, one pass of evaluation, and the optimizer and schedule they use."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from trainer import data
from trainer.config import RunConfig
from trainer.device import Device
from trainer.ema import EMA

SYNC_EVERY = 20  # batches between reading the loss back (a device sync) for the bar and the NaN check


class NaNLoss(RuntimeError):
    def __init__(self, epoch: int, batch: int) -> None:
        super().__init__(f"loss became NaN or infinite in epoch {epoch}, batch {batch}")
        self.epoch, self.batch = epoch, batch


@dataclass
class Evaluation:
    loss: float
    correct: int
    total: int
    predictions: np.ndarray  # (N,) predicted class
    confidences: np.ndarray  # (N,) softmax probability of the prediction
    confusion: np.ndarray  # (10, 10): rows true class, columns predicted

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.total, 1)


def make_optimizer(cfg: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
                               weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def make_scheduler(cfg: RunConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    """The learning-rate schedule; it is stepped after every batch."""
    if cfg.scheduler == "onecycle":
        total = cfg.epochs * steps_per_epoch
        if total < 4:
            raise ValueError(f"a one-cycle schedule needs at least 4 batches in all, this run has {total}; "
                             "use more data or epochs, or --scheduler step")
        # 20% warm-up, but at least two steps of it on very short runs
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total,
                                                   pct_start=min(0.5, max(0.2, 2 / total)),
                                                   div_factor=10, final_div_factor=100)
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size * steps_per_epoch, gamma=cfg.gamma)
    if cfg.scheduler == "none":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    raise ValueError(f"unknown scheduler {cfg.scheduler!r}")


def train_epoch(model: nn.Module, split: data.Split, optimizer, scheduler, device: Device, cfg: RunConfig,
                generator: torch.Generator, epoch: int, progress: bool = True,
                ema: EMA | None = None) -> tuple[float, float]:
    """One pass over the shuffled, augmented training split; returns mean loss and accuracy."""
    model.train()
    n_batches = -(-len(split) // cfg.batch_size)
    losses = torch.zeros(n_batches, device=device.device)
    correct = torch.zeros((), dtype=torch.long, device=device.device)
    seen, checked = 0, 0
    bar = tqdm(total=len(split), desc=f"Epoch {epoch}", unit="img", leave=False, disable=not progress,
               dynamic_ncols=True)
    augment = data.augmenter(cfg.rotation, cfg.translate, generator)
    with bar:
        for b, (x, y) in enumerate(data.batches(split, cfg.batch_size, generator, augment)):
            with device.autocast():
                logits = model(device.inputs(x))
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update(model)
            losses[b] = loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            if (b + 1) % SYNC_EVERY == 0 or b + 1 == n_batches:
                window = losses[checked : b + 1]
                bad = (~torch.isfinite(window)).nonzero()
                if len(bad):
                    raise NaNLoss(epoch, checked + int(bad[0]) + 1)
                checked = b + 1
                bar.update(seen - bar.n)
                bar.set_postfix(loss=f"{float(losses[: b + 1].sum()) / seen:.4f}",
                                acc=f"{100 * int(correct) / seen:.2f}%")
    return float(losses.sum()) / seen, int(correct) / seen


@torch.no_grad()
def evaluate(model: nn.Module, split: data.Split, device: Device, batch_size: int = 1000) -> Evaluation:
    """Loss, accuracy, predictions and confusion matrix on a split (no augmentation)."""
    model.eval()
    loss = torch.zeros((), device=device.device)
    preds, confs = [], []
    for x, y in data.batches(split, batch_size):
        with device.autocast():
            logits = model(device.inputs(x)).float()
        loss += F.cross_entropy(logits, y, reduction="sum")
        prob = logits.softmax(1)
        conf, pred = prob.max(1)
        preds.append(pred)
        confs.append(conf)
    pred = torch.cat(preds)
    labels = split.labels
    confusion = torch.bincount(labels * 10 + pred, minlength=100).reshape(10, 10)
    return Evaluation(
        loss=float(loss) / max(len(split), 1),
        correct=int((pred == labels).sum()),
        total=len(split),
        predictions=pred.cpu().numpy(),
        confidences=torch.cat(confs).float().cpu().numpy(),
        confusion=confusion.cpu().numpy(),
    )


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
