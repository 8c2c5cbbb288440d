"""A run's hyperparameters: defaults, run templates (TOML) and command-line overrides, in one dictionary."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import tomli_w

from sheetprop.template import TemplateError, read_toml
from trainer.models import DEFAULT_MODEL

RUN_TEMPLATES = "trainer.templates"  # package data: templates/runs/*.toml


class ConfigError(ValueError):
    """A run template or setting that cannot be used; the message names it."""


@dataclass
class RunConfig:
    model: str = DEFAULT_MODEL
    epochs: int = 15
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.2  # the peak learning rate with onecycle
    momentum: float = 0.9
    weight_decay: float = 5e-5
    scheduler: str = "onecycle"
    step_size: int = 5  # epochs between decays with the step scheduler
    gamma: float = 0.1
    rotation: float = 7.0  # degrees, ± (augmentation)
    translate: float = 0.03  # fraction of the image, ±
    label_smoothing: float = 0.0
    ema: float = 0.999  # decay per step of the weight average that is evaluated; 0: evaluate the trained weights
    precision: str = "fp32"  # the forward pass's arithmetic: fp32, or autocast to bf16 or fp16
    tta: bool = False  # evaluate the average of the model's outputs over the test image and four 1-pixel shifts
    step_mode: str = "eager"  # how a training step runs on CUDA: op by op, replayed as one CUDA graph, or compiled
    seed: int = 1
    device: str = "auto"
    threads: int = 0  # CPU threads; 0: one per core
    data_dir: str = "data"
    out_dir: str = "outputs/runs"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def to_arguments(self) -> list[str]:
        """Every setting as ``trainer run`` options (``--batch-size 128 …``): how a run starts another process."""
        return arguments(self.to_dict())

    def hyperparameters(self) -> dict[str, Any]:
        """The settings that decide what a run computes (not where it runs or writes)."""
        return {k: v for k, v in self.to_dict().items() if k not in EXECUTION}

    def updated(self, **changes: Any) -> "RunConfig":
        known = {f.name: f.type for f in fields(self)}
        values = self.to_dict()
        for key, value in changes.items():
            if value is None:
                continue
            if key not in known:
                raise ConfigError(f"unknown setting {key!r} (known: {', '.join(known)})")
            current = values[key]
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
            if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
                value = value.item()  # a NumPy number
            if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not type(current):
                raise ConfigError(f"setting {key!r} must be {type(current).__name__}, got {value!r}")
            values[key] = value
        return RunConfig(**values)


def arguments(settings: dict[str, Any]) -> list[str]:
    """Settings as ``trainer run`` options, those that are None left out."""
    return [arg for key, value in settings.items() if value is not None
            for arg in ("--" + key.replace("_", "-"), str(value))]


# how and where a run happens, not what it computes
EXECUTION = ("device", "threads", "step_mode", "data_dir", "out_dir")
NOT_SWEPT = ("seed", *EXECUTION)  # a sweep takes its seeds from --seeds and varies only what runs compute
OPTIMIZERS = ("sgd", "adam")
PRECISIONS = ("fp32", "bf16", "fp16")  # trainer.device holds what each means
SCHEDULERS = ("onecycle", "step", "none")
STEP_MODES = ("eager", "graph", "compile")  # trainer.step holds what each means


def check(cfg: RunConfig) -> RunConfig:
    """Refuse settings no run can use (a template may hold anything)."""
    from trainer.device import CHOICES
    from trainer.models import MODELS

    problems = {
        "model": (cfg.model in MODELS, f"one of {', '.join(MODELS)}"),
        "optimizer": (cfg.optimizer in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
        "scheduler": (cfg.scheduler in SCHEDULERS, f"one of {', '.join(SCHEDULERS)}"),
        "device": (cfg.device in CHOICES, f"one of {', '.join(CHOICES)}"),
        "precision": (cfg.precision in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
        "step_mode": (cfg.step_mode in STEP_MODES, f"one of {', '.join(STEP_MODES)}"),
        "epochs": (cfg.epochs >= 1, "at least 1"),
        "batch_size": (cfg.batch_size >= 1, "at least 1"),
        "lr": (0 < cfg.lr <= 10, "above 0 and at most 10"),
        "momentum": (0 <= cfg.momentum < 1, "at least 0 and below 1"),
        "weight_decay": (0 <= cfg.weight_decay < float("inf"), "0 or more"),
        "step_size": (cfg.step_size >= 1, "at least 1"),
        "gamma": (0 < cfg.gamma <= 1, "above 0 and at most 1"),
        "seed": (cfg.seed >= 0, "0 or more"),
        "rotation": (0 <= cfg.rotation <= 180, "between 0 and 180 degrees"),
        "translate": (0 <= cfg.translate < 1, "between 0 and 1"),
        "ema": (0 <= cfg.ema < 1, "at least 0 and below 1"),
        "label_smoothing": (0 <= cfg.label_smoothing < 1, "at least 0 and below 1"),
        "threads": (cfg.threads >= 0, "0 (one per core) or more"),
    }
    for key, (ok, expected) in problems.items():
        if not ok:
            raise ConfigError(f"{key} must be {expected}, got {getattr(cfg, key)!r}")
    return cfg


def read(name_or_path: str | Path) -> RunConfig:
    """A run template (a shipped name such as ``mnist``, or a path): any subset of the settings, over the defaults."""
    try:
        source, data = read_toml(name_or_path, RUN_TEMPLATES, kind="run template")
    except TemplateError as exc:
        raise ConfigError(str(exc)) from None
    try:
        return RunConfig().updated(**data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
