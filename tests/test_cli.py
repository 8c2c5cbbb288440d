import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from sheetprop import __version__
from sheetprop.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_clean_failure(result, code, words):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and (result.exception is None or isinstance(result.exception, SystemExit))
    assert words.lower() in result.output.lower(), result.output


def test_build_takes_several_learning_rates_after_one_option(tmp_path):
    out = tmp_path / "b.xlsx"
    result = run("build", "--lr", "0.1", "0.2", "0.5", "0.8", "1", "2", "--out", out)
    assert result.exit_code == 0, result.output
    assert f"Wrote {out}" in result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["0.1", "0.2", "0.5", "0.8", "1", "2"]
    assert lines[-1].split() == ["2", "0.242519857", "0.005160109", "59"]
    assert lines[2].split()[-1] == "never"


def test_learning_rate_option_as_the_last_word_needs_a_value(tmp_path):
    assert_clean_failure(run("build", "--out", tmp_path / "b.xlsx", "--lr"), 2, "requires an argument")


def test_options_after_the_learning_rates_still_parse(tmp_path):
    result = run("build", "--lr", "0.5", "1", "--iterations", "7", "--out", tmp_path / "b.xlsx")
    assert result.exit_code == 0, result.output
    assert "2 learning rates × 7 iterations" in result.output


def test_version_and_help():
    assert run("--version").output.strip().endswith(__version__)
    help_text = run("build", "--help").output
    assert "--lr" in help_text and "--iterations" in help_text and "--force" in help_text


@pytest.mark.parametrize("lrs, words", [
    (["abc"], "learning rate 'abc' is not a number"),
    (["0"], "must be a finite positive number"),
    (["-0.5"], "must be a finite positive number"),
    (["nan"], "must be a finite positive number"),
    (["inf"], "must be a finite positive number"),
    (["0.5", "0.5"], "repeated learning rate 0.5"),
    ([], "requires at least one value"),
])
def test_bad_learning_rates_are_usage_errors(tmp_path, lrs, words):
    out = tmp_path / "b.xlsx"
    result = run("build", "--lr", *lrs, "--out", out)
    assert_clean_failure(result, 2, words)
    assert not out.exists()


@pytest.mark.parametrize("n", ["0", "-3", "1048571", "ten"])
def test_bad_iteration_counts_are_usage_errors(tmp_path, n):
    result = run("build", "--iterations", n, "--out", tmp_path / "b.xlsx")
    assert result.exit_code == 2 and "--iterations" in result.output
    assert result.output.count("\n") == 1 and "build --help" in result.output  # one line, not the usage
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["build", "--bogus"], ["bild"], ["build", "--lr"]])
def test_every_usage_error_is_one_line(args):
    result = run(*args)
    assert result.exit_code == 2 and result.output.count("\n") == 1 and result.output.startswith("Error: ")


def test_missing_output_folder(tmp_path):
    result = run("build", "--out", tmp_path / "nope" / "b.xlsx")
    assert_clean_failure(result, 1, "does not exist")


def test_output_inside_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    assert_clean_failure(run("build", "--out", tmp_path / "f" / "b.xlsx"), 1, "does not exist")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_output_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert_clean_failure(run("build", "--out", ro / "b.xlsx"), 1, "cannot write")
    finally:
        ro.chmod(0o755)


def test_read_only_file_system_is_refused():
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    assert_clean_failure(run("build", "--out", "/proc/self/b.xlsx"), 1, "cannot write")


def test_existing_file_needs_force(tmp_path):
    out = tmp_path / "b.xlsx"
    out.write_bytes(b"precious")
    assert_clean_failure(run("build", "--out", out), 1, "--force")
    assert out.read_bytes() == b"precious"
    assert run("build", "--out", out, "--force").exit_code == 0
    assert out.read_bytes()[:2] == b"PK"


def test_unknown_template(tmp_path):
    assert_clean_failure(run("build", "--template", "nosuch", "--out", tmp_path / "b.xlsx"), 1, "unknown template")


@pytest.mark.parametrize("text, words", [
    ("name = ", "not valid toml"),
    ('name = "x"\nloss = "l2"\n[sample]\ninputs = [1]\ntargets = [1]\n', "missing field 'layers'"),
    ('name = "x"\nloss = "hinge"\n', "field 'loss' must be one of"),
    ('name = "x"\nloss = "l2"\n[sample]\ninputs = [1, 2]\ntargets = [1]\n[[layers]]\nsize = 1\n'
     'activation = "sigmoid"\nweights = [[1]]\n', "field 'weights' must be a list of 2 finite numbers"),
    ('name = "x"\nloss = "l2"\n[sample]\ninputs = [1]\ntargets = [1]\n[[layers]]\nsize = 1\n'
     'activation = "swish"\nweights = [[1]]\n', "field 'activation' must be one of"),
    ('name = "x"\nloss = "l2"\n[sample]\ninputs = [1]\ntargets = []\n[[layers]]\nsize = 0\n'
     'activation = "sigmoid"\nweights = []\n', "field 'size' must be a positive integer"),
])
def test_malformed_template_names_file_and_field(tmp_path, text, words):
    path = tmp_path / "net.toml"
    path.write_text(text)
    result = run("build", "--template", path, "--out", tmp_path / "b.xlsx")
    assert_clean_failure(result, 1, words)
    assert str(path) in result.output and not (tmp_path / "b.xlsx").exists()
    assert len(result.output.strip().splitlines()) == 1




def test_build_another_template_with_its_own_learning_rates(tmp_path):
    out = tmp_path / "x.xlsx"
    result = run("build", "--template", "xor", "--lr", "0.5", "1", "2", "--iterations", "50", "--out", out)
    assert result.exit_code == 0, result.output
    assert "xor: 3 learning rates × 50 iterations" in result.output and out.exists()


def test_templates_lists_every_shipped_template():
    out = run("templates").output
    for name, sizes in (("classic", "2-2-2"), ("mazur", "2-2-2"), ("xor", "2-2-1"), ("deep", "3-4-4-2")):
        assert any(line.split()[:2] == [name, sizes] for line in out.splitlines()), out


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 1)])
def test_an_interrupted_build_leaves_no_file_behind(tmp_path, sig, code):
    out, scratch = tmp_path / "b.xlsx", tmp_path / "scratch"
    scratch.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "sheetprop", "build", "--iterations", "30000", "--out", str(out)],
                            env={**os.environ, "TMPDIR": str(scratch)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".b.*.xlsx.tmp")):  # the workbook is being written
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert b"Traceback" not in err
    assert list(tmp_path.iterdir()) == [scratch] and list(scratch.iterdir()) == []


def test_a_workbook_that_cannot_be_replaced_is_one_line(tmp_path, monkeypatch):
    out = tmp_path / "b.xlsx"
    assert run("build", "--iterations", "2", "--out", out).exit_code == 0

    def locked(src, dst):  # Windows, while Excel has the file open; chattr +i elsewhere
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("sheetprop.book.os.replace", locked)
    result = run("build", "--iterations", "2", "--out", out, "--force")
    assert_clean_failure(result, 1, "cannot write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.xlsx"]  # no temporary file left
