"""The Python API (what ``import trainer`` offers a notebook); the ``trainer`` command calls the same functions.

    import trainer
    run = trainer.train(data_dir="mnist", epochs=15, seed=2)       # a Run: path, history, accuracies
    run = trainer.resume(run.path)                                  # continue a stopped run
    sweep = trainer.sweep(seeds="1-3", grid={"lr": [0.1, 0.2]}, jobs=2, data_dir="mnist")
    trainer.compare(["outputs/runs/a", "outputs/runs/b"])           # a Comparison: runs, workbook, table
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from sheetprop import wording
from trainer import distributed
from trainer.comparison import CompareError, Comparison, compare
from trainer.config import NOT_SWEPT, ConfigError, RunConfig, arguments, check, read
from trainer.data import DataError
from trainer.device import DeviceError, check_processes
from trainer.loop import NaNLoss
from trainer.report import DEFAULT_TARGET
from trainer.run import (
    Run,
    RunError,
    Destination,
    clear_for_new_run,
    execute,
    read_run,
    resume_config,
    timestamp,
)
from trainer.runfolder import LAST, Interrupted, completed_epochs
from trainer.sweeps import SweepError

__all__ = ["train", "resume", "sweep", "compare", "load", "configure", "seed_list", "Run", "RunConfig", "Comparison",
           "Interrupted", "ProcessesFailed", "ConfigError", "RunError", "DataError", "DeviceError", "SweepError",
           "CompareError", "NaNLoss"]

Echo = Callable[[str], None]


def interrupted(run_dir: Path, processes: int = 1) -> Interrupted:
    """What a run interrupted in ``run_dir`` tells its caller: what was kept, and how to continue."""
    if not (run_dir / LAST).exists():
        return Interrupted(f"Interrupted before its first epoch ended; nothing was kept in {run_dir}. The same "
                           "command starts it again.", run_dir)
    if wording.on_command_line():
        again = f"trainer run {f'--nproc {processes} ' if processes > 1 else ''}--resume {wording.quoted(run_dir)}"
    else:
        again = f"trainer.resume({str(run_dir)!r}{f', nproc={processes}' if processes > 1 else ''})"
    return Interrupted(f"Interrupted. The last complete epoch is kept in {run_dir}; continue with: {again}", run_dir)


class ProcessesFailed(RuntimeError):
    """Processes started for a data-parallel run stopped; the first of them has already said why."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(f"the training processes stopped with exit code {exit_code}")
        self.exit_code = exit_code


def configure(config: RunConfig | str | Path | None = None, **settings: Any) -> RunConfig:
    """A checked run configuration: ``config`` (a run template's name or file, or a :class:`RunConfig`;
    default: the defaults) with ``settings`` over it."""
    base = config if isinstance(config, RunConfig) else read(config) if config is not None else RunConfig()
    return check(base.updated(**settings))


def train(config: RunConfig | str | Path | None = None, *, name: str | None = None, force: bool = False,
          nproc: int = 1, progress: bool = True, echo: Echo | None = print, **settings: Any) -> Run:
    """Train a new run in ``out_dir``/``name`` (default: a timestamp) and return it when done.

    ``settings`` are those of ``trainer run`` (``data_dir``, ``epochs``, ``seed``, ``model``, …) over
    ``config``; ``force=True`` replaces an existing run folder's results; ``nproc`` > 1 trains
    data-parallel in that many processes. Each epoch writes training.xlsx, history.csv, last.pt and
    best.pt, so a stopped run can be continued with :func:`resume`."""
    cfg = configure(config, **settings)
    world = distributed.from_environment()
    name = name or timestamp()
    folder = Path(cfg.out_dir) / name
    workers = ["run", *cfg.to_arguments(), "--name", name, *(["--force"] if force else []),
               "--progress" if progress else "--no-progress"]
    return _execute(cfg, Destination(name, force, None), folder, nproc, progress, echo, world, workers)


def resume(run_dir: str | Path, *, epochs: int | None = None, device: str | None = None, threads: int | None = None,
           step_mode: str | None = None, data_dir: str | None = None, nproc: int = 1, progress: bool = True,
           echo: Echo | None = print) -> Run:
    """Continue a stopped run from its last finished epoch, with the data order, dropout and schedule of an
    uninterrupted run; a finished run is returned as it is. Only the settings named here may change."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir} is not a folder")
    changes = {"epochs": epochs, "device": device, "threads": threads, "step_mode": step_mode, "data_dir": data_dir}
    cfg = resume_config(run_dir, **changes)
    done = completed_epochs(run_dir)
    say = echo or distributed.quiet
    if done >= cfg.epochs:
        say(f"{run_dir} is complete ({done} of {wording.plural(cfg.epochs, 'epoch')}); nothing to do")
        return read_run(run_dir)
    workers = ["run", "--resume", str(run_dir), *arguments(changes), "--progress" if progress else "--no-progress"]
    return _execute(cfg, Destination(resume=run_dir), run_dir, nproc, progress, echo, distributed.from_environment(),
                    workers)


def _execute(cfg: RunConfig, destination: Destination, folder: Path, nproc: int, progress: bool, echo: Echo | None,
             world: distributed.World, workers: list[str]) -> Run:
    """Train here, or start ``nproc`` processes that do (each runs ``python -m trainer WORKERS``)."""
    say = echo if echo is not None and world.main else distributed.quiet
    if nproc < 1:
        raise ConfigError(f"nproc must be at least 1, got {nproc}")
    if nproc > 1 and world.size == 1:
        check_processes(cfg.device, nproc)
        if destination.resume is None and (folder / LAST).exists() and not destination.force:
            clear_for_new_run(folder, False)  # refuses, in the caller's words, before any process starts
        say(f"Starting {nproc} processes with torchrun's launcher for {folder}")
        code = distributed.launch(nproc, workers)
        if code == 130:
            stopped = interrupted(folder, nproc)
            stopped.reported = True
            raise stopped
        if code:
            raise ProcessesFailed(code)
        return read_run(folder)
    try:
        with distributed.interruptible(world):
            run = execute(cfg, destination, progress=progress, echo=say, world=world)
    except KeyboardInterrupt:
        raise interrupted(folder, world.size) from None
    except NaNLoss as exc:
        raise NaNLoss(exc.epoch, exc.batch, folder) from None
    except RuntimeError as exc:
        if world.size > 1 and distributed.peer_lost(exc):  # another process was stopped or died
            raise interrupted(folder, world.size) from None
        raise
    say(f"Done in {run.seconds:.0f} s: {run.path}")
    if run.history:
        say(f"Test accuracy of the last {wording.plural(len(run.last_three), 'epoch')}: "
            + ", ".join(f"{100 * a:.2f}%" for a in run.last_three))
    return run


def seed_list(seeds: str | Iterable[int]) -> list[int]:
    """Seeds from a range and/or list (``"1-10"``, ``"1,4,7"``, ``"1-3,8"``) or any iterable of integers."""
    found: list[int] = []
    if isinstance(seeds, str):
        try:
            for part in seeds.split(","):
                first, _, last = part.strip().partition("-")
                lo, hi = int(first), int(last or first)
                if lo < 0 or hi < lo:
                    raise ValueError
                found += range(lo, hi + 1)
        except ValueError:
            raise ConfigError(f"{seeds!r} is not a list of seeds such as 1-10 or 1,4,7") from None
    else:
        found = list(seeds)
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in found):
            raise ConfigError(f"seeds must be whole numbers of 0 or more, got {found!r}")
    unique = list(dict.fromkeys(found))
    if not unique:
        raise ConfigError("give at least one seed")
    return unique


def sweep(seeds: str | Iterable[int] = "1-10", grid: dict[str, Sequence[Any]] | None = None, *, jobs: int = 1,
          name: str | None = None, config: RunConfig | str | Path | None = None, out_dir: str | Path = "outputs/sweeps",
          target: float = DEFAULT_TARGET, progress: bool = True, echo: Echo | None = print,
          **settings: Any) -> Comparison:
    """Train one configuration (or every point of ``grid``, e.g. ``{"lr": [0.1, 0.2]}``) for each seed, ``jobs``
    runs at a time, each an ordinary run folder under ``out_dir``/``name``; then compare them.

    Called again after an interruption, it keeps the finished runs and resumes the others.
    ``target`` is the test accuracy (a fraction) the comparison counts runs against."""
    from trainer.sweeps import plan, sweep_name
    from trainer.sweeps import run as run_sweep

    if "seed" in settings:
        raise ConfigError("a sweep takes its seeds from " + wording.setting("seeds", "1-10") + ", not from seed")
    grid = {k.replace("-", "_"): [v] if isinstance(v, (str, bytes, int, float)) else list(v)
            for k, v in (grid or {}).items()}
    fixed = [k for k in grid if k in NOT_SWEPT]
    if fixed:
        raise ConfigError(f"a sweep cannot vary {', '.join(fixed)}")
    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, got {jobs}")
    if not 0 <= target <= 1:
        raise ConfigError(f"target is a test accuracy from 0 to 1 (0.994 for 99.4%), got {target!r}")
    seeds = seed_list(seeds)
    base = configure(config, **settings)
    folder = Path(out_dir) / (name or sweep_name(settings, grid, seeds))
    return run_sweep(plan(base, grid, seeds), folder, workers=jobs, target=target, progress=progress,
                     echo=echo or distributed.quiet)


def load(run_dir: str | Path) -> Run:
    """A run folder as a :class:`Run` (settings, history so far, parameters, time)."""
    return read_run(run_dir)
