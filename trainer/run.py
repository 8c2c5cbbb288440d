"""A training run: :func:`execute` trains (or continues) one in its run folder, in this process, as one of
torchrun's processes or as a worker (:class:`Run`, a run folder read back, is :mod:`trainer.runfolder`'s)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

from trainer import distributed, signals
from trainer.config import RunConfig
from trainer.device import Device, resolve, set_threads
from trainer.distributed import World
from trainer.loop import NaNLoss
from trainer.runfolder import Run, RunError, RunFolder, read_run  # noqa: F401 (read_run's old home)
from trainer.session import open_session


@dataclass(frozen=True)
class Destination:
    """The run folder to train in: a new one (``folder``, or made from ``name`` or a timestamp under the
    settings' out_dir; ``force`` replaces one) or one to continue (``resume``)."""

    name: str | None = None
    force: bool = False
    resume: bool = False
    folder: RunFolder | None = None

    def claim(self, cfg: RunConfig, locks: contextlib.ExitStack) -> RunFolder:
        """The folder, locked for this process (released when ``locks`` closes) and checked."""
        folder = self.folder or RunFolder.create(cfg.out_dir, self.name)
        locks.enter_context(folder.lock())
        if not self.resume:
            folder.clear(self.force)
        return folder


def execute(cfg: RunConfig, destination: Destination, progress: bool = True, echo: Callable[[str], None] = print,
            world: World = World()) -> Run:
    """Train (or continue) a run; checkpoints and workbook follow every epoch. Ctrl-C, SIGTERM and SIGHUP end it
    as :class:`~trainer.runfolder.Interrupted`, which says what was kept.

    Under torchrun every process calls this; they train one model together and rank 0 alone
    decides the folder, prints and writes."""
    device = resolve(cfg.device, world.local_rank, cfg.precision)
    set_threads(cfg.threads)
    with signals.interruptible(with_parent=world.size > 1):
        distributed.start(world, device.device)
        try:
            with contextlib.ExitStack() as locks:
                folder = distributed.on_main(lambda: destination.claim(cfg, locks), (RunError,))
                result = _train(cfg, folder, destination.resume, device, world, progress and world.main,
                                echo if world.main else distributed.quiet)
            distributed.stop()
            return result
        finally:
            with signals.ignored():
                distributed.stop(finished=False)


def _train(cfg: RunConfig, folder: RunFolder, resume: bool, device: Device, world: World, progress: bool,
           echo: Callable[[str], None]) -> Run:
    """The session's epochs; a new run that ends before its first epoch leaves nothing behind."""
    try:
        return open_session(cfg, folder, resume, device, world, progress, echo).train()
    except BaseException as exc:
        with signals.ignored():
            if world.main and not resume:
                folder.discard_unstarted()
            if isinstance(exc, KeyboardInterrupt) or (isinstance(exc, RuntimeError) and world.size > 1
                                                      and distributed.peer_lost(exc)):  # another process stopped
                stopped: BaseException = folder.interrupted(world.size)
            elif isinstance(exc, NaNLoss):
                stopped = NaNLoss(exc.epoch, exc.batch, folder.path)
            else:
                raise
        raise stopped from None
