"""A run folder as a transaction: an epoch's files land together, one writer at a time, resume checks what
it continues, and damaged files give one line. Failures are injected in the code path, not raced."""

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import openpyxl
import pytest
import torch
from click.testing import CliRunner

import trainer
from tests.mnist_fixtures import make_images, write_mnist
from tests.processes import processes
from trainer import runfolder
from trainer.cli import main
from trainer.data import FILES, write_idx
from trainer.runfolder import RunError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return str(write_mnist(tmp_path_factory.mktemp("mnist")))


def train(data, out, name, **settings):
    """A run of the smallest model (these tests are about run folders, not models)."""
    return trainer.train(data_dir=data, batch_size=64, out_dir=str(out), name=name, progress=False, echo=None,
                         **{"epochs": 2, "model": "tiny", **settings})


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def workbook_epochs(run_dir: Path) -> int:
    rows = openpyxl.load_workbook(run_dir / "training.xlsx", read_only=True)["Epochs"].iter_rows(min_row=5,
                                                                                               values_only=True)
    return sum(1 for r in rows if isinstance(r[0], int) and isinstance(r[3], float))


def csv_epochs(run_dir: Path) -> int:
    return len((run_dir / "history.csv").read_text().splitlines()) - 1


# -- the epoch commit ---------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["while writing", "after the commit point"])
def test_an_epoch_interrupted_anywhere_in_its_commit_is_seen_whole(data, tmp_path, monkeypatch, where):
    run = train(data, tmp_path, "r", scheduler="step")
    real_replace = os.replace
    moved = []

    def interrupted_while_moving(src, dst):
        if Path(src).parent.name == ".commit":
            if moved:  # one file of epoch 3 is in place, the others not
                raise KeyboardInterrupt
            moved.append(dst)
        return real_replace(src, dst)

    def interrupted_while_writing(path, rep):
        raise KeyboardInterrupt

    if where == "while writing":
        monkeypatch.setattr("trainer.report.write", interrupted_while_writing)
    else:
        monkeypatch.setattr("trainer.runfolder.os.replace", interrupted_while_moving)
    with pytest.raises(KeyboardInterrupt):
        trainer.resume(run.path, epochs=3, progress=False, echo=None)
    monkeypatch.undo()
    expected = 2 if where == "while writing" else 3
    after = trainer.load(run.path)  # a reader finishes a committed epoch before it reads
    assert after.epochs == expected == workbook_epochs(run.path) == csv_epochs(run.path)
    assert torch.load(run.path / "best.pt", weights_only=False)["epoch"] <= expected
    assert not any(p.name.startswith(".") for p in run.path.iterdir())


def test_commit_steps_leave_the_previous_or_the_new_files(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    runfolder.commit(folder, {"a.txt": lambda p: p.write_text("1"), "last.pt": lambda p: p.write_text("1")})

    def broken(p):
        raise OSError("disk full")

    with pytest.raises(OSError):  # before the commit point: the previous epoch stays
        runfolder.commit(folder, {"a.txt": lambda p: p.write_text("2"), "last.pt": broken})
    assert (folder / "a.txt").read_text() == (folder / "last.pt").read_text() == "1"
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt", "last.pt"]
    # after it: a commit whose files were not all moved is finished by the next reader or writer
    (folder / ".commit").mkdir()
    (folder / ".commit" / "a.txt").write_text("3")
    (folder / ".commit" / "last.pt").write_text("3")
    runfolder.recover(folder)
    assert (folder / "a.txt").read_text() == (folder / "last.pt").read_text() == "3"
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt", "last.pt"]


def test_a_workbook_that_cannot_be_replaced_does_not_stop_training(data, tmp_path, monkeypatch):
    real_replace = os.replace
    refused = []

    def excel_holds_it(src, dst):  # what Windows answers while Excel has the file open
        if Path(dst).name == "training.xlsx" and Path(dst).exists() and not refused:
            refused.append(dst)
            raise PermissionError(13, "Permission denied")
        return real_replace(src, dst)

    monkeypatch.setattr("trainer.runfolder.os.replace", excel_holds_it)
    lines = []
    run = trainer.train(data_dir=data, batch_size=64, out_dir=str(tmp_path), name="x", progress=False, echo=lines.append,
                        epochs=3)
    assert run.epochs == 3 and refused and workbook_epochs(run.path) == 3
    assert any("Could not replace" in line and "training goes on" in line for line in lines)


# -- one writer --------------------------------------------------------------------------------
def test_a_second_writer_is_refused_in_one_line_naming_the_first(data, tmp_path):
    folder = tmp_path / "busy"
    folder.mkdir()
    with runfolder.Lock(folder, "trainer run --name busy (test)"):
        result = cli("run", "--data-dir", data, "--out-dir", tmp_path, "--name", "busy", "--epochs", 1, "--no-progress")
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
        assert "is being written by trainer run --name busy (test)" in result.output
        with pytest.raises(RunError, match="is being written by"):
            trainer.sweep(seeds="1", out_dir=tmp_path, name="busy", data_dir=data, echo=None, progress=False)
    assert train(data, tmp_path, "busy", epochs=1).epochs == 1  # free once the holder is gone


def test_a_killed_holder_leaves_no_lock_behind(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from trainer import runfolder; "
                               f"runfolder.Lock(__import__('pathlib').Path({str(tmp_path)!r})).__enter__(); "
                               "print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunError):
        runfolder.Lock(tmp_path).__enter__()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with runfolder.Lock(tmp_path):
        pass


def test_runs_without_a_name_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    monkeypatch.setattr("trainer.runfolder.timestamp", lambda: "20260101-120000")
    from trainer.runfolder import RunFolder

    assert [RunFolder.create(tmp_path, None).path.name for _ in range(3)] == ["20260101-120000", "20260101-120000-2",
                                                                           "20260101-120000-3"]


@pytest.mark.parametrize("name", ["../escape", "/tmp/abs", "a/../../b"])
def test_a_run_name_stays_inside_the_output_folder(data, tmp_path, name):
    result = cli("run", "--data-dir", data, "--out-dir", tmp_path / "runs", "--name", name, "--no-progress")
    assert result.exit_code == 1 and "must stay inside" in result.output
    assert not (tmp_path / "escape").exists()


def test_killing_a_sweep_stops_its_runs(data, tmp_path):
    sweep = subprocess.Popen([sys.executable, "-m", "trainer", "sweep", "--seeds", "1-2", "--jobs", "2", "--epochs",
                              "50", "--batch-size", "64", "--data-dir", data, "--out-dir", str(tmp_path),
                              "--name", "s", "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def runs() -> list[int]:  # the sweep's workers, each started from its run folder
        return processes(f"trainer.worker {tmp_path / 's'}/seed")

    deadline = time.monotonic() + 60
    while len(runs()) < 2:
        assert time.monotonic() < deadline and sweep.poll() is None
        time.sleep(0.1)
    sweep.send_signal(signal.SIGKILL)
    sweep.wait()
    deadline = time.monotonic() + 30
    while runs():
        assert time.monotonic() < deadline, runs()
        time.sleep(0.1)


# -- resume checks what it continues ------------------------------------------------------------
def test_resume_refuses_other_data_of_the_same_size(data, tmp_path):
    run = train(data, tmp_path, "d", epochs=3, scheduler="step")
    other = tmp_path / "other"
    write_mnist(other)
    images, labels = make_images(320, 5)
    write_idx(other / FILES[("train", "images")], images)
    result = cli("run", "--resume", run.path, "--data-dir", other, "--epochs", 4, "--no-progress")
    assert result.exit_code == 1 and "is not the data" in result.output and "resume with the same files" in result.output


def test_resume_trusts_the_checkpoint_over_an_empty_or_edited_config(data, tmp_path):
    run = train(data, tmp_path, "c", epochs=3, scheduler="step")
    written = (run.path / "config.toml").read_text()
    assert "lr = 0.2\n" in written
    (run.path / "config.toml").write_text(written.replace("lr = 0.2\n", "lr = 0.3\n"))
    edited = cli("run", "--resume", run.path, "--epochs", 4, "--no-progress")
    assert edited.exit_code == 1 and "does not match the run in last.pt: lr = 0.3 (trained with 0.2)" in edited.output
    for edit, words in (('lr = "fast"', "lr must be a number, got 'fast'"),
                        ("colour = 1", "unknown setting 'colour'")):
        (run.path / "config.toml").write_text(written.replace("lr = 0.2\n", edit + "\n"))
        refused = cli("run", "--resume", run.path, "--epochs", 4, "--no-progress")  # refused as --config refuses it
        assert refused.exit_code == 2 and f"{run.path / 'config.toml'}: {words}" in refused.output, refused.output
        with pytest.raises(trainer.ConfigError, match=words):
            trainer.resume(run.path, epochs=4, progress=False, echo=None)
    (run.path / "config.toml").write_text("")  # a kill during a plain write once left it so
    resumed = trainer.resume(run.path, epochs=4, progress=False, echo=None)
    assert resumed.epochs == 4 and resumed.config.lr == 0.2 and "lr = 0.2" in (run.path / "config.toml").read_text()
    shorter = cli("run", "--resume", run.path, "--epochs", 2, "--no-progress")
    assert shorter.exit_code == 0 and shorter.output.strip() == \
        f"{run.path} has already trained 4 epochs, more than the 2 asked for; nothing to do"


@pytest.mark.parametrize("damage", ["truncated", "random", "no keys", "empty"])
def test_a_damaged_checkpoint_is_one_line_everywhere(data, tmp_path, damage):
    run = train(data, tmp_path, "bad", epochs=1)
    good = train(data, tmp_path, "good", epochs=1)
    last = run.path / "last.pt"
    content = {"truncated": last.read_bytes()[:500], "random": os.urandom(2000), "empty": b"",
               "no keys": None}[damage]
    if content is None:
        torch.save({"epoch": 1}, last)
    else:
        last.write_bytes(content)
    resumed = cli("run", "--resume", run.path, "--no-progress")
    assert resumed.exit_code == 1 and len(resumed.output.strip().splitlines()) == 1, resumed.output
    assert "last.pt" in resumed.output and "Traceback" not in resumed.output
    compared = cli("compare", run.path, good.path, "--out", tmp_path / "c.xlsx")
    assert compared.exit_code == 0 and f"skipped {last}" in compared.output


def test_momentum_acts_under_the_one_cycle_schedule(data, tmp_path):
    low = train(data, tmp_path, "m5", epochs=1, momentum=0.5)
    high = train(data, tmp_path, "m9", epochs=1, momentum=0.9)
    states = [torch.load(r.path / "last.pt", weights_only=False) for r in (low, high)]
    momenta = [s["optimizer"]["param_groups"][0]["momentum"] for s in states]
    assert 0.45 <= momenta[0] <= 0.55 and 0.85 <= momenta[1] <= 0.95
    assert states[0]["history"][0]["train_loss"] != states[1]["history"][0]["train_loss"]
    assert low.config.momentum == 0.5 and high.config.momentum == 0.9


def test_an_interrupted_first_epoch_starts_again_with_the_same_command(data, tmp_path, monkeypatch):
    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("trainer.session.train_epoch", stop)
    args = ["run", "--data-dir", data, "--out-dir", tmp_path, "--name", "early", "--epochs", 1, "--batch-size", 64,
            "--no-progress"]
    stopped = cli(*args)
    assert stopped.exit_code == 130 and "before its first epoch ended; nothing was kept" in stopped.output
    monkeypatch.undo()
    again = cli(*args)
    assert again.exit_code == 0, again.output


def no_space(monkeypatch) -> None:
    """Make writing a checkpoint fail as on a full disk (torch.save itself once said so in its C++ words)."""
    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("trainer.checkpoint._write_file", full)


def test_a_full_disk_is_one_line_and_keeps_the_last_epoch(data, tmp_path, monkeypatch):
    run = train(data, tmp_path, "full", epochs=2, scheduler="step")
    no_space(monkeypatch)
    result = cli("run", "--resume", run.path, "--epochs", 3, "--no-progress")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.strip().splitlines()[-1].startswith(f"Error: cannot write epoch 3 in {run.path} (No space "
                                                             "left on device); epoch 2, the last complete one, is kept")
    assert trainer.load(run.path).epochs == 2 == workbook_epochs(run.path)
    assert not any(p.name.startswith(".") for p in run.path.iterdir())


def test_a_full_disk_in_the_first_epoch_says_nothing_was_kept(data, tmp_path, monkeypatch):
    no_space(monkeypatch)
    result = cli("run", "--data-dir", data, "--out-dir", tmp_path / "runs", "--name", "first", "--epochs", 1,
                 "--batch-size", 64, "--no-progress")
    assert result.exit_code == 1, result.output
    assert "cannot write epoch 1 in" in result.output and "(No space left on device); nothing was kept" in \
        result.output and "is kept" not in result.output and "enforce fail" not in result.output
    assert not (tmp_path / "runs").exists()


def test_images_of_another_size_are_one_line(tmp_path):
    small = write_mnist(tmp_path / "small")
    images, _ = make_images(320, 0)
    write_idx(small / FILES[("train", "images")], images[:, :14, :14])
    result = cli("run", "--data-dir", small, "--out-dir", tmp_path / "runs", "--name", "s", "--no-progress")
    assert result.exit_code == 1 and "14×14 pixels; MNIST's are 28×28" in result.output
    assert not (tmp_path / "runs" / "s").exists()  # a failed start leaves no folder behind


def _immutable(path: Path, on: bool) -> bool:
    return subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True).returncode == 0


def test_resuming_in_a_folder_that_cannot_be_written_is_one_line_and_changes_nothing(data, tmp_path):
    run = train(data, tmp_path, "ro", epochs=1, scheduler="step")
    before = {p.name: p.read_bytes() for p in run.path.iterdir()}
    if os.geteuid() == 0:  # root writes through permissions; an immutable folder stops it too
        if not _immutable(run.path, True):
            pytest.skip("chattr +i is not permitted here")
    else:
        run.path.chmod(0o555)
    try:
        result = cli("run", "--resume", run.path, "--epochs", 2, "--no-progress")
    finally:
        _immutable(run.path, False) if os.geteuid() == 0 else run.path.chmod(0o755)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert "cannot write in" in result.output and "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in run.path.iterdir()} == before


# -- the checkpoint's format ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def one_epoch(data, tmp_path_factory) -> Path:
    """A finished one-epoch run (copy it before changing it)."""
    return train(data, tmp_path_factory.mktemp("runs"), "one", epochs=1).path


@pytest.mark.parametrize("key, value, words", [
    ("history", [], "its history is not one record per epoch 1..1"),
    ("generator", torch.zeros(3), "'generator' is not a CPU generator's state"),
    ("rng", {"cuda": torch.zeros(3, dtype=torch.uint8)}, "'rng' is not RNG states"),
    ("optimizer", {"state": {}}, "'optimizer' is not an optimizer's"),
    ("best", 7.0, "'best' is not from 0 to 1"),
    ("epoch", 0, "'epoch' is not at least 1"),
    ("model", {"weight": 1.0}, "'model' is not weights"),
    ("trained model", None, "no 'trained model'"),
    ("config", {"lr": -1.0}, "its settings cannot be used (lr must be above 0 and at most 10, got -1.0)"),
    ("version", 3, "written by a newer trainer (format 3; this one reads up to 2); update trainer"),
])
def test_every_key_of_a_checkpoint_is_checked_when_it_is_read(one_epoch, tmp_path, key, value, words):
    run = trainer.load(shutil.copytree(one_epoch, tmp_path / "k"))
    state = torch.load(run.path / "last.pt", weights_only=True)
    if value is None:
        del state[key]
    else:
        state[key] = value
    torch.save(state, run.path / "last.pt")
    with pytest.raises(RunError) as refused:
        trainer.resume(run.path, progress=False, echo=None)
    assert str(refused.value) in (f"{run.path / 'last.pt'}: {words}",
                                  f"{run.path / 'last.pt'}: not a trainer checkpoint ({words})")


def test_a_version_1_checkpoint_of_adam_continues_as_adamw_exactly(data, tmp_path, monkeypatch):
    """Version 1 called AdamW `adam` and kept its β₁ in `momentum`; such a run continues as it was trained."""
    settings = {"optimizer": "adamw", "beta1": 0.8, "lr": 0.01, "scheduler": "step", "epochs": 2}
    whole = train(data, tmp_path, "whole", **settings)
    from tests.interrupt import stop_at_epoch

    stop_at_epoch(monkeypatch, 2)
    with pytest.raises(trainer.Interrupted):
        train(data, tmp_path, "old", **settings)
    monkeypatch.undo()
    old = tmp_path / "old"
    state = torch.load(old / "last.pt", weights_only=True)  # written as version 1 wrote it
    config = {k: v for k, v in state["config"].items() if k not in ("beta1", "beta2")}
    state.update(version=1, config={**config, "optimizer": "adam", "momentum": 0.8})
    torch.save(state, old / "last.pt")
    text = (old / "config.toml").read_text()
    (old / "config.toml").write_text("\n".join(line for line in text.splitlines() if not line.startswith("beta"))
                                     .replace('optimizer = "adamw"', 'optimizer = "adam"')
                                     .replace("momentum = 0.9", "momentum = 0.8"))
    resumed = trainer.resume(old, progress=False, echo=None)
    assert resumed.config.optimizer == "adamw" and resumed.config.beta1 == 0.8
    a, b = (torch.load(r.path / "last.pt", weights_only=True) for r in (whole, resumed))
    torch.testing.assert_close(a["model"], b["model"], rtol=0, atol=0)
