"""A training run: its folder, checkpoints and workbook, written after every epoch; resumable."""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torchvision

from trainer import data, models, report
from trainer.config import RunConfig, read
from trainer.device import data_generator, resolve, set_threads
from trainer.ema import EMA
from trainer.loop import Timer, evaluate, make_optimizer, make_scheduler, train_epoch
from trainer.summary import summarize

CONFIG_FILE = "config.toml"
LAST, BEST, WORKBOOK = "last.pt", "best.pt", "training.xlsx"


class RunError(ValueError):
    """A run that cannot start or continue; the message says why."""


def new_run_dir(cfg: RunConfig, name: str | None, force: bool) -> Path:
    """outputs/runs/<name or timestamp>; an existing one needs ``force`` (its results are then replaced)."""
    run_dir = Path(cfg.out_dir) / (name or datetime.now().strftime("%Y%m%d-%H%M%S"))
    if run_dir.exists() and any(run_dir.iterdir()):
        if not force:
            raise RunError(f"{run_dir} already exists; use --resume {run_dir} to continue it or --force to replace it")
        for f in (CONFIG_FILE, LAST, BEST, WORKBOOK):
            (run_dir / f).unlink(missing_ok=True)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create {run_dir}: {exc.strerror}") from None
    return run_dir


RESUMABLE = ("epochs", "device", "threads", "data_dir")  # settings a resumed run may change


def completed_epochs(run_dir: Path) -> int:
    """Epochs a run folder has finished (0 when it has no checkpoint yet)."""
    if not (run_dir / LAST).is_file():
        return 0
    return int(torch.load(run_dir / LAST, map_location="cpu", weights_only=False)["epoch"])


def resume_config(run_dir: Path, **changes) -> RunConfig:
    """The saved config of a run, with the few settings that may change when continuing it."""
    if not (run_dir / CONFIG_FILE).is_file() or not (run_dir / LAST).is_file():
        raise RunError(f"{run_dir} holds no run to resume ({CONFIG_FILE} and {LAST} are needed)")
    cfg = read(run_dir / CONFIG_FILE)
    if changes.get("epochs") is not None and changes["epochs"] != cfg.epochs and cfg.scheduler == "onecycle":
        raise RunError("a one-cycle schedule is fixed to its epoch count; resume without --epochs")
    return cfg.updated(**changes)


def _save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@dataclass
class Result:
    run_dir: Path
    history: list[dict]
    params: int
    seconds: float


def execute(cfg: RunConfig, run_dir: Path, resume: bool = False, progress: bool = True,
            echo: Callable[[str], None] = print) -> Result:
    """Train (or continue) the run in ``run_dir``; checkpoints and workbook follow every epoch."""
    device = resolve(cfg.device)
    set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = device.prepare(models.create(cfg.model))
    mnist = data.load(cfg.data_dir, device.device)
    steps = math.ceil(len(mnist.train) / cfg.batch_size)
    optimizer = make_optimizer(cfg, model)
    try:
        scheduler = make_scheduler(cfg, optimizer, steps)
    except ValueError as exc:
        raise RunError(str(exc)) from None
    generator = data_generator(cfg.seed)
    ema = EMA(model, cfg.ema) if cfg.ema else None
    evaluated = ema.model if ema else model
    params = models.count_parameters(model)
    history: list[dict] = []
    best, start, elapsed = 0.0, 1, 0.0
    if resume:
        # Loaded on the CPU: RNG states must stay there; weights and optimizer state follow the model.
        state = torch.load(run_dir / LAST, map_location="cpu", weights_only=False)
        if ema:
            model.load_state_dict(state["trained model"])
            ema.load(state["model"], state["ema updates"])
        else:
            model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        device.set_rng_state(state["rng"], cfg.seed + state["epoch"])
        history, best, elapsed = state["history"], state["best"], state["seconds"]
        start = state["epoch"] + 1
        echo(f"Resuming {run_dir} after epoch {state['epoch']}")
    (run_dir / CONFIG_FILE).write_text(cfg.to_toml(), encoding="utf-8")

    rep = report.Report(cfg.to_dict(), summarize(model), history, None,
                        mnist.raw_test.numpy(), mnist.test.labels.cpu().numpy())
    rep.facts = {"device": device.describe(), "parameters": params, "torch": torch.__version__,
                 "torchvision": torchvision.__version__, "python": platform.python_version(),
                 "train images": len(mnist.train), "test images": len(mnist.test),
                 "normalization mean": round(mnist.mean, 4), "normalization std": round(mnist.std, 4)}
    echo(f"Training {cfg.model} ({params:,} parameters) on {device.describe()}: "
         f"{len(mnist.train):,} train / {len(mnist.test):,} test images, epochs {start}..{cfg.epochs}")
    run_start = time.perf_counter()
    for epoch in range(start, cfg.epochs + 1):
        timer = Timer()
        train_loss, train_acc = train_epoch(model, mnist.train, optimizer, scheduler, device, cfg, generator,
                                            epoch, progress, ema)
        ev = evaluate(evaluated, mnist.test, device)
        seconds = timer.seconds
        lr = optimizer.param_groups[0]["lr"]
        history.append({"epoch": epoch, "lr": lr, "train loss": train_loss, "train acc": train_acc,
                        "test loss": ev.loss, "test acc": ev.accuracy, "test correct": ev.correct,
                        "seconds": round(seconds, 2)})
        echo(f"Epoch {epoch}: train loss {train_loss:.4f} acc {100 * train_acc:.2f}% | test loss {ev.loss:.4f} "
             f"acc {100 * ev.accuracy:.2f}% ({ev.correct}/{ev.total}) | lr {lr:.4g} | {seconds:.1f} s")
        total_seconds = elapsed + time.perf_counter() - run_start
        # "model" holds the weights that were evaluated (the average when EMA is on)
        state = {"model": evaluated.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
                 "rng": device.rng_state(), "history": history, "best": max(best, ev.accuracy),
                 "epoch": epoch, "seconds": total_seconds, "config": cfg.to_dict()}
        if ema:
            state.update({"trained model": model.state_dict(), "ema updates": ema.updates})
        _save(state, run_dir / LAST)
        if ev.accuracy > best:
            best = ev.accuracy
            _save(state, run_dir / BEST)
        rep.evaluation = ev
        rep.facts.update({"epochs done": epoch, "wall time (s)": round(total_seconds, 1),
                          "best test acc": best})
        report.write(run_dir / WORKBOOK, rep)
    return Result(run_dir, history, params, elapsed + time.perf_counter() - run_start)

