"""Many runs of one configuration (or a small grid) over several seeds, each an ordinary run folder.

Every run is a ``trainer run`` process of its own, several at a time; the CPU threads are split
between them (two one-thread runs get more done on two cores than one two-thread run), or each
gets a GPU of its own where there are several. Started again, a sweep keeps the finished runs and
resumes an interrupted one. It ends by comparing the runs (:mod:`trainer.comparison`).
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
from tqdm.auto import tqdm

from sheetprop import wording
from sheetprop.wording import plural
from trainer import distributed
from trainer.comparison import Comparison, compare, text
from trainer.config import NOT_SWEPT, RunConfig, check
from trainer.device import cores
from trainer.report import DEFAULT_TARGET
from trainer.run import read_run
from trainer.runfolder import LAST, Interrupted, Lock, completed_epochs

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
            cfg = check(base.updated(**settings, seed=seed))
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


def _state(job: Job, run_dir: Path) -> str:
    """new, partial or done; a folder holding a different run is refused."""
    if not (run_dir / LAST).is_file():
        return "new"  # not started, or its first epoch never finished: it starts again
    saved = read_run(run_dir).config
    if saved.hyperparameters() != job.cfg.hyperparameters():
        differ = ", ".join(f"{k}={v!r}" for k, v in saved.hyperparameters().items()
                           if job.cfg.hyperparameters()[k] != v)
        raise SweepError(f"{run_dir} holds a run with {differ}, not what this sweep asks for; "
                         f"choose another {wording.setting('name', 'NAME')} (or remove that folder)")
    done = completed_epochs(run_dir)
    return "done" if done >= job.cfg.epochs else "partial" if done else "new"


def _command(job: Job, run_dir: Path, state: str, threads: int) -> list[str]:
    base = [sys.executable, "-m", "trainer", "run", "--no-progress"]
    if state == "partial":
        return base + ["--resume", str(run_dir), "--threads", str(threads)]
    cfg = job.cfg.updated(threads=threads, out_dir=str(run_dir.parent))
    return base + [*cfg.to_arguments(), "--name", job.name, "--force"]


def _placement(workers: int) -> tuple[int, list[dict[str, str]]]:
    """Threads per run, and per worker slot the environment that gives it its own GPU (if there are several)."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus > 1:
        return 0, [{"CUDA_VISIBLE_DEVICES": str(i % gpus)} for i in range(workers)]
    return max(1, cores() // workers), [{} for _ in range(workers)]


def _epochs_logged(run_dir: Path) -> int:
    try:
        return sum(line.startswith("Epoch ") for line in (run_dir / LOG).read_text(errors="replace").splitlines())
    except FileNotFoundError:
        return 0


@dataclass
class _Running:
    proc: subprocess.Popen
    slot: int
    log: Any
    job: Job
    start_epochs: int  # epochs done before this process started
    logged_before: int  # epoch lines already in the log then


def run(jobs: list[Job], folder: Path, workers: int = 1, target: float = DEFAULT_TARGET, progress: bool = True,
        echo: Callable[[str], None] = print) -> Comparison:
    """Run every job not yet done (``workers`` at a time), then compare all of them."""
    folder.mkdir(parents=True, exist_ok=True)
    with Lock(folder):
        return _run(jobs, folder, workers, target, progress, echo)


def _run(jobs: list[Job], folder: Path, workers: int, target: float, progress: bool,
         echo: Callable[[str], None]) -> Comparison:
    states = {job.name: _state(job, folder / job.name) for job in jobs}
    done = {job.name: completed_epochs(folder / job.name) for job in jobs}
    todo = [job for job in jobs if states[job.name] != "done"]
    echo(f"Sweep {folder}: {plural(len(jobs), 'run')} ({len(jobs) - len(todo)} already done), {workers} at a time")
    threads, slots = _placement(workers)
    free, running, failed = list(range(workers)), {}, []
    bar = tqdm(total=sum(job.cfg.epochs for job in jobs), initial=sum(done.values()), unit="epoch",
               disable=not progress, dynamic_ncols=True)
    with distributed.interruptible(distributed.World()):  # SIGTERM and SIGHUP stop it as Ctrl-C does
        try:
            while todo or running:
                while todo and free:
                    job, slot = todo.pop(0), free.pop(0)
                    run_dir = folder / job.name
                    run_dir.mkdir(parents=True, exist_ok=True)
                    log = open(run_dir / LOG, "a", encoding="utf-8")
                    # a session of its own: Ctrl-C reaches the sweep, which passes it on to each run once
                    proc = subprocess.Popen(_command(job, run_dir, states[job.name], threads), stdout=log,
                                            stderr=subprocess.STDOUT, env={**os.environ, **slots[slot]},
                                            start_new_session=True, preexec_fn=distributed.die_with_parent)
                    running[job.name] = _Running(proc, slot, log, job, done[job.name], _epochs_logged(run_dir))
                    bar.write(f"started {job.name}" + (" (resuming)" if states[job.name] == "partial" else ""))
                time.sleep(0.5)
                for name, r in list(running.items()):
                    done[name] = r.start_epochs + _epochs_logged(folder / name) - r.logged_before
                    if r.proc.poll() is None:
                        continue
                    r.log.close()
                    del running[name]
                    free.append(r.slot)
                    done[name] = completed_epochs(folder / name)
                    if r.proc.returncode != 0:
                        failed.append(name)
                        bar.write(f"FAILED {name} (exit {r.proc.returncode}); see {folder / name / LOG}")
                    else:
                        bar.write(f"finished {name}: {read_run(folder / name).describe()}")
                bar.n = sum(min(n, job.cfg.epochs) for n, job in zip(done.values(), jobs))
                bar.refresh()
        except KeyboardInterrupt:
            for r in running.values():
                # each run keeps its last complete epoch; SIGTERM, which a run takes as Ctrl-C, because a sweep
                # started in the background (`&` in a script, nohup) passes SIGINT on to its runs ignored
                r.proc.send_signal(signal.SIGTERM)
            for r in running.values():
                r.proc.wait()
                r.log.close()
            bar.close()
            again = "run the same command" if wording.on_command_line() else "call trainer.sweep with the same arguments"
            raise Interrupted(f"Interrupted. Finished runs are kept in {folder}; {again} again to continue.",
                              folder) from None
    bar.close()
    finished = [folder / job.name for job in jobs if (folder / job.name / LAST).is_file()]
    if not finished:
        raise SweepError(f"every run failed ({', '.join(failed)}); see the log.txt in each run folder")
    compared = compare(finished, folder / "compare.xlsx", target)
    return dataclasses.replace(compared, failed=failed)
