"""A run folder, the one way into a run: its files, its settings, its checkpoint, how an epoch's files are
committed together, who may write, and the fingerprint of the data it trains on. Training, resume, sweep,
compare and the worker processes all read and write run folders through :class:`RunFolder`.

    config.toml    every setting (the checkpoint holds them too, and wins)
    last.pt        the checkpoint after the last finished epoch (trainer.checkpoint)
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
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from sheetprop import wording
from trainer import models
from trainer.checkpoint import Checkpoint, CheckpointError, upgrade_settings
from trainer.config import EXECUTION, RunConfig

if TYPE_CHECKING:
    import torch

CONFIG, LAST, BEST, WORKBOOK, HISTORY, LOCK = "config.toml", "last.pt", "best.pt", "training.xlsx", "history.csv", \
    ".lock"
RESULTS = (CONFIG, LAST, BEST, WORKBOOK, HISTORY)  # what --force replaces
VIEWS = (WORKBOOK, HISTORY)  # derived from the checkpoint: another program may hold them open
_STAGING, _COMMIT = ".staging", ".commit"


class RunError(ValueError):
    """A run that cannot start, continue or be read; the message names the folder and says what to do."""


class Interrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C, a stopped notebook cell, SIGTERM); the message says what was kept
    and how to continue."""

    def __init__(self, message: str, folder: Path, reported: bool = False) -> None:
        super().__init__(message)
        self.folder = folder
        self.reported = reported  # the processes that trained have already said it


class RunFolder:
    """A run's folder and everything in it."""

    def __init__(self, path: str | Path, made: Path | None = None) -> None:
        self.path = Path(path)
        self._made = made  # the outermost folder that :meth:`create` made, removed again if a start fails

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # -- finding and making ------------------------------------------------------------------------
    @classmethod
    def create(cls, out_dir: str | Path, name: str | None) -> "RunFolder":
        """``out_dir``/``name``, made (an existing one is taken as it is), or ``out_dir``/<timestamp> when no name
        is given (``…-2`` when that one is taken)."""
        made = first_missing(Path(out_dir))
        if name is not None:
            path = inside(out_dir, name)
            made = made or first_missing(path)
            _mkdir(path, exist_ok=True)
            return cls(path, made)
        for n in range(1, 1000):
            path = Path(out_dir) / (timestamp() + (f"-{n}" if n > 1 else ""))
            if path.exists():
                continue
            try:
                _mkdir(path, exist_ok=False)
            except FileExistsError:
                continue
            return cls(path, made or path)
        raise RunError(f"cannot find a free folder name in {out_dir}")

    @classmethod
    def existing(cls, path: str | Path) -> "RunFolder":
        """A folder that exists, with a commit that was interrupted finished first if nobody is writing it."""
        folder = cls(path)
        if not folder.path.is_dir():
            raise RunError(f"{folder.path} is not a folder")
        return folder.settled()

    def settled(self) -> "RunFolder":
        """This folder, with a commit that was interrupted finished first when no process is writing it (what
        every reader does before it looks)."""
        if ((self.path / _COMMIT).exists() or (self.path / _STAGING).exists()) and idle(self.path):
            recover(self.path)
        return self

    # -- what it holds ------------------------------------------------------------------------------
    def has_epoch(self) -> bool:
        """Whether a first epoch has finished here (there is a checkpoint to continue from)."""
        return (self.path / LAST).is_file()

    def checkpoint(self, which: str = "last") -> Checkpoint:
        """The checkpoint after the last epoch (``last``) or at the best test accuracy (``best``)."""
        file = {"last": LAST, "best": BEST}.get(which)
        if file is None:
            raise RunError(f"checkpoint must be 'last' or 'best', got {which!r}")
        try:
            return Checkpoint.load(self.path / file)
        except CheckpointError as exc:
            raise RunError(str(exc)) from None

    def epochs_done(self) -> int:
        """Epochs finished here, as the checkpoint says (0 before the first)."""
        return self.checkpoint().epoch if self.has_epoch() else 0

    def progress(self) -> int:
        """Epochs finished, as history.csv counts them: cheap enough to ask twice a second (a progress bar)."""
        try:
            return max(0, len((self.path / HISTORY).read_text(encoding="utf-8").splitlines()) - 1)
        except (OSError, UnicodeDecodeError):
            return 0

    def load_model(self, which: str = "last", device: str | torch.device = "cpu") -> torch.nn.Module:
        """The evaluated model (the weight average when EMA is on) of ``last.pt`` or ``best.pt``, in eval mode."""
        state = self.checkpoint(which)
        model = models.create(state.config.model)
        model.load_state_dict(state.model)
        return model.to(device).eval()

    # -- settings -----------------------------------------------------------------------------------
    def read_config(self, version: int = 2) -> RunConfig | None:
        """config.toml's settings; None when it is missing, empty or damaged (not TOML), since the checkpoint
        holds them too. One edited to a wrong type or an unknown key is refused as ``--config`` refuses it."""
        path = self.path / CONFIG
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None
        if not data:
            return None
        return RunConfig.from_mapping(upgrade_settings(data, version), str(path))

    def write_config(self, cfg: RunConfig) -> None:
        write_text(self.path / CONFIG, cfg.to_toml())

    def continued_config(self, **changes: Any) -> RunConfig:
        """The settings to continue this run with: the checkpoint's (config.toml must agree with them), with the
        settings a continued run may change taken from config.toml and then from ``changes``."""
        if not self.has_epoch():
            raise RunError(f"{self.path} holds no finished epoch to resume; start the run again (the same command "
                           "starts it from the beginning)")
        state = self.checkpoint()
        trained, written = state.config, self.read_config(state.version)
        if written is not None:
            mine, theirs = written.hyperparameters(), trained.hyperparameters()
            differ = ", ".join(f"{k} = {v!r} (trained with {theirs[k]!r})" for k, v in mine.items()
                               if k != "epochs" and theirs[k] != v)
            if differ:
                raise RunError(f"{self.path / CONFIG} does not match the run in {LAST}: {differ}; a run continues as "
                               "it was trained: restore those values, or start a new run with them")
        cfg = trained.updated(**({k: getattr(written, k) for k in (*EXECUTION, "epochs")} if written else {}))
        cfg = cfg.updated(**changes)
        if cfg.epochs != trained.epochs and cfg.scheduler == "onecycle":
            raise RunError("a one-cycle schedule is fixed to its epoch count; resume the run without changing epochs")
        return cfg

    # -- writing --------------------------------------------------------------------------------------
    def lock(self, what: str | None = None) -> "Lock":
        return Lock(self.path, what)

    def commit(self, writers: dict[str, Callable[[Path], Any]]) -> list[str]:
        return commit(self.path, writers)

    def commit_epoch(self, state: Checkpoint, workbook: Callable[[Path], Any], history: Callable[[Path], Any],
                     best: bool) -> list[str]:
        """An epoch's files, all together (see :func:`commit`): last.pt, the workbook and history.csv written by
        the functions given, and best.pt when the epoch is the ``best`` so far."""
        files = {LAST: state.save, WORKBOOK: workbook, HISTORY: history, **({BEST: state.save} if best else {})}
        return commit(self.path, files)

    def clear(self, force: bool) -> None:
        """Empty a locked folder for a new run: one holding a finished epoch only with ``force`` (a folder whose
        first epoch never finished is started again)."""
        if self.has_epoch() and not force:
            again = wording.setting("resume", self.path) if wording.on_command_line() else \
                f"trainer.resume({str(self.path)!r})"
            raise RunError(f"{self.path} already exists; continue it with {again} or use {wording.setting('force')} "
                           "to replace it")
        for f in RESULTS:
            (self.path / f).unlink(missing_ok=True)

    def discard_unstarted(self) -> None:
        """Remove what a new run wrote before its first epoch ended (its config.toml; the folder, and the folders
        made for it, if that leaves them empty), so a failed or interrupted start leaves nothing behind."""
        if self.has_epoch():
            return
        (self.path / CONFIG).unlink(missing_ok=True)
        shutil.rmtree(self.path / _STAGING, ignore_errors=True)
        try:
            if any(p.name != LOCK for p in self.path.iterdir()):
                return
            (self.path / LOCK).unlink(missing_ok=True)
            self.path.rmdir()
            folder = self.path.parent
            while self._made is not None and folder != self._made.parent and not any(folder.iterdir()):
                folder.rmdir()
                folder = folder.parent
        except OSError:
            pass

    def interrupted(self, processes: int = 1) -> Interrupted:
        """What a run interrupted here tells its caller: what was kept, and how to continue."""
        if not self.has_epoch():
            return Interrupted(f"Interrupted before its first epoch ended; nothing was kept in {self.path}. The same "
                               "command starts it again.", self.path)
        if wording.on_command_line():
            again = (f"trainer run {f'--nproc {processes} ' if processes > 1 else ''}--resume "
                     f"{wording.quoted(self.path)}")
        else:
            again = f"trainer.resume({str(self.path)!r}{f', nproc={processes}' if processes > 1 else ''})"
        return Interrupted(f"Interrupted. The last complete epoch is kept in {self.path}; continue with: {again}",
                           self.path)


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
        return RunFolder(self.path).settled().load_model(checkpoint, device)

    def describe(self) -> str:
        """Its last test accuracies and time in one line."""
        last = " / ".join(f"{100 * a:.2f}" for a in self.last_three)
        return f"test acc {last}% over the last {wording.plural(len(self.last_three), 'epoch')}, {self.seconds:.0f} s"

    def __str__(self) -> str:
        return (f"{self.path}: {self.config.model}, {self.params:,} parameters, "
                f"{wording.plural(self.epochs, 'epoch')}; {self.describe()}")


def read_run(path: str | Path) -> Run:
    """A run folder's settings and its history so far, as its last checkpoint holds them."""
    folder = RunFolder.existing(path)
    if not folder.has_epoch():
        raise RunError(f"{folder.path} is not a run folder with a finished epoch (last.pt is needed)")
    state = folder.checkpoint()
    return Run(folder.path, state.config, state.history, models.count_parameters(models.create(state.config.model)),
               state.seconds)


def first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (None when it does)."""
    missing = None
    for p in [path, *path.parents]:
        if p.exists():
            break
        missing = p
    return missing


def _mkdir(path: Path, exist_ok: bool) -> None:
    try:
        path.mkdir(parents=True, exist_ok=exist_ok)
    except FileExistsError:
        if not exist_ok:
            raise
        raise RunError(f"cannot create {path}: a file is in the way") from None
    except OSError as exc:
        raise RunError(f"cannot create {path}: {exc.strerror}") from None


def timestamp() -> str:
    """The name of a run folder not given one."""
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def inside(out_dir: str | Path, name: str) -> Path:
    """``out_dir``/``name``, refusing a name that would leave ``out_dir`` (``..``, an absolute path)."""
    path = Path(name)
    if not name.strip() or path.is_absolute() or ".." in path.parts:
        raise RunError(f"run name {name!r} must stay inside {out_dir} (no '..', not an absolute path)")
    return Path(out_dir) / path


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


def fingerprint(arrays: dict[Any, Any]) -> str:
    """A digest of the data as read (raw or gzipped alike): resume checks that a run continues on the same data."""
    digest = hashlib.sha256()
    for key in sorted(arrays, key=str):
        digest.update(f"{key}{arrays[key].shape}".encode())
        digest.update(arrays[key].tobytes())
    return digest.hexdigest()[:16]


def command() -> str:
    """How this process was started, for the lock file."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200]
