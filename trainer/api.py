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
from trainer import config, distributed, signals
from trainer.comparison import CompareError, Comparison
from trainer.comparison import compare as _compare
from trainer.config import NOT_SWEPT, RESUMABLE, SPECS, ConfigError, RunConfig, read
from trainer.data import DataError
from trainer.device import DeviceError, check_processes
from trainer.loop import NaNLoss
from trainer.report import DEFAULT_TARGET
from trainer.run import Destination, execute
from trainer.runfolder import Interrupted, Run, RunError, RunFolder, read_run
from trainer.sweeps import SweepError

__all__ = ["train", "resume", "sweep", "compare", "load", "configure", "seed_list", "Run", "RunConfig", "Comparison",
           "Interrupted", "ProcessesFailed", "ConfigError", "RunError", "DataError", "DeviceError", "SweepError",
           "CompareError", "NaNLoss"]

Echo = Callable[[str], None]


class ProcessesFailed(RuntimeError):
    """Processes started for a data-parallel run stopped; the first of them has already said why."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(f"the training processes stopped with exit code {exit_code}")
        self.exit_code = exit_code


def configure(config: RunConfig | str | Path | None = None, **settings: Any) -> RunConfig:
    """A checked run configuration: ``config`` (a run template's name or file, or a :class:`RunConfig`;
    default: the defaults) with ``settings`` over it."""
    base = config if isinstance(config, RunConfig) else read(config) if config is not None else RunConfig()
    return base.updated(**settings)


def train(config: RunConfig | str | Path | None = None, *, name: str | None = None, force: bool = False,
          nproc: int = 1, progress: bool = True, echo: Echo | None = print, **settings: Any) -> Run:
    """Train a new run in ``out_dir``/``name`` (default: a timestamp) and return it when done.

    ``settings`` are those of ``trainer run`` (below) over ``config``; ``force=True`` replaces an existing
    run folder's results; ``nproc`` > 1 trains data-parallel in that many processes. Each epoch writes
    training.xlsx, history.csv, last.pt and best.pt, so a stopped run can be continued with :func:`resume`.

    Settings:
{settings}
    """
    cfg = configure(config, **settings)
    if _launches(nproc, cfg.device):
        return _launch(cfg, nproc, progress, echo, folder=RunFolder.create(cfg.out_dir, name), force=force)
    return _here(cfg, Destination(name, force), progress, echo)


def resume(run_dir: str | Path, *, nproc: int = 1, progress: bool = True, echo: Echo | None = print,
           **changes: Any) -> Run:
    """Continue a stopped run from its last finished epoch, with the data order, dropout and schedule of an
    uninterrupted run; a finished run is returned as it is. Of the settings, only {resumable} may change."""
    fixed = [k for k in changes if k not in RESUMABLE]
    if fixed:
        raise ConfigError(f"a resumed run may change only {', '.join(RESUMABLE)} (got {', '.join(fixed)})")
    folder = RunFolder.existing(run_dir)
    cfg = folder.continued_config(**changes)
    if _finished(folder, cfg, echo):
        return read_run(folder.path)
    if _launches(nproc, cfg.device):
        return _launch(cfg, nproc, progress, echo, folder=folder, resume=True)
    return _here(cfg, Destination(resume=True, folder=folder), progress, echo)


def work(run_dir: str | Path, *, progress: bool = False, echo: Echo | None = print) -> Run:
    """What a worker process does (``python -m trainer.worker RUN_DIR``): train the run that its folder's
    config.toml describes, or continue it from its last epoch."""
    folder = RunFolder.existing(run_dir)
    if folder.has_epoch():
        cfg = folder.continued_config()
        if _finished(folder, cfg, echo):
            return read_run(folder.path)
        return _here(cfg, Destination(resume=True, folder=folder), progress, echo)
    cfg = folder.read_config()
    if cfg is None:
        raise RunError(f"{folder.path} holds no settings to start from (config.toml)")
    return _here(cfg, Destination(folder=folder), progress, echo)


def _finished(folder: RunFolder, cfg: RunConfig, echo: Echo | None) -> bool:
    """Whether the run has trained all its epochs (said in one line)."""
    done = folder.epochs_done()
    say = echo if echo is not None and distributed.from_environment().main else distributed.quiet
    if done == cfg.epochs:
        say(f"{folder.path} is complete ({done} of {wording.plural(cfg.epochs, 'epoch')}); nothing to do")
    elif done > cfg.epochs:
        say(f"{folder.path} has already trained {wording.plural(done, 'epoch')}, more than the {cfg.epochs} asked "
            "for; nothing to do")
    return done >= cfg.epochs


def _launches(nproc: int, device: str) -> bool:
    """Whether this call starts ``nproc`` processes (rather than train here, alone or as one of them); refuses,
    before anything is made, more processes than the device can hold."""
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise ConfigError(f"nproc must be at least 1, got {nproc!r}")
    if nproc == 1 or distributed.from_environment().size > 1:
        return False
    check_processes(device, nproc)
    return True


def _here(cfg: RunConfig, destination: Destination, progress: bool, echo: Echo | None) -> Run:
    """Train in this process (alone, or as one of torchrun's)."""
    world = distributed.from_environment()
    say = echo if echo is not None and world.main else distributed.quiet
    run = execute(cfg, destination, progress=progress, echo=say, world=world)
    say(f"Done in {run.seconds:.0f} s: {run.path}")
    if run.history:
        say(f"Test accuracy of the last {wording.plural(len(run.last_three), 'epoch')}: "
            + ", ".join(f"{100 * a:.2f}%" for a in run.last_three))
    return run


def _launch(cfg: RunConfig, nproc: int, progress: bool, echo: Echo | None, folder: RunFolder, force: bool = False,
            resume: bool = False) -> Run:
    """Start ``nproc`` worker processes for ``folder``, its settings written there first."""
    with folder.lock():
        if not resume:
            folder.clear(force)  # refuses, in the caller's words, before any process starts
        folder.write_config(cfg)
    (echo or distributed.quiet)(f"Starting {nproc} processes with torchrun's launcher for {folder.path}")
    try:
        code = distributed.launch(nproc, [str(folder.path), "--progress" if progress else "--no-progress"])
    finally:
        if not resume:
            _discard_if_unstarted(folder)
    if code == 130:
        stopped = folder.interrupted(nproc)
        stopped.reported = True
        raise stopped
    if code:
        raise ProcessesFailed(code)
    return read_run(folder.path)


def _discard_if_unstarted(folder: RunFolder) -> None:
    """Remove a new run's folder that no process got to train in (unless another process now writes it)."""
    try:
        with folder.lock():
            folder.discard_unstarted()
    except RunError:
        pass


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
                found += range(lo, hi + 1) if hi - lo < 100_000 else [lo, hi]
        except ValueError:
            raise ConfigError(f"{seeds!r} is not a list of seeds such as 1-10 or 1,4,7") from None
    else:
        found = list(seeds)
    for s in found:
        SPECS["seed"].check(s)
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
    if not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs must be at least 1, got {jobs!r}")
    if not 0 <= target <= 1:
        raise ConfigError(f"target is a test accuracy from 0 to 1 (0.994 for 99.4%), got {target!r}")
    seeds = seed_list(seeds)
    base = configure(config, **settings)
    folder = Path(out_dir) / (name or sweep_name(settings, grid, seeds))
    return run_sweep(plan(base, grid, seeds), folder, workers=jobs, target=target, progress=progress,
                     echo=echo or distributed.quiet)


def compare(paths, out: str | Path | None = None, target: float = DEFAULT_TARGET) -> Comparison:
    """Write the comparison workbook of the runs among ``paths`` (``out``: compare.xlsx beside them when they
    share a folder, else in the current one) and return what it compares."""
    with signals.interruptible():
        return _compare(paths, out, target)


def load(run_dir: str | Path) -> Run:
    """A run folder as a :class:`Run` (settings, history so far, parameters, time)."""
    return read_run(run_dir)


train.__doc__ = train.__doc__.replace("{settings}", config.describe())
resume.__doc__ = resume.__doc__.replace("{resumable}", ", ".join(RESUMABLE))
