"""Data-parallel training over several processes, as torchrun starts them: who this process is,
and the few collective steps a run needs (sums, one broadcast, one gather).

Without torchrun's environment (RANK, WORLD_SIZE, …) a run is a world of one and every helper
here is a no-op, so the training code reads the same either way. Only rank 0 prints and writes.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from trainer import signals
from trainer.device import cores

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def backend(self) -> str | None:
        return dist.get_backend() if self.size > 1 and dist.is_initialized() else None


def from_environment() -> World:
    """This process's place in the group torchrun describes (a world of one without torchrun)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def start(world: World, device: torch.device) -> None:
    """Join the process group: NCCL between GPUs, gloo on the CPU."""
    if world.size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(minutes=10),
                                device_id=device if device.type == "cuda" else None)


def stop(finished: bool = True) -> None:
    """Leave the process group. After work that ``finished`` everywhere, wait for every process first
    (after a failure the others may never arrive). Models wrapped by :func:`wrap` must be dropped
    before: the group's last references are collected here, while Python is still whole; freed at
    interpreter exit instead, gloo's threads may abort the process."""
    if dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()
        gc.collect()


def total(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over all processes (in place)."""
    if dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather(obj: T) -> list[T]:
    """Every process's ``obj``, in rank order."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def on_main(work: Callable[[], T], errors: tuple[type[Exception], ...]) -> T:
    """Do ``work`` on rank 0 only and hand its result, or its error (one of ``errors``), to every process."""
    if not dist.is_initialized():
        return work()
    box: list[Any] = [None]
    if dist.get_rank() == 0:
        try:
            box[0] = ("ok", work())
        except errors as exc:
            box[0] = ("error", exc)
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def wrap(model: nn.Module, device: torch.device, world: World) -> nn.Module:
    """The model as each process trains it: DistributedDataParallel over the group, with BatchNorm
    statistics synchronized between GPUs (SyncBatchNorm needs CUDA; on the CPU each process keeps its own)."""
    if world.size == 1:
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return nn.parallel.DistributedDataParallel(model)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def batch_norm(device: torch.device, world: World) -> str:
    """How BatchNorm statistics are computed, for the Config sheet."""
    if world.size == 1:
        return "one process"
    return "synchronized across GPUs (SyncBatchNorm)" if device.type == "cuda" else \
        "per process while training, averaged across processes after each epoch (CPU)"


def average_batch_norm(model: nn.Module) -> None:
    """Set every process's BatchNorm running statistics to their mean over the processes, so that every
    process evaluates, and rank 0 saves, one model (without SyncBatchNorm each process keeps its own)."""
    if not dist.is_initialized():
        return
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            for buffer in (m.running_mean, m.running_var):
                dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
                buffer /= dist.get_world_size()


class LaunchError(RuntimeError):
    """Processes started by :func:`launch` failed; the message says which, in one line."""


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``python -m trainer.worker ARGV`` in ``nproc`` processes on this machine with torchrun's launcher
    (``torch.distributed.run --standalone``); returns the exit code to leave with.

    A failure the processes reported themselves (exit code 1: rank 0 printed it) or an interruption
    (130: rank 0 said where the last epoch is) passes through as it is; anything else is one line."""
    import logging

    saved_env = {k: os.environ.get(k) for k in ("LOGLEVEL", "OMP_NUM_THREADS")}
    os.environ.setdefault("LOGLEVEL", "CRITICAL")  # read when torchrun's modules first load: we report failures
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    logging.getLogger("torch.distributed").setLevel(logging.CRITICAL)  # torchrun's notices and failure reports
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores() // nproc)))  # the cores split between processes
    try:
        with signals.handlers_kept():  # torchrun installs its own handlers and leaves them
            torchrun.run(torchrun.parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", "trainer.worker",
                                              *argv]))
    except ChildFailedError as exc:
        first = min(exc.failures.items(), key=lambda item: item[1].timestamp)
        code = first[1].exitcode
        if code in (1, 130):
            return code
        raise LaunchError(f"process {first[0]} of {nproc} stopped with exit code {code}"
                          + (f" (signal {-code})" if code < 0 else "")) from None
    except SignalException:
        return 130
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return 0


def peer_lost(exc: BaseException) -> bool:
    """Whether an error means another process of the group stopped (its connection closed)."""
    text = str(exc)
    return isinstance(exc, getattr(dist, "DistError", ())) or any(
        word in text for word in ("Connection closed", "Connection reset", "gloo", "NCCL", "Broken pipe"))


def quiet(*args: Any, **kwargs: Any) -> None:
    """The echo of every process but rank 0: nothing."""
