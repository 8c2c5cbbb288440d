"""A training run: set up, resumed, trained epoch by epoch, each epoch committed to its run folder
(:mod:`trainer.runfolder`); and :class:`Run`, a run folder read back."""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import platform
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from sheetprop import wording
from trainer import data, distributed, models, report, runfolder, step
from trainer.config import EXECUTION, ConfigError, RunConfig, check, read
from trainer.device import Device, data_generator, resolve, set_threads
from trainer.distributed import World
from trainer.ema import EMA
from trainer.loop import Timer, evaluate, make_optimizer, make_scheduler, train_epoch
from trainer.runfolder import BEST, CONFIG, HISTORY, LAST, RESULTS, WORKBOOK, RunError
from trainer.summary import summarize


def timestamp() -> str:
    """The name of a run folder not given one."""
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def new_run_dir(cfg: RunConfig, name: str | None, force: bool) -> Path:
    """outputs/runs/<name or timestamp>, made; one that holds a finished epoch needs ``force`` (its results
    are then replaced after the folder is locked, see :func:`claim`). A timestamp that is taken gets a suffix."""
    if name is None:
        for n in range(1, 1000):
            run_dir = Path(cfg.out_dir) / (timestamp() + (f"-{n}" if n > 1 else ""))
            try:
                run_dir.mkdir(parents=True)
                return run_dir
            except FileExistsError:
                continue
            except OSError as exc:
                raise RunError(f"cannot create {run_dir}: {exc.strerror}") from None
    run_dir = runfolder.inside(cfg.out_dir, name)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create {run_dir}: {exc.strerror}") from None
    return run_dir


def clear_for_new_run(run_dir: Path, force: bool) -> None:
    """Empty a locked folder for a new run: one holding a finished epoch only with ``force`` (a folder whose
    first epoch never finished is started again)."""
    if (run_dir / LAST).exists() and not force:
        resume = wording.setting("resume", run_dir) if wording.on_command_line() else \
            f"trainer.resume({str(run_dir)!r})"
        raise RunError(f"{run_dir} already exists; continue it with {resume} or use {wording.setting('force')} "
                       "to replace it")
    for f in RESULTS:
        (run_dir / f).unlink(missing_ok=True)


RESUMABLE = ("epochs", "device", "threads", "step_mode", "data_dir")  # settings a resumed run may change


def resume_config(run_dir: Path, **changes) -> RunConfig:
    """The configuration a run was trained with (its checkpoint's; config.toml must agree with it), with the
    few settings that may change when continuing it."""
    run_dir = runfolder.settled(run_dir)
    if not (run_dir / LAST).is_file():
        raise RunError(f"{run_dir} holds no finished epoch to resume; start the run again (the same command "
                       "starts it from the beginning)")
    trained = RunConfig().updated(**runfolder.load_checkpoint(run_dir / LAST)["config"])
    try:
        written = read(run_dir / CONFIG) if (run_dir / CONFIG).read_text(encoding="utf-8").strip() else None
    except (ConfigError, OSError, UnicodeDecodeError):
        written = None  # missing, empty or damaged: the checkpoint's settings are the run's
    if written is not None:
        mine, theirs = written.hyperparameters(), trained.hyperparameters()
        differ = ", ".join(f"{k} = {v!r} (trained with {theirs[k]!r})" for k, v in mine.items()
                           if k != "epochs" and theirs[k] != v)
        if differ:
            raise RunError(f"{run_dir / CONFIG} does not match the run in {LAST}: {differ}; a run continues as it "
                           f"was trained: restore those values, or start a new run with them")
    # where and how it runs, and how many epochs, may change between sessions
    cfg = trained.updated(**({k: getattr(written, k) for k in (*EXECUTION, "epochs")} if written else {}))
    cfg = cfg.updated(**changes)
    if cfg.epochs != trained.epochs and cfg.scheduler == "onecycle":
        raise RunError("a one-cycle schedule is fixed to its epoch count; resume the run without changing epochs")
    return check(cfg)


def records(history: list[dict]) -> list[dict]:
    """A checkpoint's history as epoch records (keys as in :data:`report.EPOCH_COLUMNS`; older runs spelled
    them with spaces)."""
    return [{k.replace(" ", "_"): v for k, v in h.items()} for h in history]


@dataclass(frozen=True)
class Run:
    """A run folder and what it holds: settings, one record per finished epoch, size and time."""

    path: Path
    config: RunConfig
    history: list[dict]  # per epoch: epoch, lr, train_loss, train_acc, test_loss, test_acc, test_correct, seconds
    params: int
    seconds: float

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def settings(self) -> dict:
        """Every hyperparameter (what the run computes, not where)."""
        return self.config.hyperparameters()

    @property
    def epochs(self) -> int:
        return len(self.history)

    @property
    def accuracies(self) -> list[float]:
        return [h["test_acc"] for h in self.history]

    @property
    def test_accuracy(self) -> float | None:
        """Test accuracy after the last finished epoch."""
        return self.accuracies[-1] if self.history else None

    @property
    def best_accuracy(self) -> float | None:
        return max(self.accuracies) if self.history else None

    @property
    def last_three(self) -> list[float]:
        return self.accuracies[-3:]

    def first_at(self, target: float) -> int | None:
        return next((h["epoch"] for h in self.history if h["test_acc"] >= target), None)

    def seconds_until(self, epoch: int) -> float:
        """Training and testing time up to the end of ``epoch``."""
        return sum(h["seconds"] for h in self.history if h["epoch"] <= epoch)

    def load_model(self, checkpoint: str = "last", device: str = "cpu") -> torch.nn.Module:
        """The evaluated model (the weight average when EMA is on) of ``last.pt`` or ``best.pt``, in eval mode."""
        file = {"last": LAST, "best": BEST}.get(checkpoint)
        if file is None:
            raise RunError(f"checkpoint must be 'last' or 'best', got {checkpoint!r}")
        model = models.create(self.config.model)
        model.load_state_dict(torch.load(self.path / file, map_location=device, weights_only=False)["model"])
        return model.to(device).eval()

    def describe(self) -> str:
        """Its last test accuracies and time in one line."""
        last = " / ".join(f"{100 * a:.2f}" for a in self.last_three)
        return f"test acc {last}% over the last {wording.plural(len(self.last_three), 'epoch')}, {self.seconds:.0f} s"

    def __str__(self) -> str:
        return (f"{self.path}: {self.config.model}, {self.params:,} parameters, "
                f"{wording.plural(self.epochs, 'epoch')}; {self.describe()}")


def read_run(path: str | Path) -> Run:
    """A run folder's settings (config.toml) and its history so far (last.pt)."""
    path = Path(path)
    path = runfolder.settled(path)
    if not (path / LAST).is_file():
        raise RunError(f"{path} is not a run folder with a finished epoch ({LAST} is needed)")
    state = runfolder.load_checkpoint(path / LAST)
    try:
        cfg = RunConfig().updated(**state["config"])
    except ConfigError as exc:
        raise RunError(f"{path / LAST}: {exc}") from None
    return Run(path, cfg, records(state["history"]), models.count_parameters(models.create(cfg.model)),
               float(state["seconds"]))


@dataclass(frozen=True)
class Destination:
    """The run folder to train in: a new one (named, or a timestamp; ``force`` replaces one) or one to resume."""

    name: str | None = None
    force: bool = False
    resume: Path | None = None

    def folder(self, cfg: RunConfig) -> Path:
        return self.resume if self.resume is not None else new_run_dir(cfg, self.name, self.force)

    def claim(self, cfg: RunConfig, locks: contextlib.ExitStack) -> Path:
        """The folder, locked for this process (released when ``locks`` closes) and checked."""
        run_dir = self.folder(cfg)
        locks.enter_context(runfolder.Lock(run_dir))
        if self.resume is None:
            clear_for_new_run(run_dir, self.force)
        return run_dir


def execute(cfg: RunConfig, destination: Destination, progress: bool = True, echo: Callable[[str], None] = print,
            world: World = World()) -> Run:
    """Train (or continue) a run; checkpoints and workbook follow every epoch.

    Under torchrun every process calls this; they train one model together and rank 0 alone
    decides the folder, prints and writes."""
    device = resolve(cfg.device, world.local_rank, cfg.precision)
    set_threads(cfg.threads)
    distributed.start(world, device.device)
    try:
        with contextlib.ExitStack() as locks:
            run_dir = distributed.on_main(lambda: destination.claim(cfg, locks), (RunError,))
            try:
                result = _train(cfg, run_dir, destination.resume is not None, device, world, progress and world.main,
                                echo if world.main else distributed.quiet)
            except BaseException:
                if world.main and destination.resume is None:
                    runfolder.discard_unstarted(run_dir)
                raise
        distributed.stop()
        return result
    finally:
        distributed.stop(finished=False)


def _train(cfg: RunConfig, run_dir: Path, resume: bool, device: Device, world: World, progress: bool,
           echo: Callable[[str], None]) -> Run:
    if cfg.batch_size < world.size:
        raise RunError(f"a batch of {cfg.batch_size} cannot be split between {world.size} processes")
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = device.prepare(models.create(cfg.model))
    if world.rank:  # the same initial weights everywhere, but each process its own dropout masks
        torch.manual_seed(cfg.seed + 7919 * world.rank)
    mnist = data.load(cfg.data_dir, device.device)
    steps = math.ceil(len(mnist.train) / cfg.batch_size)
    optimizer = make_optimizer(cfg, model)
    try:
        scheduler = make_scheduler(cfg, optimizer, steps)
    except ValueError as exc:
        raise RunError(str(exc)) from None
    generator = data_generator(cfg.seed)  # the same data order and augmentation in every process
    ema = EMA(model, cfg.ema) if cfg.ema else None
    evaluated = ema.model if ema else model
    scaler = device.scaler()
    params = models.count_parameters(model)
    history: list[dict] = []
    best, start, elapsed = 0.0, 1, 0.0
    if resume:
        # Loaded on the CPU: RNG states must stay there; weights and optimizer state follow the model.
        state = runfolder.load_checkpoint(run_dir / LAST)
        if state.get("data", mnist.fingerprint) != mnist.fingerprint:
            raise RunError(f"the data in {cfg.data_dir} is not the data {run_dir} was trained on (fingerprint "
                           f"{mnist.fingerprint}, the run's {state['data']}); resume with the same files")
        if state.get("processes", 1) != world.size:
            trained_by = state.get("processes", 1)
            raise RunError(f"{run_dir} was trained by {wording.plural(trained_by, 'process', 'processes')}; resume it "
                           f"with as many ({wording.setting('nproc', trained_by)})")
        if ema:
            model.load_state_dict(state["trained model"])
            ema.load(state["model"], state["ema updates"])
        else:
            model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        generator.set_state(state["generator"])
        rng = state["rng"] if world.size == 1 else state["rng"][world.rank]
        device.set_rng_state(rng, cfg.seed + state["epoch"])
        history, best, elapsed = records(state["history"]), state["best"], state["seconds"]
        start = state["epoch"] + 1
        echo(f"Resuming {run_dir} after epoch {state['epoch']}")
    model_summary = summarize(model)
    trained = distributed.wrap(model, device.device, world)
    parts = step.Parts(trained, optimizer, scheduler, device, cfg, ema, scaler, world)
    training_step = step.make(cfg.step_mode, parts, echo)
    if world.main:
        runfolder.write_config(run_dir, cfg.to_dict())

    rep = report.Contents(cfg.to_dict(), model_summary, history, None,
                        mnist.raw_test.numpy(), mnist.test.labels.cpu().numpy())
    rep.facts = {"device": device.describe(), "training step": training_step.mode, "parameters": params,
                 "processes": world.size,
                 "backend": world.backend or "none (one process)", "batch per process": cfg.batch_size // world.size
                 if world.size > 1 else cfg.batch_size, "BatchNorm statistics": distributed.batch_norm(device.device, world),
                 "torch": torch.__version__, "torchvision": importlib.metadata.version("torchvision"),
                 "python": platform.python_version(), "train images": len(mnist.train), "test images": len(mnist.test),
                 "normalization mean": round(mnist.mean, 4), "normalization std": round(mnist.std, 4)}
    where = device.describe() if world.size == 1 else \
        f"{world.size} processes ({world.backend}) on {device.describe()}, {rep.facts['batch per process']} per process"
    echo(f"Training {cfg.model} ({params:,} parameters) on {where}: "
         f"{len(mnist.train):,} train / {len(mnist.test):,} test images, epochs {start}..{cfg.epochs}")
    run_start = time.perf_counter()
    for epoch in range(start, cfg.epochs + 1):
        timer = Timer()
        train_loss, train_acc = train_epoch(training_step, mnist.train, cfg, generator, epoch=epoch,
                                            progress=progress, world=world)
        if world.size > 1 and device.type != "cuda":
            distributed.average_batch_norm(evaluated)
        ev = evaluate(evaluated, mnist.test, device, world=world, tta=cfg.tta)
        seconds = timer.seconds
        lr = optimizer.param_groups[0]["lr"]
        history.append({"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
                        "test_loss": ev.loss, "test_acc": ev.accuracy, "test_correct": ev.correct,
                        "seconds": round(seconds, 2)})
        if ev.single_view_correct is not None:  # kept in the checkpoint: what the unshifted image alone scores
            history[-1]["test_acc_single_view"] = ev.single_view_correct / ev.total
        total_seconds = elapsed + time.perf_counter() - run_start
        rngs = distributed.gather(device.rng_state())
        if world.main:
            # "model" holds the weights that were evaluated (the average when EMA is on)
            state = {"model": evaluated.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
                     "rng": rngs[0] if world.size == 1 else rngs, "processes": world.size,
                     "history": history, "best": max(best, ev.accuracy),
                     "epoch": epoch, "seconds": total_seconds, "config": cfg.to_dict(), "data": mnist.fingerprint}
            if ema:
                state.update({"trained model": model.state_dict(), "ema updates": ema.updates})
            if scaler.is_enabled():
                state["scaler"] = scaler.state_dict()
            rep.evaluation = ev
            rep.facts.update({"epochs done": epoch, "wall time (s)": round(total_seconds, 1),
                              "training step": training_step.mode,
                              "best test acc": max(best, ev.accuracy)})
            files = {LAST: lambda path: runfolder.save_checkpoint(state, path),
                     WORKBOOK: lambda path: report.write(path, rep),
                     HISTORY: lambda path: report.write_csv(path, history)}
            if ev.accuracy > best:
                files[BEST] = lambda path: runfolder.save_checkpoint(state, path)
            try:
                kept = runfolder.commit(run_dir, files)
            except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError
                raise RunError(f"cannot write epoch {epoch} in {run_dir} ({str(exc).splitlines()[0][:120]}); "
                               f"the last complete epoch is kept; free some space and resume") from None
            for name in kept:
                echo(f"Could not replace {run_dir / name} (open in another program?); training goes on, and it is "
                     "written again after the next epoch")
        best = max(best, ev.accuracy)
        # printed once the epoch is saved: an interruption after this line keeps it
        echo(f"Epoch {epoch}: train loss {train_loss:.4f} acc {100 * train_acc:.2f}% | test loss {ev.loss:.4f} "
             f"acc {100 * ev.accuracy:.2f}% ({ev.correct}/{ev.total}) | lr {lr:.4g} | {seconds:.1f} s"
             + (f" | {world.size} processes" if world.size > 1 else ""))
    return Run(run_dir, cfg, history, params, elapsed + time.perf_counter() - run_start)
