"""`trainer sweep` and `trainer compare` on generated data: runs, resumption, formulas, charts, counts."""

import os
import signal
import subprocess
import sys
import time

import openpyxl
import pytest
from click.testing import CliRunner

import trainer
from sheetprop import recalc
from tests.mnist_fixtures import write_mnist
from tests.xlsx import (
    assert_gnumeric_matches_cache,
    assert_recalculation_matches_cache,
    chart_sheets,
    charts,
)
from trainer.cli import main
from trainer.comparison import write
from trainer.run import read_run
from trainer.runfolder import RunFolder

GRID = ["--seeds", "1,2", "--set", "lr=0.05,0.1", "--epochs", "3", "--batch-size", "64", "--jobs", "2",
        "--model", "tiny", "--no-progress", "--name", "grid"]  # the smallest model: these tests are about sweeps
RUN_NAMES = ["lr=0.05-seed1", "lr=0.05-seed2", "lr=0.1-seed1", "lr=0.1-seed2"]


def sweep_command(data, out, *extra):
    return [sys.executable, "-m", "trainer", "sweep", *GRID, "--data-dir", str(data), "--out-dir", str(out), *extra]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A 2 × 2 sweep interrupted in its first runs, then run again to the end: (folder, both outputs)."""
    data = write_mnist(tmp_path_factory.mktemp("mnist"), n_train=2000, n_test=200, gz=True)
    out = tmp_path_factory.mktemp("sweeps")
    # started as a script's `cmd &` or nohup starts it (SIGINT ignored, and so in its runs), then stopped with kill
    first = subprocess.Popen(sweep_command(data, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.monotonic() + 120
    while not any(0 < RunFolder(out / "grid" / name).progress() < 3 for name in RUN_NAMES):  # a checkpoint mid-run
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()[0]
        time.sleep(0.05)
    first.send_signal(signal.SIGTERM)
    interrupted = first.communicate(timeout=120)[0]
    assert first.returncode == 130, interrupted
    again = subprocess.run(sweep_command(data, out), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    return out / "grid", interrupted, again.stdout


def test_an_interrupted_sweep_keeps_its_runs_and_resumes_them(swept):
    folder, interrupted, again = swept
    assert "run the same command again to continue" in interrupted
    assert sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) == RUN_NAMES
    assert all(RunFolder(folder / name).epochs_done() == 3 for name in RUN_NAMES)
    resumed = [name for name in RUN_NAMES if "Resuming" in (folder / name / "log.txt").read_text()]
    assert resumed and f"started {resumed[0]} (resuming)" in again
    history = read_run(folder / resumed[0]).history
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_a_sweep_ends_with_the_comparison_table(swept):
    folder, _, again = swept
    rows = [line for line in again.splitlines() if line.startswith("| lr=")]
    assert [row.split(" | ")[0].strip("| ") for row in rows] == RUN_NAMES
    assert sum(line.startswith(("lr=0.05: 2 runs", "lr=0.1: 2 runs")) for line in again.splitlines()) == 2
    assert (folder / "compare.xlsx").is_file() and f"Wrote {folder / 'compare.xlsx'}" in again


def test_running_a_finished_sweep_again_runs_nothing(swept):
    folder, _, _ = swept
    before = {name: (folder / name / "last.pt").stat().st_mtime_ns for name in RUN_NAMES}
    result = CliRunner().invoke(main, ["sweep", *GRID, "--data-dir", "unused", "--out-dir", str(folder.parent)])
    assert result.exit_code == 0, result.output
    assert "4 runs (4 already done)" in result.output and "started" not in result.output
    assert before == {name: (folder / name / "last.pt").stat().st_mtime_ns for name in RUN_NAMES}


def test_a_sweep_refuses_a_folder_that_holds_other_runs(swept):
    folder, _, _ = swept
    args = [a if a != "0.05,0.1" else "0.05,0.2" for a in GRID]
    result = CliRunner().invoke(main, ["sweep", *args, "--epochs", "2", "--out-dir", str(folder.parent)])
    assert result.exit_code == 1 and "holds a run with epochs=3" in result.output and "--name" in result.output


@pytest.mark.parametrize("args, words", [
    (["--seeds", "3-1"], "not a list of seeds"),
    (["--set", "colour=red"], "must be KEY=V1,V2 with KEY one of"),
    (["--set", "lr=0.1,-2"], "-2"),
    (["--set", "model=tiny,resnet"], "resnet"),
    (["--seed", "3"], "takes its seeds from --seeds"),
])
def test_bad_sweep_options_are_usage_errors(tmp_path, args, words):
    result = CliRunner().invoke(main, ["sweep", *args, "--out-dir", str(tmp_path)])
    assert result.exit_code == 2 and words in result.output and list(tmp_path.iterdir()) == []


@pytest.mark.libreoffice
def test_compare_formulas_recalculate_in_libreoffice(soffice, swept, tmp_path):
    book = swept[0] / "compare.xlsx"
    assert assert_recalculation_matches_cache(book, recalc.recalculate(book, tmp_path / "out"), floor=1e-12) > 30


def test_compare_charts_draw_every_run_from_the_curves_sheet(swept):
    found = {c["title"]: c["series"] for c in charts(swept[0] / "compare.xlsx")}
    accuracy = found["Test accuracy of every run"]
    assert len(accuracy) == len(RUN_NAMES) + 1  # a series per run, and the target line
    assert all(s["x"] == "Curves!$A$4:$A$6" for s in accuracy)
    assert [s["y"] for s in accuracy] == [f"Curves!${c}$4:${c}$6" for c in "BCDEF"]  # runs, then the target
    assert len(found["Test loss of every run"]) == len(RUN_NAMES)
    assert len(found["Mean test accuracy per configuration"]) == 2 + 1


@pytest.mark.libreoffice
def test_the_summary_counts_a_run_that_misses_the_target(soffice, swept, tmp_path):
    runs = [read_run(swept[0] / name) for name in RUN_NAMES]
    lows = sorted({min(r.last_three) for r in runs})  # distinct; two runs may tie on 200 test images
    target = (lows[0] + lows[1]) / 2 if len(lows) > 1 else lows[0] + 0.25  # the lowest run (or tied runs) miss
    misses = sum(min(r.last_three) < target for r in runs)
    book = write(runs, tmp_path / "c.xlsx", target)
    expected = {}
    for r in runs:
        config = f"lr={r.settings['lr']:g}"
        expected[config] = expected.get(config, 0) + (min(r.last_three) >= target)
    fresh = openpyxl.load_workbook(recalc.recalculate(book, tmp_path / "out"), data_only=True)["Summary"]
    held = {row[0]: row[6] for row in fresh.iter_rows(min_row=5, max_row=6, values_only=True)}
    assert held == expected and sum(held.values()) == len(runs) - misses and misses >= 1
    cached = openpyxl.load_workbook(book, data_only=True)["Summary"]
    assert {row[0]: row[6] for row in cached.iter_rows(min_row=5, max_row=6, values_only=True)} == expected


def test_compare_writes_beside_runs_that_share_a_folder(swept):
    result = CliRunner().invoke(main, ["compare", *[str(swept[0] / n) for n in RUN_NAMES[:2]], "--target", "50"])
    assert result.exit_code == 0, result.output
    assert f"Wrote {swept[0] / 'compare.xlsx'}" in result.output and "lr=0.05-seed1" in result.output


def test_compare_refuses_a_folder_that_is_not_a_run(tmp_path):
    result = CliRunner().invoke(main, ["compare", str(tmp_path)])
    assert result.exit_code == 1 and "is not a run folder" in result.output


def test_python_dash_m_trainer_runs_the_command_line():
    result = subprocess.run([sys.executable, "-m", "trainer", "--version"], capture_output=True, text=True,
                            env={**os.environ})
    assert result.returncode == 0 and "trainer" in result.stdout


def test_compare_takes_the_run_folders_among_a_sweep_folders_files(swept):
    """`trainer compare outputs/sweeps/NAME/*`, as the README gives it: the shell passes compare.xlsx too."""
    everything = sorted(str(p) for p in swept[0].iterdir() if not p.name.startswith("."))
    assert any(p.endswith("compare.xlsx") for p in everything)
    result = CliRunner().invoke(main, ["compare", *everything, "--out", str(swept[0].parent / "all.xlsx")])
    assert result.exit_code == 0, result.output
    assert "4 runs compared" in openpyxl.load_workbook(swept[0].parent / "all.xlsx")["Runs"]["A1"].value


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """A run of one epoch, trained through the Python API with settings none of the sweep's runs share."""
    data = write_mnist(tmp_path_factory.mktemp("mnist"), n_train=256, n_test=100)
    return trainer.train(data_dir=str(data), epochs=1, batch_size=64, lr=0.07, name="short", progress=False,
                         echo=None, out_dir=str(tmp_path_factory.mktemp("runs")))


@pytest.mark.libreoffice
def test_compare_of_runs_of_different_lengths_shows_every_run_and_no_error(soffice, ssconvert, swept, short_run,
                                                                         tmp_path):
    book = tmp_path / "mixed.xlsx"
    compared = trainer.compare([short_run.path, *[swept[0] / name for name in RUN_NAMES]], out=book)
    assert [r.epochs for r in compared.runs] == [1, 3, 3, 3, 3]
    assert assert_recalculation_matches_cache(book, recalc.recalculate(book, tmp_path / "out"), floor=1e-12) > 30
    assert assert_gnumeric_matches_cache(book, ssconvert, tmp_path / "gnumeric", floor=1e-12) > 30
    shown = {c["title"]: c["series"] for c in charts(book)}
    for title, name in (("Test accuracy of every run", "short"), ("Test loss of every run", "short"),
                        ("Mean test accuracy per configuration", "epochs=1")):
        ones = [s for s in shown[title] if name in s["name"]]
        assert len(ones) == 1 and ones[0]["marker"] not in (None, "none"), shown[title]  # a dot, not an empty line
    assert len(chart_sheets(book)["Summary"]) == 3
    table = compared.table()
    assert "1 run, last-three test accuracy" in table and "mean ± std of 1)" in table and "1 runs" not in table
    assert openpyxl.load_workbook(book)["Runs"]["A1"].value == "5 runs compared"


def test_a_sweep_gives_its_runs_the_threads_asked_for(tmp_path):
    data = write_mnist(tmp_path / "mnist", n_train=256, n_test=100)
    result = CliRunner().invoke(main, ["sweep", "--seeds", "1", "--jobs", "1", "--threads", "1", "--epochs", "1",
                                       "--batch-size", "64", "--model", "tiny", "--data-dir", str(data), "--out-dir",
                                       str(tmp_path / "sweeps"), "--name", "t", "--no-progress"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "sweeps" / "t" / "seed1"
    assert "on cpu (1 thread)" in (run / "log.txt").read_text()  # not the cores split between jobs: 2 here
    assert read_run(run).config.threads == 1
