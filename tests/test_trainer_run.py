"""End-to-end runs on a few hundred generated images (CPU, a few seconds each)."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest
import torch
from click.testing import CliRunner

from tests.interrupt import stop_at_epoch
from tests.mnist_fixtures import write_mnist
from tests.xlsx import chart_sheets, charts
from trainer import loop
from trainer.cli import main


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    return write_mnist(tmp_path_factory.mktemp("mnist"), gz=True)


def run(*args):
    return CliRunner().invoke(main, ["run", "--no-progress", *map(str, args)])


@pytest.fixture(scope="module")
def one_epoch(mnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    result = run("--data-dir", mnist_dir, "--epochs", 1, "--batch-size", 64, "--out-dir", out, "--name", "r1")
    assert result.exit_code == 0, result.output
    return out / "r1", result.output


def test_one_epoch_run_writes_checkpoints_config_and_workbook(one_epoch):
    run_dir, output = one_epoch
    assert {p.name for p in run_dir.iterdir()} == {"training.xlsx", "history.csv", "last.pt", "best.pt", "config.toml"}
    assert "Epoch 1: train loss" in output and "(" in output and "/120) | lr" in output
    state = torch.load(run_dir / "last.pt", weights_only=False)
    assert state["epoch"] == 1 and len(state["history"]) == 1


def test_the_epoch_history_is_also_a_csv_file_with_the_checkpoints_values(one_epoch):
    run_dir, _ = one_epoch
    with open(run_dir / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    saved = torch.load(run_dir / "last.pt", weights_only=False)["history"]
    assert list(rows[0]) == ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "test_correct",
                             "seconds"]
    assert len(rows) == len(saved) == 1
    assert {k: float(v) for k, v in rows[0].items()} == {k: float(v) for k, v in saved[0].items()}
    assert int(rows[0]["test_correct"]) == round(float(rows[0]["test_acc"]) * 120)


def test_workbook_has_five_sheets_charts_and_pictures(one_epoch):
    book = one_epoch[0] / "training.xlsx"
    wb = openpyxl.load_workbook(book)
    assert wb.sheetnames == ["Epochs", "Model", "Confusion", "Misclassified", "Config"]
    epochs = list(wb["Epochs"].iter_rows(min_row=5, max_row=5, values_only=True))[0]
    assert epochs[0] == 1 and 0 <= epochs[3] <= 1
    assert len(wb["Misclassified"]._images) >= 25
    assert len(chart_sheets(book)["Epochs"]) == 4
    titles = {c["title"] for c in charts(book)}
    assert {"Training loss", "Training accuracy", "Test loss", "Test accuracy"} <= titles
    confusion = openpyxl.load_workbook(book, data_only=True)["Confusion"]
    counts = [[confusion.cell(5 + t, 3 + p).value for p in range(10)] for t in range(10)]
    assert sum(map(sum, counts)) == 120
    config = {r[0]: r[1] for r in wb["Config"].iter_rows(min_row=4, values_only=True) if r[0]}
    assert config["seed"] == 1 and config["model"] == "wide" and "torch" in config
    model_rows = [r for r in wb["Model"].iter_rows(min_row=4, values_only=True) if r[0]]
    assert model_rows[0][1] == "Conv2d" and model_rows[0][4] == 3


def test_existing_run_folder_needs_resume_or_force(one_epoch, mnist_dir):
    run_dir, _ = one_epoch
    result = run("--data-dir", mnist_dir, "--out-dir", run_dir.parent, "--name", run_dir.name)
    assert result.exit_code == 1 and "--resume" in result.output and "--force" in result.output


def test_interrupted_run_resumes_where_it_stopped_and_matches_an_uninterrupted_one(mnist_dir, tmp_path, monkeypatch):
    # on the CPU: a GPU's TF32 and cuDNN autotuning make two runs of one seed part (README, "On a GPU")
    common = ["--data-dir", mnist_dir, "--epochs", 3, "--batch-size", 64, "--out-dir", tmp_path, "--device", "cpu"]
    assert run(*common, "--name", "whole").exit_code == 0

    stop_at_epoch(monkeypatch, 3)
    stopped = run(*common, "--name", "cut")
    assert stopped.exit_code == 130 and "--resume" in stopped.output
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["epoch"] == 2
    assert openpyxl.load_workbook(tmp_path / "cut" / "training.xlsx").sheetnames[0] == "Epochs"
    monkeypatch.undo()

    resumed = run("--resume", tmp_path / "cut")
    assert resumed.exit_code == 0, resumed.output
    assert "Resuming" in resumed.output and "Epoch 3:" in resumed.output and "Epoch 1:" not in resumed.output
    whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=False)
    cut = torch.load(tmp_path / "cut" / "last.pt", weights_only=False)
    assert [h["epoch"] for h in cut["history"]] == [1, 2, 3]
    for key, value in whole["model"].items():
        assert torch.equal(value, cut["model"][key]), key


def test_nan_loss_stops_with_epoch_and_batch(mnist_dir, tmp_path, monkeypatch):
    real = torch.nn.functional.cross_entropy
    calls = {"n": 0}

    def poisoned(logits, y, **kw):
        calls["n"] += 1
        loss = real(logits, y, **kw)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(loop.F, "cross_entropy", poisoned)
    result = run("--data-dir", mnist_dir, "--epochs", 1, "--batch-size", 64, "--out-dir", tmp_path, "--name", "nan")
    assert result.exit_code == 1
    assert "NaN or infinite in epoch 1, batch 3" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("args, code, words", [
    (["--epochs", 0], 2, "--epochs"),
    (["--lr", -0.1], 2, "--lr"),
    (["--model", "resnet"], 2, "--model"),
    (["--device", "tpu"], 2, "--device"),
    (["--optimizer", "lion"], 2, "--optimizer"),
])
def test_bad_options_are_usage_errors(mnist_dir, tmp_path, args, code, words):
    result = run("--data-dir", mnist_dir, "--out-dir", tmp_path, *args)
    assert result.exit_code == code and words in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_asked_for_without_one(mnist_dir, tmp_path):
    result = run("--data-dir", mnist_dir, "--out-dir", tmp_path, "--device", "cuda", "--name", "c")
    assert result.exit_code == 1 and "no CUDA device" in result.output


def test_missing_data_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr("trainer.data._download", lambda folder: (_ for _ in ()).throw(OSError("offline")))
    result = run("--data-dir", tmp_path / "nothing" / "mnist", "--out-dir", tmp_path / "outputs" / "runs",
                 "--name", "m")
    assert result.exit_code == 1 and "put train-images-idx3-ubyte.gz" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # neither the run's folders nor the data's are left behind


def test_corrupt_data_names_the_file(tmp_path):
    folder = write_mnist(tmp_path / "d")
    (folder / "t10k-images-idx3-ubyte").write_bytes(b"garbage")
    result = run("--data-dir", folder, "--out-dir", tmp_path / "runs", "--name", "x")
    assert result.exit_code == 1 and "t10k-images-idx3-ubyte" in result.output


def test_run_template_is_read_and_overridden(mnist_dir, tmp_path):
    template = tmp_path / "run.toml"
    template.write_text('epochs = 1\nbatch_size = 100\nscheduler = "step"\nseed = 4\n')
    result = run("--config", template, "--seed", 5, "--data-dir", mnist_dir, "--out-dir", tmp_path / "runs",
                 "--name", "t")
    assert result.exit_code == 0, result.output
    saved = (tmp_path / "runs" / "t" / "config.toml").read_text()
    assert 'scheduler = "step"' in saved and "seed = 5" in saved and "batch_size = 100" in saved


def test_malformed_run_template(tmp_path):
    template = tmp_path / "run.toml"
    template.write_text('epochs = "many"\n')
    result = run("--config", template, "--out-dir", tmp_path / "runs")
    assert result.exit_code == 2 and f"{template}: epochs must be a whole number, got 'many'" in result.output


@pytest.mark.parametrize("key, value", [("seed", 2**32), ("momentum", 5), ("optimizer", "lion"), ("lr", -0.1)])
def test_a_bad_setting_reads_the_same_from_the_command_line_and_from_a_file(tmp_path, key, value):
    template = tmp_path / "run.toml"
    template.write_text(f"{key} = {value!r}\n".replace("'", '"'))
    from_file = run("--config", template, "--out-dir", tmp_path / "runs")
    from_option = run(f"--{key}", value, "--out-dir", tmp_path / "runs")
    for result in (from_file, from_option):
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
        assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    why = from_file.output.split(f"{template}: ")[1].split(" (see")[0]
    assert why.startswith(f"{key} must be ") and why in from_option.output
    assert not (tmp_path / "runs").exists()


def test_a_seed_beyond_32_bits_is_one_line_from_every_entry_point(tmp_path):
    import trainer

    with pytest.raises(trainer.ConfigError, match="seed must be from 0 to 4294967295, got 4294967296"):
        trainer.train(seed=2**32, out_dir=str(tmp_path))
    swept = CliRunner().invoke(main, ["sweep", "--seeds", "4294967295-4294967296", "--out-dir", tmp_path])
    assert swept.exit_code == 2 and len(swept.output.strip().splitlines()) == 1
    assert "seed must be from 0 to 4294967295, got 4294967296" in swept.output
    assert list(tmp_path.iterdir()) == []


def test_shipped_run_template_is_the_default_configuration():
    from trainer.config import RunConfig, read

    assert read("mnist") == RunConfig() == read(Path(__file__).parent.parent / "templates" / "runs" / "mnist.toml")


def test_accuracy_axis_starts_at_or_below_every_epoch():
    from trainer.report import accuracy_floor

    assert accuracy_floor([0.9575, 0.9887, 0.9949, 0.9912]) == pytest.approx(0.955)
    assert accuracy_floor([0.42]) == pytest.approx(0.42)
    assert accuracy_floor([0.1, 0.0]) == 0.0


def test_resuming_a_finished_run_says_it_is_complete(one_epoch):
    run_dir, _ = one_epoch
    before = (run_dir / "last.pt").stat().st_mtime_ns
    result = run("--resume", run_dir)
    assert result.exit_code == 0 and result.output.strip() == f"{run_dir} is complete (1 of 1 epoch); nothing to do"
    assert (run_dir / "last.pt").stat().st_mtime_ns == before


def test_resume_refuses_settings_it_cannot_change_in_one_line(one_epoch):
    result = run("--resume", one_epoch[0], "--lr", 0.3)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "accepts only --epochs, --device, --threads, --step-mode, --data-dir (got --lr)" in result.output


def test_a_checkpoint_from_a_gpu_continues_on_the_cpu_with_the_same_batches(mnist_dir, tmp_path, monkeypatch):
    """A GPU run's checkpoint holds the GPU's RNG state beside the CPU's; the data order and augmentation come from
    a generator on the CPU, so on the CPU it continues exactly as a CPU run (dropout draws from the CPU there)."""
    from trainer.checkpoint import Checkpoint

    common = ["--data-dir", mnist_dir, "--epochs", 2, "--batch-size", 64, "--out-dir", tmp_path, "--device", "cpu",
              "--scheduler", "step"]
    assert run(*common, "--name", "whole").exit_code == 0
    stop_at_epoch(monkeypatch, 2)
    assert run(*common, "--name", "moved").exit_code == 130
    monkeypatch.undo()
    state = Checkpoint.load(tmp_path / "moved" / "last.pt")
    state.rng = {**state.rng, "cuda": torch.zeros(16, dtype=torch.uint8)}  # as a CUDA run saves it
    state.save(tmp_path / "moved" / "last.pt")
    assert run("--resume", tmp_path / "moved", "--device", "cpu").exit_code == 0
    whole, moved = (Checkpoint.load(tmp_path / name / "last.pt") for name in ("whole", "moved"))
    torch.testing.assert_close(moved.model, whole.model, rtol=0, atol=0)
    assert moved.history[1]["train_loss"] == whole.history[1]["train_loss"]


def test_config_toml_reads_back_any_folder_name(tmp_path):
    from trainer.config import RunConfig, read

    cfg = RunConfig(data_dir="C:\\data\\mnist", out_dir='runs "quoted" \\ here', ema=0.999, label_smoothing=0.05)
    (tmp_path / "config.toml").write_text(cfg.to_toml())
    assert read(tmp_path / "config.toml") == cfg


def test_every_setting_is_in_the_run_template_and_the_config_sheet(one_epoch):
    import tomllib

    from trainer.config import SPECS

    fields = set(SPECS)
    shipped = tomllib.loads((Path(__file__).parent.parent / "templates" / "runs" / "mnist.toml").read_text())
    assert set(shipped) == fields
    sheet = openpyxl.load_workbook(one_epoch[0] / "training.xlsx")["Config"]
    assert fields <= {r[0] for r in sheet.iter_rows(min_row=4, values_only=True)}


def test_a_run_with_a_weight_average_resumes_exactly(mnist_dir, tmp_path, monkeypatch):
    common = ["--data-dir", mnist_dir, "--epochs", 3, "--batch-size", 64, "--out-dir", tmp_path, "--ema", 0.9,
              "--device", "cpu"]
    assert run(*common, "--name", "whole").exit_code == 0
    stop_at_epoch(monkeypatch, 3)
    assert run(*common, "--name", "cut").exit_code == 130
    monkeypatch.undo()
    assert run("--resume", tmp_path / "cut").exit_code == 0
    whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=False)
    cut = torch.load(tmp_path / "cut" / "last.pt", weights_only=False)
    assert whole["ema updates"] == cut["ema updates"] > 0
    for key in ("model", "trained model"):
        for name, value in whole[key].items():
            assert torch.equal(value, cut[key][name]), (key, name)
    assert [h["test_acc"] for h in whole["history"]] == [h["test_acc"] for h in cut["history"]]


def test_the_test_accuracy_chart_has_a_target_line(one_epoch):
    found = {c["title"]: c["series"] for c in charts(one_epoch[0] / "training.xlsx")}
    assert len(found["Test accuracy"]) == 2 and len(found["Training accuracy"]) == 1
    wb = openpyxl.load_workbook(one_epoch[0] / "training.xlsx")
    sheet, ref = next(iter(wb.defined_names["target"].destinations))
    assert wb[sheet][ref.replace("$", "")].value == 0.994


def openmp_settings(**env) -> str:
    """What the OpenMP runtime under torch reports of its settings when `trainer` starts (libgomp's display)."""
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    result = subprocess.run([sys.executable, "-m", "trainer", "models"], capture_output=True, text=True,
                            env={**clean, "OMP_DISPLAY_ENV": "VERBOSE", **env})
    assert result.returncode == 0, result.stderr
    if "GOMP_SPINCOUNT" not in result.stderr:
        pytest.skip("torch's OpenMP runtime here is not libgomp")
    return result.stderr


def test_waiting_threads_sleep_so_a_shared_machine_does_not_collapse_training():
    # spinning waits (libgomp's default: 300,000 spins) cut training 3-5x beside another process
    # (benchmarks/trainer_threads.py); trainer makes them sleep unless the user chose otherwise
    assert "GOMP_SPINCOUNT = '0'" in openmp_settings()
    assert "OMP_WAIT_POLICY = 'ACTIVE'" in openmp_settings(OMP_WAIT_POLICY="ACTIVE")


def test_a_run_whose_output_is_cut_short_keeps_training(mnist_dir, tmp_path):
    """`trainer run … | head -1`: once the reader has gone, the run trains on without printing and ends well."""
    proc = subprocess.Popen([sys.executable, "-m", "trainer", "run", "--no-progress", "--data-dir", str(mnist_dir),
                             "--epochs", "3", "--batch-size", "64", "--model", "tiny", "--scheduler", "step",
                             "--out-dir", str(tmp_path), "--name", "cut"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("Training tiny")
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, err
    assert "stdout was closed; training goes on without printing to it" in err and "Traceback" not in err
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["epoch"] == 3
