"""Everything about the device in one place: choice, autocast, memory format, cuDNN."""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass

import torch

from sheetprop import wording

CHOICES = ("auto", "cuda", "mps", "cpu")
# The arithmetic of the forward pass: full precision (TF32 matrix products on CUDA, which cost nothing in
# accuracy here), or autocast to bfloat16 or float16 (float16 with a gradient scaler).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceError(ValueError):
    """The requested device does not exist on this machine."""


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


@dataclass(frozen=True)
class Device:
    """The training device and how to use it well."""

    device: torch.device
    precision: str = "fp32"

    @property
    def type(self) -> str:
        return self.device.type

    @property
    def channels_last(self) -> bool:
        return self.type == "cuda"

    def autocast(self, cache: bool = True):
        """The forward pass in this device's precision: autocast to bf16 or fp16, or nothing for fp32. A step
        captured as a CUDA graph needs ``cache=False`` (autocast's cache of cast weights would outlive it)."""
        dtype = PRECISIONS[self.precision]
        return contextlib.nullcontext() if dtype is None else torch.autocast(self.type, dtype=dtype,
                                                                             cache_enabled=cache)

    def scaler(self) -> torch.amp.GradScaler:
        """The gradient scaler fp16 needs so that small gradients do not flush to zero (a no-op otherwise)."""
        return torch.amp.GradScaler(self.type, enabled=self.precision == "fp16")

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    @property
    def eval_batch(self) -> int:
        """Images per evaluation batch: MNIST's test set in ten batches, or in two on CUDA, where a small batch
        costs its kernel launches more than its arithmetic (the CPU's batches are kept: its results do not move)."""
        return 5000 if self.type == "cuda" else 1000

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def rng_state(self) -> dict[str, torch.Tensor]:
        """The global RNG states that dropout draws from (the CPU's, and the GPU's on CUDA)."""
        state = {"cpu": torch.get_rng_state()}
        if self.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def set_rng_state(self, state: dict[str, torch.Tensor], seed: int) -> None:
        """Restore the RNG states saved by :meth:`rng_state`, possibly on another kind of device.

        A GPU's generator state means nothing to another GPU kind or the CPU, so when the saved
        state has no entry for this device, its generator is seeded from ``seed`` instead (dropout
        then draws other masks than an uninterrupted run would; the data order does not change)."""
        torch.set_rng_state(state["cpu"])
        if self.type == "cuda":
            if "cuda" in state:
                torch.cuda.set_rng_state(state["cuda"], self.device)
            else:
                torch.cuda.manual_seed(seed)

    def describe(self) -> str:
        if self.type == "cuda":
            where = f"cuda ({torch.cuda.get_device_name(self.device)})"
        else:
            where = f"cpu ({wording.plural(torch.get_num_threads(), 'thread')})" if self.type == "cpu" else self.type
        return where if self.precision == "fp32" else f"{where}, {self.precision}"


def data_generator(seed: int) -> torch.Generator:
    """The generator of the data order and augmentation: on the CPU whatever the device, so a run
    draws the same batches on any device and can be resumed on another one."""
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def cores() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads (0: torch's default, one per core)."""
    if threads:
        torch.set_num_threads(threads)


def choose(name: str = "auto") -> str:
    """The kind of device ``name`` means here: ``auto`` is CUDA where there is a GPU, else MPS, else the CPU."""
    if name != "auto":
        return name
    return "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"


def thread_policy_note(device: Device) -> str | None:
    """A line for a run on several CPU threads in a process that imported torch before trainer: OpenMP read its
    settings then, so its idle threads spin, and training slows down badly beside any other busy process."""
    import trainer

    if device.type != "cpu" or not trainer.SPINNING or torch.get_num_threads() < 2:
        return None
    return ("torch was imported before trainer, so OpenMP's idle threads spin (OMP_WAIT_POLICY=PASSIVE came too "
            "late): beside another busy process this run trains several times slower; import trainer first, set "
            f"OMP_WAIT_POLICY=PASSIVE before Python starts, or use {wording.setting('threads', 1)}")


def resolve(name: str = "auto", local_rank: int = 0, precision: str = "fp32") -> Device:
    """``auto`` picks CUDA, then MPS, then the CPU; asking for an absent device, or a precision it cannot
    compute in, is an error. With several processes on a machine, process ``local_rank`` takes GPU
    ``local_rank``."""
    if name not in CHOICES:
        raise DeviceError(f"unknown device {name!r} (choose from {', '.join(CHOICES)})")
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    name = choose(name)
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"{wording.setting('device', 'cuda')} was asked for, but no CUDA device is available "
                          f"(use {wording.setting('device', 'auto')} or {wording.setting('device', 'cpu')})")
    if name == "mps" and not _mps_available():
        raise DeviceError(f"{wording.setting('device', 'mps')} was asked for, but MPS is not available "
                          f"(use {wording.setting('device', 'auto')} or {wording.setting('device', 'cpu')})")
    if precision != "fp32" and not _autocasts(name, PRECISIONS[precision]):
        raise DeviceError(f"{wording.setting('precision', precision)} is not available on {name} with torch "
                          f"{torch.__version__} (use {wording.setting('precision', 'fp32')})")
    if name == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.cuda.set_device(local_rank)
        return Device(torch.device("cuda", local_rank), precision)
    return Device(torch.device(name), precision)


def check_processes(name: str, nproc: int) -> None:
    """Refuse, before any process starts, more processes on this machine than it has GPUs when the run
    would train on CUDA (one GPU per process); on the CPU any number share the cores."""
    if nproc > 1 and (name == "cuda" or (name == "auto" and torch.cuda.is_available())):
        gpus = torch.cuda.device_count()
        if nproc > gpus:
            raise DeviceError(f"{wording.plural(nproc, 'process', 'processes')} on CUDA need as many GPUs, and this "
                              f"machine has {gpus} (use {wording.setting('nproc', max(gpus, 1))}, or "
                              f"{wording.setting('device', 'cpu')} to share the CPU's cores)")


def _autocasts(device_type: str, dtype: torch.dtype) -> bool:
    """Whether autocast to ``dtype`` works on this kind of device (it warns and does nothing where not)."""
    if not torch.amp.is_autocast_available(device_type):
        return False
    if device_type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            with torch.autocast(device_type, dtype=dtype):
                pass
        except (RuntimeError, UserWarning):
            return False
    return True
