"""Precision as a setting (fp32, bf16 and fp16 autocast, honoured on the CPU too) and test-time
augmentation as a fixed evaluation rule, checked against a hand-written evaluation."""

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from sheetprop.wording import plural
from tests.interrupt import stop_at_epoch
from tests.mnist_fixtures import write_mnist
from trainer import loop
from trainer.cli import main
from trainer.data import Split
from trainer.device import resolve


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    return write_mnist(tmp_path_factory.mktemp("mnist"), gz=True)


def run(*args):
    return CliRunner().invoke(main, ["run", "--no-progress", *map(str, args)])


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_reduced_precision_run_computes_in_it_and_resumes_exactly(mnist_dir, tmp_path, monkeypatch, precision):
    seen = []
    real_forward = torch.nn.Conv2d.forward
    monkeypatch.setattr(torch.nn.Conv2d, "forward", lambda self, x: seen.append(real_forward(self, x).dtype)
                        or real_forward(self, x))
    common = ["--data-dir", mnist_dir, "--epochs", 2, "--batch-size", 64, "--out-dir", tmp_path, "--scheduler",
              "step", "--precision", precision, "--model", "tiny"]
    whole = run(*common, "--name", "whole")
    assert whole.exit_code == 0, whole.output
    assert f"cpu ({plural(torch.get_num_threads(), 'thread')}), {precision}" in whole.output
    reduced = getattr(torch, {"bf16": "bfloat16", "fp16": "float16"}[precision])
    assert seen.count(reduced) > 10 * seen.count(torch.float32)  # fp32 only in the model summary's one pass
    monkeypatch.undo()
    stop_at_epoch(monkeypatch, 2)
    assert run(*common, "--name", "cut").exit_code == 130
    monkeypatch.undo()
    assert run("--resume", tmp_path / "cut").exit_code == 0
    a, b = (torch.load(tmp_path / n / "last.pt", weights_only=False) for n in ("whole", "cut"))
    assert a["config"]["precision"] == precision and ("scaler" in a) == (precision == "fp16")
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name


def test_an_unknown_precision_is_one_line(mnist_dir, tmp_path):
    result = run("--data-dir", mnist_dir, "--out-dir", tmp_path, "--precision", "fp8")
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "--precision" in result.output


def test_a_one_pixel_shift_moves_the_image_and_fills_with_the_background():
    x = torch.zeros(3, 1, 28, 28)
    x[:, :, 5:20, 6:22] = torch.rand(3, 1, 15, 16)  # a digit on a background of zeros, away from the edge
    for rows, cols in loop.SHIFTS:
        assert torch.equal(loop.shifted(x, rows, cols), torch.roll(x, (rows, cols), dims=(2, 3)))


def test_test_time_augmentation_averages_the_softmax_over_the_shifts_by_hand():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 10))
    images = torch.zeros(50, 1, 28, 28)
    images[:, :, 4:24, 4:24] = torch.randn(50, 1, 20, 20)
    labels = torch.randint(0, 10, (50,))
    ev = loop.evaluate(model, Split(images, labels), resolve("cpu"), batch_size=16, tta=True)
    with torch.no_grad():
        views = [model(torch.roll(images, s, dims=(2, 3))).softmax(1) for s in loop.SHIFTS]
        probs = torch.stack(views).mean(0)
        plain = model(images)
    assert ev.correct == int((probs.argmax(1) == labels).sum())
    assert ev.single_view_correct == int((plain.argmax(1) == labels).sum())
    assert ev.loss == pytest.approx(float(F.nll_loss(probs.log(), labels)), rel=1e-5)
    assert ev.predictions.tolist() == probs.argmax(1).tolist()


def test_a_run_with_test_time_augmentation_records_both_accuracies(mnist_dir, tmp_path):
    result = run("--data-dir", mnist_dir, "--epochs", 1, "--batch-size", 64, "--out-dir", tmp_path, "--name", "t",
                 "--tta", "true")
    assert result.exit_code == 0, result.output
    state = torch.load(tmp_path / "t" / "last.pt", weights_only=False)
    record = state["history"][0]
    assert state["config"]["tta"] is True and 0 <= record["test_acc_single_view"] <= 1
    assert record["test_acc"] == record["test_correct"] / 120
