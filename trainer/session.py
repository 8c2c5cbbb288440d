"""A training session: a run started or restored from its checkpoint (:func:`open_session`), trained one epoch at
a time (:meth:`Session.epoch`), each epoch committed to its run folder (:meth:`Session.commit`), and finished
(:meth:`Session.train` returns the :class:`~trainer.run.Run`).

The order of what draws random numbers (the model's initial weights, then per process its dropout) is fixed
here, so that a run stopped anywhere continues bit for bit as an uninterrupted one.
"""

from __future__ import annotations

import importlib.metadata
import math
import platform
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from xlsxwriter.exceptions import XlsxWriterException

from sheetprop import wording
from trainer import data, distributed, models, report, step
from trainer.checkpoint import Checkpoint
from trainer.config import RunConfig
from trainer.device import Device, data_generator, thread_policy_note
from trainer.distributed import World
from trainer.ema import EMA
from trainer.loop import Evaluation, Timer, evaluate, train_epoch
from trainer.optim import make_optimizer, make_scheduler
from trainer.runfolder import Run, RunError, RunFolder
from trainer.summary import summarize

Echo = Callable[[str], None]


@dataclass
class Session:
    """What one run trains with, and how far it has come."""

    cfg: RunConfig
    folder: RunFolder
    device: Device
    world: World
    mnist: data.MNIST
    model: nn.Module  # the trained model (unwrapped)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    generator: torch.Generator  # the data order and augmentation, on the CPU
    ema: EMA | None
    echo: Echo
    progress: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float = 0.0
    elapsed: float = 0.0  # seconds of earlier sessions
    start: int = 1  # the first epoch this session trains
    step: step.Step | None = None
    contents: report.Contents | None = None

    @property
    def evaluated(self) -> nn.Module:
        """The model that is evaluated and saved as ``model``: the weight average when EMA is on."""
        return self.ema.model if self.ema else self.model

    def restore(self, state: Checkpoint) -> None:
        """Continue from ``state``: weights, optimizer, schedule, scaler, data order and dropout's RNG."""
        if state.data and state.data != self.mnist.fingerprint:
            raise RunError(f"the data in {self.cfg.data_dir} is not the data {self.folder.path} was trained on "
                           f"(fingerprint {self.mnist.fingerprint}, the run's {state.data}); resume with the same "
                           "files")
        if state.processes != self.world.size:
            trained_by = wording.plural(state.processes, "process", "processes")
            raise RunError(f"{self.folder.path} was trained by {trained_by}; resume it with as many "
                           f"({wording.setting('nproc', state.processes)})")
        if self.ema:
            self.model.load_state_dict(state.trained_model)
            self.ema.load(state.model, state.ema_updates)
        else:
            self.model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        if state.scaler is not None:
            self.scaler.load_state_dict(state.scaler)
        self.generator.set_state(state.generator)
        self.device.set_rng_state(state.rng_of(self.world.rank), self.cfg.seed + state.epoch)
        self.history, self.best, self.elapsed, self.start = state.history, state.best, state.seconds, state.epoch + 1
        self.echo(f"Resuming {self.folder.path} after epoch {state.epoch}")

    def prepare(self) -> None:
        """The step that trains, the settings written to config.toml, and the workbook's fixed contents."""
        summary = summarize(self.model)
        parts = step.Parts(distributed.wrap(self.model, self.device.device, self.world), self.optimizer,
                           self.scheduler, self.device, self.cfg, self.ema, self.scaler, self.world)
        self.step = step.make(self.cfg.step_mode, parts, self.echo)
        if self.world.main:
            self.folder.write_config(self.cfg)
        self.contents = report.Contents(self.cfg.to_dict(), summary, self.history, None, self.mnist.raw_test.numpy(),
                                        self.mnist.test.labels.cpu().numpy(), facts=self.facts())
        note = thread_policy_note(self.device)
        if note:
            self.echo(note)
        where = self.device.describe() if self.world.size == 1 else \
            (f"{self.world.size} processes ({self.world.backend}) on {self.device.describe()}, "
             f"{self.per_process} per process")
        self.echo(f"Training {self.cfg.model} ({models.count_parameters(self.model):,} parameters) on {where}: "
                  f"{len(self.mnist.train):,} train / {len(self.mnist.test):,} test images, "
                  f"epochs {self.start}..{self.cfg.epochs}")

    @property
    def per_process(self) -> int:
        return self.cfg.batch_size // self.world.size

    def facts(self) -> dict[str, Any]:
        """What the Config sheet says besides the settings."""
        return {"device": self.device.describe(), "training step": self.step.mode,
                "parameters": models.count_parameters(self.model), "processes": self.world.size,
                "backend": self.world.backend or "none (one process)", "batch per process": self.per_process,
                "BatchNorm statistics": distributed.batch_norm(self.device.device, self.world),
                "torch": torch.__version__, "torchvision": importlib.metadata.version("torchvision"),
                "python": platform.python_version(), "train images": len(self.mnist.train),
                "test images": len(self.mnist.test), "normalization mean": round(self.mnist.mean, 4),
                "normalization std": round(self.mnist.std, 4)}

    def train(self) -> Run:
        """Every epoch left, each committed before it is announced; the run as it ends."""
        started = time.perf_counter()
        for epoch in range(self.start, self.cfg.epochs + 1):
            ev = self.epoch(epoch)
            self.commit(ev, self.elapsed + time.perf_counter() - started)
            h = self.history[-1]
            # printed once the epoch is saved: an interruption after this line keeps it
            self.echo(f"Epoch {epoch}: train loss {h['train_loss']:.4f} acc {100 * h['train_acc']:.2f}% | test loss "
                      f"{ev.loss:.4f} acc {100 * ev.accuracy:.2f}% ({ev.correct}/{ev.total}) | lr {h['lr']:.4g} | "
                      f"{h['seconds']:.1f} s" + (f" | {self.world.size} processes" if self.world.size > 1 else ""))
        return Run(self.folder.path, self.cfg, self.history, models.count_parameters(self.model),
                   self.elapsed + time.perf_counter() - started)

    def epoch(self, epoch: int) -> Evaluation:
        """Train one epoch and evaluate; its record is added to the history."""
        timer = Timer()
        train_loss, train_acc = train_epoch(self.step, self.mnist.train, self.cfg, self.generator, epoch=epoch,
                                            progress=self.progress, world=self.world)
        if self.world.size > 1 and self.device.type != "cuda":
            distributed.average_batch_norm(self.evaluated)
        ev = evaluate(self.evaluated, self.mnist.test, self.device, world=self.world, tta=self.cfg.tta)
        seconds = timer.seconds
        self.history.append({"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"], "train_loss": train_loss,
                             "train_acc": train_acc, "test_loss": ev.loss, "test_acc": ev.accuracy,
                             "test_correct": ev.correct, "seconds": round(seconds, 2)})
        if ev.single_view_correct is not None:  # kept in the checkpoint: what the unshifted image alone scores
            self.history[-1]["test_acc_single_view"] = ev.single_view_correct / ev.total
        return ev

    def checkpoint(self, rngs: list[dict[str, torch.Tensor]], seconds: float) -> Checkpoint:
        """The state after the epoch just trained."""
        return Checkpoint(
            epoch=self.history[-1]["epoch"], config=self.cfg, history=self.history,
            best=max(self.best, self.history[-1]["test_acc"]), seconds=seconds, model=self.evaluated.state_dict(),
            optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
            generator=self.generator.get_state(), rng=rngs[0] if self.world.size == 1 else rngs,
            processes=self.world.size, data=self.mnist.fingerprint,
            trained_model=self.model.state_dict() if self.ema else None,
            ema_updates=self.ema.updates if self.ema else 0,
            scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None)

    def commit(self, ev: Evaluation, seconds: float) -> None:
        """Write the epoch's checkpoints, workbook and history.csv to the run folder, all together (rank 0)."""
        rngs = distributed.gather(self.device.rng_state())
        epoch = self.history[-1]["epoch"]
        if self.world.main:
            state = self.checkpoint(rngs, seconds)
            self.contents.evaluation = ev
            self.contents.facts.update({"epochs done": epoch, "wall time (s)": round(seconds, 1),
                                        "training step": self.step.mode, "best test acc": state.best})
            try:
                kept = self.folder.commit_epoch(state, lambda path: report.write(path, self.contents),
                                                lambda path: report.write_csv(path, self.history),
                                                best=ev.accuracy > self.best)
            except (OSError, XlsxWriterException) as exc:
                raise RunError(self.unwritten(epoch, exc)) from None
            for name in kept:
                self.echo(f"Could not replace {self.folder / name} (open in another program?); training goes on, "
                          "and it is written again after the next epoch")
        self.best = max(self.best, ev.accuracy)

    def unwritten(self, epoch: int, exc: Exception) -> str:
        """Why epoch ``epoch`` could not be written, and what is kept."""
        why = getattr(exc, "strerror", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        if self.folder.has_epoch():
            kept = f"epoch {epoch - 1}, the last complete one, is kept; free some space and resume"
        else:
            kept = "nothing was kept; free some space and start the run again"
        return f"cannot write epoch {epoch} in {self.folder.path} ({why}); {kept}"


def open_session(cfg: RunConfig, folder: RunFolder, resume: bool, device: Device, world: World, progress: bool,
                 echo: Echo) -> Session:
    """A run started from its settings, or restored from its last checkpoint: all that its epochs need."""
    if cfg.batch_size < world.size:
        raise RunError(f"a batch of {cfg.batch_size} cannot be split between {world.size} processes")
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = device.prepare(models.create(cfg.model))
    if world.rank:  # the same initial weights everywhere, but each process its own dropout masks
        torch.manual_seed(cfg.seed + 7919 * world.rank)
    mnist = data.load(cfg.data_dir, device.device)
    optimizer = make_optimizer(cfg, model)
    try:
        scheduler = make_scheduler(cfg, optimizer, math.ceil(len(mnist.train) / cfg.batch_size))
    except ValueError as exc:
        raise RunError(str(exc)) from None
    session = Session(cfg, folder, device, world, mnist, model, optimizer, scheduler, device.scaler(),
                      data_generator(cfg.seed), EMA(model, cfg.ema) if cfg.ema else None, echo, progress)
    if resume:
        session.restore(folder.checkpoint())  # loaded on the CPU: RNG states stay there, weights follow the model
    session.prepare()
    return session
