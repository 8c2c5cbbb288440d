"""The checkpoint (``last.pt``, ``best.pt``): a versioned format whose keys are spelled and checked here alone.

Version 1 named AdamW ``adam`` and kept its β₁ in ``momentum``; reading one moves those settings to version 2's
``adamw`` and ``beta1``, so a run of either version resumes as it was trained.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainer.config import ConfigError, RunConfig

VERSION = 2
EPOCH_KEYS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "test_correct", "seconds")


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint; the message names it and says why."""


@dataclass
class Checkpoint:
    """Everything a run needs to continue exactly after ``epoch``."""

    epoch: int
    config: RunConfig
    history: list[dict[str, Any]]  # one record per finished epoch (keys EPOCH_KEYS, and test_acc_single_view)
    best: float  # the best test accuracy so far
    seconds: float  # training and evaluation time so far
    model: dict[str, torch.Tensor]  # the evaluated weights: the average when EMA is on
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    generator: torch.Tensor  # the CPU generator of the data order and augmentation
    rng: dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]  # dropout's RNG states; one per process
    processes: int = 1
    data: str = ""  # fingerprint of the data trained on ("" in runs from before fingerprints)
    trained_model: dict[str, torch.Tensor] | None = None  # the trained weights, with EMA on
    ema_updates: int = 0
    scaler: dict[str, Any] | None = None  # fp16's gradient scaler
    version: int = field(default=VERSION)  # the format it was read from (it is written as VERSION)

    def rng_of(self, rank: int) -> dict[str, torch.Tensor]:
        return self.rng[rank] if isinstance(self.rng, list) else self.rng

    # -- the file's keys ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        state = {"version": VERSION, "epoch": self.epoch, "config": self.config.to_dict(), "history": self.history,
                 "best": self.best, "seconds": self.seconds, "model": self.model, "optimizer": self.optimizer,
                 "scheduler": self.scheduler, "generator": self.generator, "rng": self.rng,
                 "processes": self.processes, "data": self.data}
        if self.trained_model is not None:
            state.update({"trained model": self.trained_model, "ema updates": self.ema_updates})
        if self.scaler is not None:
            state["scaler"] = self.scaler
        return state

    @classmethod
    def from_dict(cls, state: Any) -> "Checkpoint":
        """A checkpoint from a loaded file's contents (version 1 or 2), every key checked."""
        if not isinstance(state, dict) or not {"model", "epoch", "config", "history"} <= set(state):
            raise CheckpointError("not a trainer checkpoint (keys missing)")
        version = state.get("version", 1)
        if not isinstance(version, int) or version > VERSION:
            raise CheckpointError(f"written by a newer trainer (format {version}; this one reads up to {VERSION}); "
                                  "update trainer")
        try:
            config = RunConfig().updated(**upgrade_settings(_need(state, "config", dict), version))
        except ConfigError as exc:
            raise CheckpointError(f"its settings cannot be used ({exc})") from None
        epoch = _need(state, "epoch", int, lambda e: e >= 1, "at least 1")
        ema = config.ema > 0
        return cls(
            epoch=epoch, config=config, history=_history(_need(state, "history", list), epoch),
            best=float(_need(state, "best", (int, float), lambda b: 0 <= b <= 1, "from 0 to 1")),
            seconds=float(_need(state, "seconds", (int, float), lambda s: s >= 0, "0 or more")),
            model=_need(state, "model", dict, _weights, "weights"),
            optimizer=_need(state, "optimizer", dict, lambda o: {"state", "param_groups"} <= set(o), "an optimizer's"),
            scheduler=_need(state, "scheduler", dict), generator=_need(state, "generator", torch.Tensor, _byte_state,
                                                                       "a CPU generator's state"),
            rng=_need(state, "rng", (dict, list), _rng_states, "RNG states"),
            processes=_need(state, "processes", int, lambda p: p >= 1, "at least 1", default=1),
            data=_need(state, "data", str, default=""),
            trained_model=_need(state, "trained model", dict, _weights, "weights") if ema else None,
            ema_updates=_need(state, "ema updates", int, lambda u: u >= 0, "0 or more") if ema else 0,
            scaler=_need(state, "scaler", dict) if config.precision == "fp16" else None,
            version=version,
        )

    # -- the file --------------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write to ``path``. Serialized first, so a full disk is an :class:`OSError` saying so, not torch's."""
        buffer = io.BytesIO()
        torch.save(self.to_dict(), buffer)
        _write_file(Path(path), buffer.getbuffer())

    @classmethod
    def load(cls, path: Path) -> "Checkpoint":
        """The checkpoint in ``path`` (on the CPU), or :class:`CheckpointError` in one line naming it."""
        path = Path(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise CheckpointError(f"{path} does not exist") from None
        except Exception as exc:  # torch.load raises many kinds for a damaged or foreign file (UnpicklingError, …)
            raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__}); it is damaged or not "
                                  "from trainer") from None
        try:
            return cls.from_dict(state)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None


def _write_file(path: Path, data: memoryview) -> None:
    """``data`` written to ``path`` as the operating system takes it (its errors are OSError)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)


_MISSING = object()


def _need(state: dict, key: str, kind: type | tuple[type, ...], ok=lambda v: True, what: str = "",
          default: Any = _MISSING) -> Any:
    """``state[key]``, checked to be of ``kind`` and ``ok``."""
    if key not in state:
        if default is not _MISSING:
            return default
        raise CheckpointError(f"not a trainer checkpoint (no {key!r})")
    value = state[key]
    if not isinstance(value, kind) or isinstance(value, bool) or not ok(value):
        raise CheckpointError(f"not a trainer checkpoint ({key!r} is not {what or 'as written'})")
    return value


def _weights(d: dict) -> bool:
    return bool(d) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())


def _byte_state(t: torch.Tensor) -> bool:
    return t.dtype == torch.uint8 and t.device.type == "cpu"


def _rng_states(rng: dict | list) -> bool:
    states = rng if isinstance(rng, list) else [rng]
    return bool(states) and all(isinstance(s, dict) and isinstance(s.get("cpu"), torch.Tensor) and
                                _byte_state(s["cpu"]) for s in states)


def _history(history: list, epoch: int) -> list[dict[str, Any]]:
    """The epoch records, keys as version 2 spells them (version 1's first runs spelled them with spaces)."""
    records = [{k.replace(" ", "_"): v for k, v in h.items()} if isinstance(h, dict) else None for h in history]
    if len(records) != epoch or any(r is None or not set(EPOCH_KEYS) <= set(r) or r["epoch"] != i + 1
                                    for i, r in enumerate(records)):
        raise CheckpointError(f"not a trainer checkpoint (its history is not one record per epoch 1..{epoch})")
    return records


def upgrade_settings(config: dict[str, Any], version: int) -> dict[str, Any]:
    """A config as version 2 names it."""
    config = dict(config)
    if version == 1 and config.get("optimizer") == "adam":  # version 1's adam was AdamW, with β₁ in momentum
        config["optimizer"] = "adamw"
        config["beta1"] = config.pop("momentum", 0.9)
    return config
