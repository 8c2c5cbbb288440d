"""How a training step runs: eagerly, one operation after another (the plain path); captured once as a CUDA
graph and replayed; or with its forward pass compiled by ``torch.compile(mode="reduce-overhead")``.

The epoch loop calls each the same way, and each leaves the model, optimizer state, schedule and weight
average where the plain path leaves them, so a checkpoint does not depend on the mode and a run may be
resumed in another one. The fast modes are for CUDA; elsewhere a run says so in one line and steps eagerly.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Protocol, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from sheetprop import wording
from trainer.config import RunConfig
from trainer.device import Device
from trainer.distributed import World
from trainer.ema import EMA

T = TypeVar("T")
Outputs = tuple[torch.Tensor, torch.Tensor]  # a batch's summed loss and its number of right predictions, on the device


@dataclass
class Parts:
    """What a training step reads and updates."""

    model: nn.Module  # as trained: DistributedDataParallel with several processes
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    device: Device
    cfg: RunConfig
    ema: EMA | None = None
    scaler: torch.amp.GradScaler | None = None
    world: World = World()


def batch_loss(logits: torch.Tensor, y: torch.Tensor, whole: int, cfg: RunConfig,
               world: World = World()) -> tuple[torch.Tensor, torch.Tensor]:
    """(the loss to differentiate, the sum of the per-image losses) for this process's part of a batch of
    ``whole`` images: its share of the batch's mean loss, times the number of processes, so that the
    gradients DistributedDataParallel averages over the processes are the whole batch's."""
    if world.size == 1:
        loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        return loss, loss.detach() * len(y)
    summed = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing, reduction="sum")
    return summed * world.size / whole, summed.detach()


class Step(Protocol):
    """One training step on a batch: the epoch loop's only way to train."""

    model: nn.Module
    mode: str  # the mode that runs (eager after a fallback)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, whole: int) -> Outputs: ...


class EagerStep:
    """The plain path: forward, backward, optimizer, schedule and weight average, each operation launched
    from Python as it comes."""

    mode = "eager"

    def __init__(self, parts: Parts) -> None:
        self.parts, self.model = parts, parts.model
        self.scaling = parts.scaler is not None and parts.scaler.is_enabled()

    def forward(self, x: torch.Tensor, y: torch.Tensor, whole: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(the loss to differentiate, the summed loss, the number right) of this process's part of a batch of
        ``whole`` images."""
        p = self.parts
        with p.device.autocast():
            logits = self.model(p.device.inputs(x))
            loss, summed = batch_loss(logits, y, whole, p.cfg, p.world)
        return loss, summed, (logits.argmax(1) == y).sum()

    def backward(self, loss: torch.Tensor) -> None:
        self.parts.optimizer.zero_grad(set_to_none=True)
        (self.parts.scaler.scale(loss) if self.scaling else loss).backward()

    def update(self) -> None:
        """The optimizer's step, the schedule's and the weight average's."""
        p = self.parts
        if self.scaling:
            p.scaler.step(p.optimizer)  # skipped, and the scale lowered, when a gradient overflowed in fp16
            p.scaler.update()
        else:
            p.optimizer.step()
        p.scheduler.step()
        if p.ema is not None:
            p.ema.update()

    def __call__(self, x: torch.Tensor, y: torch.Tensor, whole: int) -> Outputs:
        loss, summed, right = self.forward(x, y, whole)
        self.backward(loss)
        self.update()
        return summed, right


def reduce_overhead(forward: Callable) -> Callable:
    """``forward`` compiled to Inductor's kernels, replayed (with its backward) as CUDA graphs."""
    return torch.compile(forward, mode="reduce-overhead", fullgraph=True)


class CompiledStep(EagerStep):
    """The plain step with its forward pass (model and loss, and so their backward) compiled; optimizer,
    schedule and weight average run as on the plain path. A batch of another size (an epoch's last) runs
    uncompiled rather than compiling again; if compiling fails, the model and RNG are put back as they were,
    the run says so in one line and steps eagerly from there on."""

    mode = "compile"

    def __init__(self, parts: Parts, compiler: Callable[[Callable], Callable] = reduce_overhead,
                 echo: Callable[[str], None] = print) -> None:
        super().__init__(parts)
        self.echo = echo
        self.proven = False  # a compiled forward and backward have run
        self.compiled: Callable | None = None
        try:
            self.compiled = compiler(self.forward)
        except Exception as exc:  # noqa: BLE001 - torch.compile unavailable here
            self.give_up(exc)

    def give_up(self, exc: Exception) -> None:
        """Step eagerly from now on, and say why in one line."""
        reason = (str(exc).strip().splitlines() or [""])[0][:160]
        self.echo(f"{wording.setting('step_mode', 'compile')} failed ({type(exc).__name__}: {reason}); "
                  "training steps run eagerly")
        self.compiled, self.mode = None, "eager"

    def __call__(self, x: torch.Tensor, y: torch.Tensor, whole: int) -> Outputs:
        if self.compiled is None or len(y) != self.parts.cfg.batch_size:
            return super().__call__(x, y, whole)
        torch.compiler.cudagraph_mark_step_begin()  # a new step: the last one's outputs, read already, may be reused
        if self.proven:
            loss, summed, right = self.compiled(x, y, whole)
            self.backward(loss)
        else:
            p = self.parts
            weights = {k: v.clone() for k, v in self.model.state_dict().items()}
            rng = p.device.rng_state()
            try:  # compiling happens in the first forward and the first backward
                loss, summed, right = self.compiled(x, y, whole)
                self.backward(loss)
            except Exception as exc:  # noqa: BLE001 - any failure to compile leaves the plain path
                self.model.load_state_dict(weights)
                p.device.set_rng_state(rng, p.cfg.seed)
                self.give_up(exc)
                return super().__call__(x, y, whole)
            self.proven = True
        self.update()
        return summed, right


@torch.no_grad()
def sgd(optimizer: torch.optim.Optimizer, lr: torch.Tensor, momentum: torch.Tensor | None) -> None:
    """torch.optim.SGD's update (weight decay, momentum, Nesterov), operation for operation, with the learning
    rate and momentum read from 0-dimensional device tensors: SGD takes them as Python numbers, which a captured
    graph would freeze. On the CPU the two agree bit for bit (tests/test_trainer_step.py). The momentum buffers
    are the optimizer's state, as SGD keeps them."""
    for group in optimizer.param_groups:
        params = [p for p in group["params"] if p.grad is not None]
        grads = [p.grad for p in params]
        if group["weight_decay"]:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        if momentum is not None:
            state = [optimizer.state[p] for p in params]
            if any("momentum_buffer" not in s for s in state):  # the first step: the buffers start as the gradients
                for s, g in zip(state, grads):
                    s["momentum_buffer"] = g.detach().clone()
                buffers = [s["momentum_buffer"] for s in state]
            else:
                buffers = [s["momentum_buffer"] for s in state]
                torch._foreach_mul_(buffers, momentum)
                torch._foreach_add_(buffers, grads)
            grads = torch._foreach_addcmul(grads, buffers, [momentum] * len(grads)) if group["nesterov"] else buffers
        torch._foreach_addcmul_(params, grads, [lr] * len(params), value=-1)


class Recorder(Protocol):
    """What :class:`GraphStep` needs of a CUDA graph (tests replace it with a stand-in that runs on the CPU)."""

    def warm(self, run: Callable[[], T]) -> T: ...

    def capture(self, run: Callable[[], T]) -> T: ...

    def replay(self) -> None: ...


class CudaGraph:
    """torch.cuda.CUDAGraph behind the three calls GraphStep makes."""

    def __init__(self) -> None:
        self.graph = torch.cuda.CUDAGraph()
        self.stream = torch.cuda.Stream()

    def warm(self, run: Callable[[], T]) -> T:
        """An uncaptured run on a side stream, as capturing requires of the runs before it."""
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            out = run()
        torch.cuda.current_stream().wait_stream(self.stream)
        return out

    def capture(self, run: Callable[[], T]) -> T:
        """``run``'s kernels recorded, not executed; what it returns is refilled by every replay."""
        with torch.cuda.graph(self.graph):
            return run()

    def replay(self) -> None:
        self.graph.replay()


class GraphStep:
    """The whole step (forward, backward, SGD update, weight average) captured once as a CUDA graph on static
    input buffers, and replayed for every full batch: one launch for what takes about a hundred. The schedule's
    learning rate and momentum and the average's weight reach the graph as device tensors filled before each
    replay; the schedule and the average's count advance in Python, as on the plain path. A batch of another
    size (an epoch's last) and a step whose scheduled momentum is 0 run the plain step."""

    mode = "graph"
    WARMUP = 3  # uncaptured steps before capturing: cuDNN's autotuning and lazy initialisation happen there

    def __init__(self, parts: Parts, recorder: Recorder | None = None) -> None:
        self.parts, self.model = parts, parts.model
        self.eager = EagerStep(parts)
        self.recorder = recorder if recorder is not None else CudaGraph()
        self.lr, self.momentum, self.weight = torch.zeros(3, device=parts.device.device).unbind()
        self.momentum_on = parts.cfg.momentum > 0
        self.inputs: tuple[torch.Tensor, torch.Tensor] | None = None
        self.outputs: Outputs | None = None
        self.warmed = 0

    def run(self, x: torch.Tensor, y: torch.Tensor) -> Outputs:
        """One step on device tensors alone, reading no Python number that changes: what is captured."""
        p = self.parts
        for param in self.model.parameters():
            param.grad = None
        with p.device.autocast(cache=False):
            logits = self.model(p.device.inputs(x))
            loss, summed = batch_loss(logits, y, len(y), p.cfg)
        loss.backward()
        sgd(p.optimizer, self.lr, self.momentum if self.momentum_on else None)
        if p.ema is not None:
            p.ema.blend(self.weight)
        return summed, (logits.argmax(1) == y).sum()

    def __call__(self, x: torch.Tensor, y: torch.Tensor, whole: int) -> Outputs:
        p = self.parts
        group = p.optimizer.param_groups[0]
        if len(y) != p.cfg.batch_size or (self.momentum_on and group["momentum"] == 0):
            return self.eager(x, y, whole)  # SGD skips the momentum buffers at momentum 0; the graph cannot
        self.lr.fill_(group["lr"])
        self.momentum.fill_(group["momentum"])
        if p.ema is not None:
            self.weight.fill_(p.ema.next_weight())
        if self.inputs is None:
            self.inputs = (torch.empty_like(x), torch.empty_like(y))
        self.inputs[0].copy_(x)
        self.inputs[1].copy_(y)
        if self.warmed < self.WARMUP:
            out = self.recorder.warm(lambda: self.run(*self.inputs))
            self.warmed += 1
        else:
            if self.outputs is None:
                self.outputs = self.recorder.capture(lambda: self.run(*self.inputs))
            self.recorder.replay()
            out = self.outputs
        with warnings.catch_warnings():  # the update ran in the graph, not through optimizer.step()
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            p.scheduler.step()
        if p.ema is not None:
            p.ema.updates += 1
        return out


def unavailable(mode: str, device: Device, cfg: RunConfig, world: World = World()) -> str | None:
    """Why ``mode`` cannot run here, or None when it can."""
    if mode == "eager":
        return None
    if device.type != "cuda":
        return f"needs CUDA, and this run is on {device.type}"
    if world.size > 1:
        return "runs in one process"
    if mode == "graph" and cfg.optimizer != "sgd":
        return "captures the sgd optimizer only"
    if mode == "graph" and cfg.precision == "fp16":
        return "cannot capture fp16's gradient scaler"
    return None


def make(mode: str, parts: Parts, echo: Callable[[str], None] = print) -> Step:
    """The step for ``mode``, or the plain one, said in one line, where ``mode`` cannot run."""
    problem = unavailable(mode, parts.device, parts.cfg, parts.world)
    if problem is not None:
        echo(f"{wording.setting('step_mode', mode)} {problem}; training steps run eagerly")
        return EagerStep(parts)
    if mode == "graph":
        return GraphStep(parts)
    if mode == "compile":
        return CompiledStep(parts, echo=echo)
    return EagerStep(parts)
