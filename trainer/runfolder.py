"""A run folder, the one module that knows its files: their names, the checkpoint's format, how an
epoch's files are committed together, who may write, and the fingerprint of the data a run trains on.
Training, resume, sweep and compare all read and write run folders through here.

    config.toml    every setting (the checkpoint holds them too, and wins)
    last.pt        the checkpoint after the last finished epoch (format VERSION)
    best.pt        the checkpoint at the best test accuracy so far
    training.xlsx  the workbook;  history.csv  the epoch records
    .lock          held by the one process that writes the folder

An epoch is committed in three steps: its files are written into ``.staging/``, that folder is renamed
``.commit/`` (the commit point, one atomic rename), and its files are moved into place. An interruption
before the rename leaves the previous epoch whole (the next writer removes ``.staging/``); one after it
is finished by the next writer, or by a reader when no writer holds the folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any, Callable

import tomli_w

CONFIG, LAST, BEST, WORKBOOK, HISTORY, LOCK = "config.toml", "last.pt", "best.pt", "training.xlsx", "history.csv", \
    ".lock"
RESULTS = (CONFIG, LAST, BEST, WORKBOOK, HISTORY)  # what --force replaces
VIEWS = (WORKBOOK, HISTORY)  # derived from the checkpoint: another program may hold them open
VERSION = 1  # of the checkpoint's keys
_STAGING, _COMMIT = ".staging", ".commit"
_KEYS = ("model", "optimizer", "scheduler", "generator", "rng", "history", "best", "epoch", "seconds", "config")


class RunError(ValueError):
    """A run that cannot start, continue or be read; the message names the folder and says what to do."""


class Interrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C, a stopped notebook cell, SIGTERM); the message says what was kept
    and how to continue."""

    def __init__(self, message: str, folder: Path, reported: bool = False) -> None:
        super().__init__(message)
        self.folder = folder
        self.reported = reported  # the processes that trained have already said it


# -- the epoch commit ---------------------------------------------------------------------------
def commit(run_dir: Path, writers: dict[str, Callable[[Path], Any]]) -> list[str]:
    """Write one epoch's files (``writers``: file name → function writing it to a path) so that they
    replace the previous epoch's all together. Returns the views (workbook, CSV) another program kept
    from being replaced (a workbook open in Excel on Windows): they stay one epoch behind until the next."""
    staging = run_dir / _STAGING
    recover(run_dir)
    staging.mkdir()
    try:
        for name, write in writers.items():
            write(staging / name)
        os.replace(staging, run_dir / _COMMIT)  # the commit point
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return recover(run_dir)


def recover(run_dir: Path) -> list[str]:
    """Finish a committed epoch whose files were not all moved into place; drop an uncommitted one.
    Returns the views that could not be replaced (see :func:`commit`)."""
    committed, kept = run_dir / _COMMIT, []
    if committed.is_dir():
        for f in sorted(committed.iterdir(), key=lambda f: f.name == LAST):  # last.pt last
            try:
                os.replace(f, run_dir / f.name)
            except FileNotFoundError:  # another recovery moved it first
                pass
            except PermissionError:
                if f.name not in VIEWS:
                    raise RunError(f"cannot replace {run_dir / f.name}: permission denied") from None
                f.unlink(missing_ok=True)
                kept.append(f.name)
        try:
            committed.rmdir()
        except FileNotFoundError:
            pass
    shutil.rmtree(run_dir / _STAGING, ignore_errors=True)
    return kept


def discard_unstarted(run_dir: Path) -> None:
    """Remove what a new run wrote before its first epoch ended (its config.toml; the folder if that
    leaves it empty), so a failed or interrupted start leaves nothing behind."""
    if (run_dir / LAST).exists():
        return
    (run_dir / CONFIG).unlink(missing_ok=True)
    shutil.rmtree(run_dir / _STAGING, ignore_errors=True)
    try:
        if not any(p.name != LOCK for p in run_dir.iterdir()):
            (run_dir / LOCK).unlink(missing_ok=True)
            run_dir.rmdir()
    except OSError:
        pass


def settled(run_dir: str | Path) -> Path:
    """``run_dir``, with a commit that was interrupted finished first when no process is writing it (what
    every reader does before it looks)."""
    run_dir = Path(run_dir)
    if ((run_dir / _COMMIT).exists() or (run_dir / _STAGING).exists()) and idle(run_dir):
        recover(run_dir)
    return run_dir


# -- one writer at a time -----------------------------------------------------------------------
class Lock:
    """The right to write ``run_dir`` (use as a context manager). The operating system releases it when
    the process ends however it ends, so a crash never leaves a folder locked."""

    def __init__(self, run_dir: Path, what: str | None = None) -> None:
        self.path = Path(run_dir) / LOCK
        self.what = what or command()
        self._fd: int | None = None

    def __enter__(self) -> "Lock":
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise RunError(f"cannot write in {self.path.parent}: {exc.strerror}") from None
            if not _try_lock(fd):
                holder = _read(fd)
                os.close(fd)
                raise RunError(f"{self.path.parent} is being written by {holder or 'another process'}; "
                                     "wait for it to finish or stop it")
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:  # not a lock file its last holder removed while we opened it
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{self.what} (process {os.getpid()} on {socket.gethostname()})".encode())
        self._fd = fd
        recover(self.path.parent)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            try:
                self.path.unlink()  # while still held, so nobody locks the file being removed
            except FileNotFoundError:
                pass
            os.close(self._fd)  # releases the lock
            self._fd = None


def _try_lock(fd: int) -> bool:
    if os.name == "nt":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 400, 0).decode(errors="replace").strip() if hasattr(os, "pread") else ""
    except OSError:
        return ""


def idle(run_dir: Path) -> bool:
    """Whether no process holds ``run_dir`` (and so a reader may finish an interrupted commit)."""
    path = Path(run_dir) / LOCK
    if not path.exists():
        return True
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return True
    try:
        return _try_lock(fd)
    finally:
        os.close(fd)


# -- files --------------------------------------------------------------------------------------
def write_text(path: Path, text: str) -> None:
    """Replace a text file in one step (a kill never leaves it empty or half written)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_config(run_dir: Path, settings: dict[str, Any]) -> None:
    write_text(run_dir / CONFIG, tomli_w.dumps(settings))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint`, or one line saying why it cannot be used."""
    import torch

    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise RunError(f"{path} does not exist") from None
    except Exception as exc:  # torch.load raises many kinds for a damaged or foreign file (UnpicklingError, …)
        raise RunError(f"{path} is not a readable checkpoint ({type(exc).__name__}); it is damaged or "
                             "not from trainer") from None
    if not isinstance(state, dict) or any(k not in state for k in _KEYS):
        raise RunError(f"{path} is not a trainer checkpoint (keys missing)")
    if state.get("version", 1) > VERSION:
        raise RunError(f"{path} was written by a newer trainer (format {state['version']}; this one reads "
                             f"up to {VERSION}); update trainer")
    return state


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    import torch

    torch.save({**state, "version": VERSION}, path)


def completed_epochs(run_dir: Path) -> int:
    """Epochs a run folder has finished (0 when it has no checkpoint yet)."""
    run_dir = settled(run_dir)
    if not (run_dir / LAST).is_file():
        return 0
    return int(load_checkpoint(run_dir / LAST)["epoch"])


def fingerprint(arrays: dict[Any, Any]) -> str:
    """A digest of the data as read (raw or gzipped alike): resume checks that a run continues on the same data."""
    digest = hashlib.sha256()
    for key in sorted(arrays, key=str):
        digest.update(f"{key}{arrays[key].shape}".encode())
        digest.update(arrays[key].tobytes())
    return digest.hexdigest()[:16]


def inside(out_dir: str | Path, name: str) -> Path:
    """``out_dir``/``name``, refusing a name that would leave ``out_dir`` (``..``, an absolute path)."""
    path = Path(name)
    if not name.strip() or path.is_absolute() or ".." in path.parts:
        raise RunError(f"run name {name!r} must stay inside {out_dir} (no '..', not an absolute path)")
    return Path(out_dir) / path


def command() -> str:
    """How this process was started, for the lock file."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200]
