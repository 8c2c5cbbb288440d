"""How a training step runs (trainer.step), on the CPU: the graph step's capture logic replayed through a stand-in for
a CUDA graph, the compiled step through torch.compile's eager backend, the fallbacks, and the capturable SGD update
against torch.optim.SGD. What needs a GPU is in test_trainer_cuda.py."""

from __future__ import annotations

from typing import Callable

import openpyxl
import pytest
import torch
from click.testing import CliRunner
from torch.utils._python_dispatch import TorchDispatchMode

from tests.mnist_fixtures import make_images, write_mnist
from trainer import models
from trainer.cli import main
from trainer.config import RunConfig
from trainer.data import Split
from trainer.device import Device, data_generator, resolve
from trainer.distributed import World
from trainer.ema import EMA
from trainer.loop import train_epoch
from trainer.optim import make_optimizer, make_scheduler
from trainer.step import CompiledStep, EagerStep, GraphStep, Parts, make, sgd

BATCH = 16
IMAGES = 4 * BATCH + 7  # four full batches and a smaller last one


def split(n: int = IMAGES, seed: int = 0, device: torch.device | str = "cpu") -> Split:
    images, labels = make_images(n, seed)
    x = torch.from_numpy(images).float().unsqueeze(1) / 255
    return Split(((x - x.mean()) / x.std()).to(device), torch.from_numpy(labels).long().to(device))


def parts(cfg: RunConfig, device: str = "cpu") -> Parts:
    """A freshly seeded model, optimizer, schedule and weight average, as a run makes them."""
    torch.manual_seed(cfg.seed)
    device = resolve(device, precision=cfg.precision)
    model = device.prepare(models.create(cfg.model))
    optimizer = make_optimizer(cfg, model)
    scheduler = make_scheduler(cfg, optimizer, -(-IMAGES // cfg.batch_size))
    return Parts(model, optimizer, scheduler, device, cfg, EMA(model, cfg.ema) if cfg.ema else None, device.scaler())


def train(make_step: Callable[[Parts], object], cfg: RunConfig, epochs: int = 2, device: str = "cpu",
          dropout: bool = True) -> tuple[Parts, list]:
    p = parts(cfg, device)
    if not dropout:
        p.model.dropout.p = 0.0
    step, generator, data = make_step(p), data_generator(cfg.seed), split(device=p.device.device)
    results = [train_epoch(step, data, cfg, generator, epoch=e, progress=False) for e in range(1, epochs + 1)]
    return p, results


def assert_same_training(a: Parts, b: Parts) -> None:
    """Bit for bit the same weights, BatchNorm statistics, optimizer state, schedule and weight average."""
    torch.testing.assert_close(a.model.state_dict(), b.model.state_dict(), rtol=0, atol=0)
    torch.testing.assert_close(a.optimizer.state_dict(), b.optimizer.state_dict(), rtol=0, atol=0)
    assert a.scheduler.state_dict() == b.scheduler.state_dict()
    if a.ema is not None:
        torch.testing.assert_close(a.ema.model.state_dict(), b.ema.model.state_dict(), rtol=0, atol=0)
        assert a.ema.updates == b.ema.updates > 0


class NoHostSync(TorchDispatchMode):
    """Fails on any operation that reads a tensor's value back to Python, which a CUDA graph capture refuses."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default):
            raise AssertionError(f"{func} reads a tensor's value on the host: it cannot be captured")
        return func(*args, **(kwargs or {}))


class Replay:
    """A CUDA graph's stand-in on the CPU. Capturing runs the step once with no host reads allowed and undoes its
    effects (a capture records kernels without running them); a replay runs it again into the captured outputs
    with the optimizer's and the average's Python numbers hidden (NaN), as a graph cannot see them."""

    def __init__(self, p: Parts) -> None:
        self.parts, self.captures, self.replays, self.warms = p, 0, 0, 0

    def tensors(self) -> list[torch.Tensor]:
        p = self.parts
        found = [*p.model.state_dict().values(), *(p.ema.model.state_dict().values() if p.ema else [])]
        return found + [s["momentum_buffer"] for s in p.optimizer.state.values() if "momentum_buffer" in s]

    def warm(self, run):
        self.warms += 1
        return run()

    def capture(self, run):
        saved, rng = [t.clone() for t in self.tensors()], torch.get_rng_state()
        with NoHostSync():
            self.outputs, self.run = run(), run
        for t, s in zip(self.tensors(), saved, strict=True):
            t.copy_(s)
        torch.set_rng_state(rng)
        self.captures += 1
        return self.outputs

    def replay(self) -> None:
        group, ema = self.parts.optimizer.param_groups[0], self.parts.ema
        hidden = {"lr": group["lr"], "momentum": group["momentum"]}
        group.update(lr=float("nan"), momentum=float("nan"))
        decay, ema.decay = ema.decay, float("nan")
        try:
            for static, fresh in zip(self.outputs, self.run(), strict=True):
                static.copy_(fresh)
        finally:
            group.update(hidden)
            ema.decay = decay
        self.replays += 1


@pytest.mark.parametrize("settings", [{}, {"momentum": 0.03}, {"momentum": 0.0, "scheduler": "step", "step_size": 1}],
                         ids=["default", "momentum-reaches-0", "no-momentum"])
def test_a_replayed_graph_step_trains_bit_for_bit_as_the_plain_step(settings):
    cfg = RunConfig(epochs=2, batch_size=BATCH, ema=0.9, **settings)
    plain, plain_results = train(EagerStep, cfg)
    recorders = []
    graphed, graphed_results = train(lambda p: GraphStep(p, recorders.append(Replay(p)) or recorders[-1]), cfg)
    assert_same_training(plain, graphed)
    assert graphed_results == plain_results
    replay = recorders[0]
    full_batches = 2 * (IMAGES // BATCH)  # the smaller last batch of each epoch runs the plain step
    zero_momentum = 1 if settings.get("momentum") == 0.03 else 0  # at OneCycle's peak (step 2): SGD skips the buffers
    assert (replay.warms, replay.captures) == (GraphStep.WARMUP, 1)
    assert replay.replays == full_batches - GraphStep.WARMUP - zero_momentum


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")
def test_the_capturable_sgd_update_is_torch_sgd_bit_for_bit():
    cfg = RunConfig(batch_size=BATCH, weight_decay=1e-3)
    ours, theirs = parts(cfg), parts(cfg)
    ours.model.eval(), theirs.model.eval()  # no dropout: both see the same gradients
    lr, momentum = torch.zeros(()), torch.zeros(())
    x, y = split().images[:BATCH], split().labels[:BATCH]
    for _ in range(5):
        for p in (ours, theirs):
            p.optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(p.model(x), y).backward()
        group = ours.optimizer.param_groups[0]
        lr.fill_(group["lr"])
        momentum.fill_(group["momentum"])
        sgd(ours.optimizer, lr, momentum)
        theirs.optimizer.step()
        for p in (ours, theirs):
            p.scheduler.step()
    torch.testing.assert_close(ours.model.state_dict(), theirs.model.state_dict(), rtol=0, atol=0)
    torch.testing.assert_close(ours.optimizer.state_dict(), theirs.optimizer.state_dict(), rtol=0, atol=0)


def test_a_compiled_forward_trains_bit_for_bit_as_the_plain_one():
    cfg = RunConfig(batch_size=BATCH, ema=0.9)
    plain, plain_results = train(EagerStep, cfg, epochs=1)
    compiled, compiled_results = train(
        lambda p: CompiledStep(p, compiler=lambda f: torch.compile(f, backend="eager", fullgraph=True)), cfg, epochs=1)
    assert_same_training(plain, compiled)
    assert compiled_results == plain_results


def test_a_compilation_that_fails_puts_the_model_back_says_so_once_and_steps_eagerly():
    def failing(forward):
        def compiled(*args):
            forward(*args)  # like a backward that fails to compile: the forward has already run
            raise RuntimeError("no compiler here\nsecond line")
        return compiled

    cfg = RunConfig(batch_size=BATCH, ema=0.9)
    said: list[str] = []
    steps = []
    plain, plain_results = train(EagerStep, cfg, epochs=1)
    fallen, fallen_results = train(lambda p: steps.append(CompiledStep(p, failing, said.append)) or steps[-1], cfg,
                                   epochs=1)
    assert_same_training(plain, fallen)
    assert fallen_results == plain_results
    assert said == ["step_mode='compile' failed (RuntimeError: no compiler here); training steps run eagerly"]
    assert steps[0].mode == "eager"


@pytest.mark.parametrize("mode, device, settings, world, said", [
    ("graph", "cpu", {}, 1, "needs CUDA, and this run is on cpu"),
    ("compile", "cpu", {}, 1, "needs CUDA, and this run is on cpu"),
    ("compile", "cuda", {}, 2, "runs in one process"),
    ("graph", "cuda", {"optimizer": "adamw"}, 1, "captures the sgd optimizer only"),
    ("graph", "cuda", {"precision": "fp16"}, 1, "cannot capture fp16's gradient scaler"),
    ("graph", "cuda", {}, 1, None),
    ("compile", "cuda", {"precision": "fp16"}, 1, None),
    ("eager", "cuda", {}, 1, None),
])
def test_each_step_mode_runs_where_it_can_and_says_in_one_line_where_not(monkeypatch, mode, device, settings, world,
                                                                        said):
    """The step a run gets: a fast mode where it can run, else the plain step and one line saying why (a CUDA
    device is stood in for: the modes' constructors are replaced, so nothing here needs a GPU)."""
    built = []
    monkeypatch.setattr("trainer.step.GraphStep", lambda p: built.append("graph") or "graph step")
    monkeypatch.setattr("trainer.step.CompiledStep", lambda p, echo: built.append("compile") or "compiled step")
    cfg = RunConfig(batch_size=BATCH, **settings)
    p = parts(RunConfig(batch_size=BATCH))
    p.cfg, p.world, p.device = cfg, World(0, world), Device(torch.device(device), cfg.precision)
    lines: list[str] = []
    chosen = make(mode, p, lines.append)
    if said is None:
        assert lines == [] and built == ([mode] if mode != "eager" else []) and not isinstance(chosen, GraphStep)
    else:
        assert lines == [f"step_mode='{mode}' {said}; training steps run eagerly"] and built == []
        assert type(chosen) is EagerStep


def test_torch_compile_missing_is_one_line_and_the_plain_step():
    def missing(forward):
        raise RuntimeError("torch.compile is not supported on this Python")

    said: list[str] = []
    step = CompiledStep(parts(RunConfig(batch_size=BATCH)), missing, said.append)
    assert step.mode == "eager" and len(said) == 1 and "not supported" in said[0]


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    return write_mnist(tmp_path_factory.mktemp("mnist"), gz=True)


def cli(*args):
    return CliRunner().invoke(main, [*map(str, args)])


def test_a_fast_step_mode_without_cuda_says_so_in_one_line_and_trains_as_the_plain_path(mnist_dir, tmp_path):
    common = ["run", "--no-progress", "--device", "cpu", "--data-dir", mnist_dir, "--epochs", 1, "--batch-size", 64,
              "--out-dir", tmp_path, "--model", "tiny"]
    plain = cli(*common, "--name", "plain")
    assert plain.exit_code == 0, plain.output
    for mode in ("graph", "compile"):
        result = cli(*common, "--name", mode, "--step-mode", mode)
        assert result.exit_code == 0, result.output
        said = [line for line in result.output.splitlines() if "--step-mode" in line]
        assert said == [f"--step-mode {mode} needs CUDA, and this run is on cpu; training steps run eagerly"]
        a, b = (torch.load(tmp_path / name / "last.pt", weights_only=False) for name in ("plain", mode))
        torch.testing.assert_close(a["model"], b["model"], rtol=0, atol=0)
        assert b["config"]["step_mode"] == mode
        facts = {r[0]: r[1] for r in openpyxl.load_workbook(tmp_path / mode / "training.xlsx")["Config"].iter_rows(
            values_only=True) if r and r[0]}
        assert facts["training step"] == "eager"


def test_a_run_resumes_in_another_step_mode(mnist_dir, tmp_path, monkeypatch):
    from tests.interrupt import stop_at_epoch

    common = ["run", "--no-progress", "--device", "cpu", "--data-dir", mnist_dir, "--epochs", 2, "--batch-size", 64,
              "--out-dir", tmp_path]
    stop_at_epoch(monkeypatch, 2)
    assert cli(*common, "--name", "cut").exit_code == 130
    monkeypatch.undo()
    resumed = cli("run", "--no-progress", "--resume", tmp_path / "cut", "--step-mode", "graph")
    assert resumed.exit_code == 0 and "Epoch 2:" in resumed.output, resumed.output
    assert "--step-mode graph needs CUDA" in resumed.output


@pytest.mark.parametrize("name, kind", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                        ("adamw", torch.optim.AdamW)])
def test_each_optimizer_is_torch_optims_of_that_name_with_its_own_settings(name, kind):
    cfg = RunConfig(optimizer=name, momentum=0.5, beta1=0.7, beta2=0.99, weight_decay=1e-3)
    group = make_optimizer(cfg, models.create("tiny")).param_groups[0]
    assert type(make_optimizer(cfg, models.create("tiny"))) is kind and group["weight_decay"] == 1e-3
    if name == "sgd":
        assert group["momentum"] == 0.5 and group["nesterov"]
    else:  # momentum is SGD's alone
        assert group["betas"] == (0.7, 0.99) and "momentum" not in group
