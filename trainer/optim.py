"""The optimizer and the learning-rate schedule a run trains with, as its settings name them."""

from __future__ import annotations

import torch
from torch import nn

from sheetprop import wording
from trainer.config import RunConfig


def make_optimizer(cfg: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    """torch.optim's SGD (with Nesterov momentum when ``momentum`` > 0), Adam or AdamW."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
                               weight_decay=cfg.weight_decay)
    adam = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.optimizer]
    return adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)


def cycled_momentum(cfg: RunConfig) -> float:
    """What one-cycle cycles against the learning rate: SGD's momentum, or Adam's and AdamW's β₁."""
    return cfg.momentum if cfg.optimizer == "sgd" else cfg.beta1


def make_scheduler(cfg: RunConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    """The learning-rate schedule; it is stepped after every batch."""
    if cfg.scheduler == "onecycle":
        total = cfg.epochs * steps_per_epoch
        if total < 4:
            raise ValueError(f"a one-cycle schedule needs at least 4 batches in all, this run has {total}; "
                             f"use more data or epochs, or {wording.setting('scheduler', 'step')}")
        # 20% warm-up, but at least two steps of it on very short runs. The momentum (β₁ for Adam and AdamW)
        # cycles against the learning rate within ±0.05 of the one asked for (0.85-0.95 for 0.9, OneCycleLR's
        # own default), and stays 0 when 0 is asked for: the setting acts and is recorded truly.
        m = cycled_momentum(cfg)
        swing = {"base_momentum": round(max(0.0, m - 0.05), 12), "max_momentum": round(min(m + 0.05, 0.999), 12)}
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total,
                                                   pct_start=min(0.5, max(0.2, 2 / total)),
                                                   div_factor=10, final_div_factor=100, cycle_momentum=m > 0,
                                                   **(swing if m > 0 else {}))
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size * steps_per_epoch, gamma=cfg.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
