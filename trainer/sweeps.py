"""Many runs of one configuration (or a small grid) over several seeds, each an ordinary run folder.

Every run is a worker process of its own (``python -m trainer.worker RUN_DIR``, started from the settings the
sweep writes into the folder), several at a time; the CPU threads are split between them (two one-thread runs
get more done on two cores than one two-thread run) unless a thread count is given, or each gets a GPU of its
own where there are several. Started again, a sweep keeps the finished runs and resumes an interrupted one. It
ends by comparing the runs (:mod:`trainer.comparison`).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from sheetprop import wording
from sheetprop.wording import plural
from trainer import signals
from trainer.comparison import Comparison, compare, text
from trainer.config import NOT_SWEPT, RunConfig
from trainer.device import cores
from trainer.progress import progress_bar
from trainer.report import DEFAULT_TARGET
from trainer.runfolder import Interrupted, Lock, RunError, RunFolder, read_run

LOG = "log.txt"


class SweepError(ValueError):
    """A sweep that cannot start or finish; the message says why."""


@dataclass(frozen=True)
class Job:
    name: str  # the run folder: seed3, or model=slim,lr=0.1-seed3
    cfg: RunConfig


def plan(base: RunConfig, grid: dict[str, list], seeds: list[int]) -> list[Job]:
    """One job per point of the grid and seed, in that order."""
    jobs = []
    for point in itertools.product(*grid.values()):
        settings = dict(zip(grid, point))
        prefix = ",".join(f"{k}={text(v)}" for k, v in settings.items())
        for seed in seeds:
            cfg = base.updated(**settings, seed=seed)
            jobs.append(Job(f"{prefix}-seed{seed}" if prefix else f"seed{seed}", cfg))
    return jobs


def sweep_name(options: dict[str, Any], grid: dict[str, list], seeds: list[int]) -> str:
    """A folder name made from what the command sets: seeds1-10, ema=0.999-seeds1-10, model=tiny,slim-seeds1-3."""
    parts = [f"{k}={text(v)}" for k, v in options.items() if v is not None and k not in NOT_SWEPT]
    parts += [f"{k}={','.join(map(text, values))}" for k, values in grid.items()]
    contiguous = seeds == list(range(seeds[0], seeds[0] + len(seeds)))
    parts.append(f"seeds{seeds[0]}-{seeds[-1]}" if contiguous and len(seeds) > 1 else
                 "seeds" + ",".join(map(str, seeds)))
    return "-".join(parts)


def _state(job: Job, folder: RunFolder) -> str:
    """new, partial or done; a folder holding a different run is refused."""
    if not folder.settled().has_epoch():
        return "new"  # not started, or its first epoch never finished: it starts again
    saved = read_run(folder.path).config
    if saved.hyperparameters() != job.cfg.hyperparameters():
        differ = ", ".join(f"{k}={v!r}" for k, v in saved.hyperparameters().items()
                           if job.cfg.hyperparameters()[k] != v)
        raise SweepError(f"{folder.path} holds a run with {differ}, not what this sweep asks for; "
                         f"choose another {wording.setting('name', 'NAME')} (or remove that folder)")
    done = folder.epochs_done()
    return "done" if done >= job.cfg.epochs else "partial" if done else "new"


def _prepare(job: Job, folder: RunFolder, state: str, threads: int) -> None:
    """Write the settings the run's worker starts from: a new run's (its folder cleared first), or those of the
    run it continues with this sweep's threads."""
    with folder.lock(f"trainer sweep, preparing {job.name}"):
        if state == "partial":
            folder.write_config(folder.continued_config(threads=threads))
        else:
            folder.clear(force=True)
            folder.write_config(job.cfg.updated(threads=threads, out_dir=str(folder.path.parent)))


def _placement(workers: int, threads: int) -> tuple[int, list[dict[str, str]]]:
    """Threads per run (``threads`` when given, else the cores split between the runs), and per worker slot the
    environment that gives it its own GPU (if there are several)."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus > 1:
        return threads, [{"CUDA_VISIBLE_DEVICES": str(i % gpus)} for i in range(workers)]
    return threads or max(1, cores() // workers), [{} for _ in range(workers)]


@dataclass
class _Running:
    proc: subprocess.Popen
    slot: int
    log: Any
    job: Job


def run(jobs: list[Job], folder: Path, workers: int = 1, target: float = DEFAULT_TARGET, progress: bool = True,
        echo: Callable[[str], None] = print) -> Comparison:
    """Run every job not yet done (``workers`` at a time), then compare all of them."""
    folder.mkdir(parents=True, exist_ok=True)
    with Lock(folder), signals.interruptible():  # SIGTERM and SIGHUP stop it as Ctrl-C does
        return _Sweep(jobs, folder, workers, echo).run(target, progress)


class _Sweep:
    """The runs of one sweep, started and watched."""

    def __init__(self, jobs: list[Job], folder: Path, workers: int, echo: Callable[[str], None]) -> None:
        self.jobs, self.folder, self.workers, self.echo = jobs, folder, workers, echo
        self.runs = {job.name: RunFolder(folder / job.name) for job in jobs}
        self.states = {job.name: _state(job, self.runs[job.name]) for job in jobs}
        self.running: dict[str, _Running] = {}
        self.failed: list[str] = []

    def run(self, target: float, progress: bool) -> Comparison:
        todo = [job for job in self.jobs if self.states[job.name] != "done"]
        self.echo(f"Sweep {self.folder}: {plural(len(self.jobs), 'run')} ({len(self.jobs) - len(todo)} already done), "
                  f"{self.workers} at a time")
        threads, slots = _placement(self.workers, self.jobs[0].cfg.threads)
        free = list(range(self.workers))
        bar = progress_bar(total=sum(job.cfg.epochs for job in self.jobs), unit="epoch", disable=not progress)
        try:
            while todo or self.running:
                while todo and free:
                    self.start(todo.pop(0), free.pop(0), threads, slots, bar)
                time.sleep(0.5)
                free += self.reap(bar)
                bar.n = sum(min(self.runs[job.name].progress(), job.cfg.epochs) for job in self.jobs)
                bar.refresh()
        except KeyboardInterrupt:
            self.stop()
            again = "run the same command" if wording.on_command_line() else \
                "call trainer.sweep with the same arguments"
            raise Interrupted(f"Interrupted. Finished runs are kept in {self.folder}; {again} again to continue.",
                              self.folder) from None
        finally:
            bar.close()
        finished = [self.runs[job.name].path for job in self.jobs if self.runs[job.name].has_epoch()]
        if not finished:
            raise SweepError(f"every run failed ({', '.join(self.failed)}); see the log.txt in each run folder")
        return dataclasses.replace(compare(finished, self.folder / "compare.xlsx", target), failed=self.failed)

    def start(self, job: Job, slot: int, threads: int, slots: list[dict[str, str]], bar) -> None:
        """Prepare the job's folder and start its worker (in a session of its own: the sweep passes Ctrl-C on)."""
        folder, state = self.runs[job.name], self.states[job.name]
        folder.path.mkdir(parents=True, exist_ok=True)
        try:
            _prepare(job, folder, state, threads)
        except RunError as exc:
            self.failed.append(job.name)
            bar.write(f"FAILED {job.name}: {exc}")
            return
        log = open(folder / LOG, "a", encoding="utf-8")
        proc = subprocess.Popen([sys.executable, "-m", "trainer.worker", str(folder.path), "--no-progress"],
                                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **slots[slot]},
                                start_new_session=True, preexec_fn=signals.die_with_parent)
        self.running[job.name] = _Running(proc, slot, log, job)
        bar.write(f"started {job.name}" + (" (resuming)" if state == "partial" else ""))

    def reap(self, bar) -> list[int]:
        """The slots of the runs that have ended (each said in a line)."""
        freed = []
        for name, r in list(self.running.items()):
            if r.proc.poll() is None:
                continue
            r.log.close()
            del self.running[name]
            freed.append(r.slot)
            if r.proc.returncode != 0:
                self.failed.append(name)
                bar.write(f"FAILED {name} (exit {r.proc.returncode}); see {self.folder / name / LOG}")
            else:
                bar.write(f"finished {name}: {read_run(self.folder / name).describe()}")
        return freed

    def stop(self) -> None:
        """Stop every running run; each keeps its last complete epoch. SIGTERM, which a run takes as Ctrl-C,
        because a sweep started in the background (`&` in a script, nohup) passes SIGINT on to its runs ignored."""
        for r in self.running.values():
            r.proc.send_signal(signal.SIGTERM)
        for r in self.running.values():
            r.proc.wait()
            r.log.close()
