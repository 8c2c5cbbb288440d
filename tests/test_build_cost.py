"""A build's cost is known before it starts: builds no spreadsheet program could open are refused in one line
at once, long ones say what they will take and show their progress, short ones stay quiet."""

import time

import pytest
from click.testing import CliRunner

import sheetprop
from sheetprop import cost
from sheetprop.cli import main
from sheetprop.layout import TrainingLayout
from sheetprop.limits import LimitError


def test_six_optimizers_at_the_most_iterations_are_refused_at_once_in_one_line(tmp_path):
    out = tmp_path / "huge.xlsx"
    start = time.perf_counter()
    result = CliRunner().invoke(main, ["build", "--optimizer", "sgd", "momentum", "nesterov", "rmsprop", "adam",
                                       "adamw", "--iterations", str(TrainingLayout.max_iterations()), "--out", str(out)])
    assert time.perf_counter() - start < 5  # nothing was computed: about 2·10⁹ cells would take hours
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "formula cells would need about" in result.output and f"at most {cost.MAX_CELLS:,}" in result.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_the_api_refuses_the_same_build_with_the_same_words(tmp_path):
    with pytest.raises(LimitError, match="classic cannot be written: .* formula cells would need about"):
        sheetprop.build(learning_rates=[0.1, 0.2, 0.5, 0.8, 1, 2], iterations=1_000_000, out=tmp_path / "x.xlsx")


def test_a_build_within_the_limit_is_counted_exactly_before_it_starts(tmp_path):
    built = sheetprop.build(iterations=30, out=tmp_path / "c.xlsx", progress=False)
    from sheetprop.workbook import Plan
    assert Plan(built.network, tuple(built.learning_rates), 30).cost.cells == built.formula_cells
    assert built.formula_cells == 6 * 31 * 31  # classic: 31 columns of quantities, 31 rows, 6 learning rates


def test_a_long_build_says_what_it_will_take_and_shows_its_progress(tmp_path, capsys):
    sheetprop.build(iterations=50, out=tmp_path / "c.xlsx", progress=True)
    err = capsys.readouterr().err
    line = err.splitlines()[0]
    assert line.startswith(f"Writing {tmp_path / 'c.xlsx'}: 9,486 formula cells: a file of about ") and " written in about " in line
    assert "9.49k/9.49k" in err  # the bar counted every cell


def test_a_short_build_is_quiet(tmp_path, capsys):
    sheetprop.build(iterations=5, out=tmp_path / "c.xlsx")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("n, text", [(999, "999 bytes"), (25_698_655, "26 MB"), (2_604_000_000, "2.6 GB")])
def test_sizes_read_as_people_write_them(n, text):
    assert cost.size(n) == text
