"""The trainer on a GPU: each test needs CUDA and is skipped without it (`pytest -m cuda` selects them)."""

import pytest
import torch
from click.testing import CliRunner

from tests.mnist_fixtures import write_mnist
from tests.interrupt import stop_at_epoch
from trainer.cli import main

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    return write_mnist(tmp_path_factory.mktemp("mnist"), n_train=1000, n_test=200, gz=True)


def cli(*args):
    return CliRunner().invoke(main, [*map(str, args)])


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_one_epoch_on_cuda_in_each_precision(mnist_dir, tmp_path, precision):
    result = cli("run", "--no-progress", "--device", "cuda", "--precision", precision, "--data-dir", mnist_dir,
                 "--epochs", 1, "--batch-size", 64, "--out-dir", tmp_path, "--name", precision)
    assert result.exit_code == 0, result.output
    state = torch.load(tmp_path / precision / "last.pt", weights_only=False)
    assert "cuda (" in result.output and state["config"]["precision"] == precision
    assert 0 < state["history"][0]["test_acc"] <= 1


def test_a_run_moves_from_cuda_to_cpu_and_back_with_the_same_batches(mnist_dir, tmp_path, monkeypatch):
    common = ["--data-dir", mnist_dir, "--epochs", 3, "--batch-size", 64, "--out-dir", tmp_path, "--name", "move",
              "--scheduler", "step"]
    stop_at_epoch(monkeypatch, 2)
    assert cli("run", "--no-progress", "--device", "cuda", *common).exit_code == 130
    monkeypatch.undo()
    stop_at_epoch(monkeypatch, 3)
    on_cpu = cli("run", "--no-progress", "--resume", tmp_path / "move", "--device", "cpu")
    assert on_cpu.exit_code == 130 and "Epoch 2:" in on_cpu.output, on_cpu.output
    monkeypatch.undo()
    back = cli("run", "--no-progress", "--resume", tmp_path / "move", "--device", "cuda")
    assert back.exit_code == 0 and "Epoch 3:" in back.output, back.output
    history = torch.load(tmp_path / "move" / "last.pt", weights_only=False)["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_a_two_job_sweep_shares_one_gpu(mnist_dir, tmp_path):
    result = cli("sweep", "--seeds", "1,2", "--jobs", 2, "--device", "cuda", "--epochs", 1, "--batch-size", 64,
                 "--data-dir", mnist_dir, "--out-dir", tmp_path, "--no-progress", "--name", "two")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "two" / "compare.xlsx").is_file()
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if p.is_dir()) == ["seed1", "seed2"]


@pytest.fixture
def exact_kernels(monkeypatch):
    """Full fp32 and cuDNN's deterministic kernels, not autotuned, in each run a test makes through
    tests.test_trainer_step's helpers: trainer.device.resolve turns on TF32 and cudnn.benchmark for a run, and with
    them two runs of the same step already part by more than rounding (TF32 keeps 10 bits of each product, and
    the autotuner may pick other kernels in each run)."""
    from tests import test_trainer_step as helpers

    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32
    real = helpers.resolve

    def resolve(*args, **kwargs):
        device = real(*args, **kwargs)
        cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32 = False, True, False, False
        return device

    monkeypatch.setattr(helpers, "resolve", resolve)
    yield
    cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32 = saved


@pytest.mark.parametrize("mode", ["graph", "compile"])
def test_a_fast_step_trains_as_the_plain_step(mode, exact_kernels):
    from tests.test_trainer_step import IMAGES, train
    from trainer.config import RunConfig
    from trainer.step import CompiledStep, EagerStep, GraphStep

    cfg = RunConfig(epochs=2, batch_size=16, ema=0.9)
    plain, plain_results = train(EagerStep, cfg, device="cuda", dropout=False)
    steps = []
    fast, fast_results = train(lambda p: steps.append((GraphStep if mode == "graph" else CompiledStep)(p)) or steps[-1],
                               cfg, device="cuda", dropout=False)
    assert steps[0].mode == mode and IMAGES > 4 * 16  # four full batches per epoch, and a smaller last one
    if mode == "graph":
        assert steps[0].outputs is not None  # captured, and replayed in the second epoch
    # the same fp32 arithmetic in other kernels (compiled, fused, SGD's foreach against ours): close, not equal
    torch.testing.assert_close(fast.model.state_dict(), plain.model.state_dict(), rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(fast.ema.model.state_dict(), plain.ema.model.state_dict(), rtol=1e-3, atol=1e-4)
    # the momentum buffers sum ten steps' gradients, which Inductor's fused reductions order otherwise than cuDNN:
    # on an H200 two of them moved by up to 6.9e-4 (their largest entries about 0.07) in compile mode
    torch.testing.assert_close(fast.optimizer.state_dict(), plain.optimizer.state_dict(), rtol=1e-3,
                               atol=2e-3 if mode == "compile" else 1e-4)
    assert fast.scheduler.state_dict() == plain.scheduler.state_dict() and fast.ema.updates == plain.ema.updates
    for (loss, acc), (plain_loss, plain_acc) in zip(fast_results, plain_results):
        assert loss == pytest.approx(plain_loss, rel=1e-3) and acc == pytest.approx(plain_acc, abs=2 / IMAGES)


def test_the_fast_step_modes_reach_the_plain_accuracy(mnist_dir, tmp_path):
    accuracies = {}
    for mode in ("eager", "graph", "compile"):
        for seed in (1, 2):
            name = f"{mode}{seed}"
            result = cli("run", "--no-progress", "--device", "cuda", "--step-mode", mode, "--seed", seed, "--data-dir",
                         mnist_dir, "--epochs", 3, "--batch-size", 64, "--out-dir", tmp_path, "--name", name)
            assert result.exit_code == 0 and "--step-mode" not in result.output, result.output
            state = torch.load(tmp_path / name / "last.pt", weights_only=False)
            accuracies.setdefault(mode, []).append(state["history"][-1]["test_acc"])
    plain = sum(accuracies["eager"]) / 2
    for mode in ("graph", "compile"):  # 200 test images: one seed's accuracy moves by 0.5 % per image
        assert abs(sum(accuracies[mode]) / 2 - plain) <= 0.03, accuracies


def test_graph_mode_with_fp16_says_so_and_steps_eagerly(mnist_dir, tmp_path):
    result = cli("run", "--no-progress", "--device", "cuda", "--precision", "fp16", "--step-mode", "graph",
                 "--data-dir", mnist_dir, "--epochs", 1, "--batch-size", 64, "--out-dir", tmp_path, "--name", "fp16")
    assert result.exit_code == 0, result.output
    assert "--step-mode graph cannot capture fp16's gradient scaler; training steps run eagerly" in result.output
