"""The one signal policy of every trainer command: SIGTERM and SIGHUP (a kill, a closed terminal, a sweep or
torchrun's launcher stopping its processes) stop work the way Ctrl-C does, as a KeyboardInterrupt, so that a
run folder is left as after Ctrl-C: its last complete epoch kept. A process started by a sweep or a launcher
also dies with it, however it dies."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Any, Iterator

STOPPING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
HANDLED = (signal.SIGINT, *STOPPING, *((signal.SIGQUIT,) if hasattr(signal, "SIGQUIT") else ()))


def _interrupt(signum: int, frame: Any) -> None:
    for sig in STOPPING:  # once is enough: a second signal would cut the cleanup (restored when the block ends)
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


@contextlib.contextmanager
def _handled(handler: Any, signals: tuple[int, ...]) -> Iterator[None]:
    """Within the block, ``signals`` go to ``handler``; the handlers before are restored after (only the main
    thread may set them: elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)


@contextlib.contextmanager
def interruptible(with_parent: bool = False) -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise KeyboardInterrupt as Ctrl-C does; the handlers before are
    restored after (a notebook keeps its own). ``with_parent``: this process also stops when the process
    that started it dies."""
    if with_parent:
        die_with_parent()
    with _handled(_interrupt, STOPPING):
        yield


@contextlib.contextmanager
def ignored() -> Iterator[None]:
    """Within the block, Ctrl-C, SIGTERM and SIGHUP are ignored: for the cleanup after an interruption or a
    failure, which a second signal (torchrun's launcher stops every process once one has stopped) would cut."""
    with _handled(signal.SIG_IGN, (signal.SIGINT, *STOPPING)):
        yield


@contextlib.contextmanager
def handlers_kept() -> Iterator[None]:
    """Put back every handler this policy concerns after the block (torchrun's launcher installs its own and
    leaves them)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in HANDLED}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def die_with_parent() -> None:
    """Have the kernel send this process SIGTERM when the process that started it dies, however it dies
    (Linux; elsewhere nothing): a killed sweep or launcher leaves no run training on its own."""
    import ctypes

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
