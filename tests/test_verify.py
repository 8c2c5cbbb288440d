"""`sheetprop verify` judges each training row against one reference step from that row's own parameters."""

import numpy as np
import openpyxl
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings

from sheetprop import api, recalc, template
from sheetprop.cli import main
from sheetprop.layout import TrainingLayout
from sheetprop.quantities import Delta, Z
from sheetprop.readback import SavedBook
from sheetprop.reference import evaluate, train
from sheetprop.verification import FLOOR, Divergence, read_setup, verify
from tests.networks import templates
from tests.torch_oracle import torch_gradients

# 1-2-1, identity activations: with η = 10 every step multiplies the weights' growth, and the
# loss overflows at iteration 5; with η = 1 it converges.
LINEAR = {"name": "linear", "description": "1-2-1 identity", "loss": "l2", "inputs": ["x"], "targets": ["y"],
          "sample": {"inputs": [1.0], "targets": [1.0]},
          "layers": [{"size": 2, "activation": "identity", "weights": [[0.5], [0.3]]},
                     {"size": 1, "activation": "identity", "weights": [[0.5, 0.2]]}]}


def setup(book):
    """(network, learning rates, iterations, training sheets) as the written workbook holds them."""
    with SavedBook(book) as saved:
        return read_setup(saved, saved, str(book))


def edit(book, formulas: dict[tuple[str, str], str], out):
    wb = openpyxl.load_workbook(book)
    for (sheet, cell), formula in formulas.items():
        wb[sheet][cell] = formula
    wb.save(out)
    return out


@pytest.mark.parametrize("name", list(template.shipped()))
def test_one_step_at_any_parameters_matches_torch_autograd_for_every_row_at_once(name):
    net = template.load(name)
    rng = np.random.default_rng(5)
    initial = np.array([net.initial(p) for p in net.params])
    rows = initial + rng.normal(0, 0.5, (4, len(initial)))
    step = evaluate(net, rows)
    for r in range(4):
        loss, grads = torch_gradients(net, rows[r])
        assert abs(step.total[r] - loss) < 1e-12
        np.testing.assert_allclose(step.grads[r], grads, rtol=0, atol=1e-12)


@pytest.mark.libreoffice
def test_a_chaotic_run_that_a_restarted_reference_cannot_follow_passes(soffice, tmp_path):
    book = tmp_path / "xor.xlsx"
    api.build("xor", [100.0], 40, book)
    net, lrs, iterations, sheets = setup(book)
    # What verify did before: every cell against the reference run from the initial values. The
    # run is chaotic, so LibreOffice's rounding, not a formula, takes it far from that run.
    layout = TrainingLayout(net, iterations, sheets[0])
    with SavedBook(recalc.recalculate(book, tmp_path / "out")) as fresh:
        values = fresh.sheet(sheets[0]).numbers
    trace = train(net, lrs, iterations)
    rows = slice(layout.FIRST_ROW, layout.last_row + 1)
    restarted = max(np.max(np.abs(values[rows, layout.col(q)] - trace.values(q)[0])
                           / np.maximum(np.maximum(np.abs(values[rows, layout.col(q)]), np.abs(trace.values(q)[0])),
                                        FLOOR)) for q in layout.columns)
    assert restarted > 1e-3

    report = verify(book)
    assert report.ok() and report.max_difference <= 1e-9 and not report.diverged
    assert report.cells == (iterations + 1) * len(layout.columns)


@pytest.mark.libreoffice
@settings(max_examples=4, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(templates(max_layers=4, max_units=6, max_samples=3))
def test_random_networks_at_large_learning_rates_pass(soffice, tmp_path, spec):
    """Saturated, chaotic or diverging: every activation and loss, η up to 100 (each example a LibreOffice run)."""
    book = tmp_path / "random.xlsx"
    api.build(dict(spec, training={"learning_rates": [1.0, 10.0, 100.0], "iterations": 40}), out=book, force=True)
    report = verify(book)
    assert report.ok(), (report.worst, report.mismatches[:3], report.errors[:3])


@pytest.fixture(scope="module")
def edited(soffice, tmp_path_factory):
    """xor at η = 2 and 3 for 20 iterations: a z of sheet 1 made wrong at iteration 10 (× 1.001), a δ of
    sheet 2 made an error at iteration 7 (1/0); the setup and verify's report."""
    tmp = tmp_path_factory.mktemp("edited")
    book = tmp / "xor.xlsx"
    api.build("xor", [2.0, 3.0], 20, book)
    net, lrs, iterations, sheets = setup(book)
    wrong = TrainingLayout(net, iterations, sheets[0]).cell(Z(1, 0, 1), 10)
    error = TrainingLayout(net, iterations, sheets[1]).cell(Delta(2, 0, 2), 7)
    formula = openpyxl.load_workbook(book)[sheets[0]][wrong].value
    out = edit(book, {(sheets[0], wrong): f"=({formula[1:]})*1.001", (sheets[1], error): "=1/0"}, tmp / "edited.xlsx")
    return sheets, wrong, error, verify(out)


@pytest.mark.libreoffice
def test_a_wrong_formula_in_a_middle_row_is_reported_at_that_row_only(edited):
    sheets, wrong, _, report = edited
    found = [m for m in report.mismatches if m.sheet == sheets[0]]
    assert not report.ok() and wrong in {m.cell for m in found}
    # the row's a, loss, δ and gradients follow the wrong z; the next row's parameters follow them as written
    assert {m.iteration for m in found} == {10} and len(found) > 5


@pytest.mark.libreoffice
def test_an_error_value_where_the_reference_is_finite_is_an_error_not_a_divergence(edited):
    sheets, _, error, report = edited
    assert (sheets[1], error, "#DIV/0!") in report.errors
    assert not report.diverged and not [m for m in report.mismatches if m.sheet == sheets[1]]


@pytest.mark.libreoffice
def test_a_diverging_run_is_reported_as_diverged_from_its_iteration(soffice, tmp_path):
    book = tmp_path / "linear.xlsx"
    api.build(LINEAR, [1.0, 10.0], 12, book)
    net, lrs, iterations, sheets = setup(book)
    trace = train(net, lrs, iterations)
    columns = TrainingLayout(net, iterations).columns
    first = min(int(np.argmax(~np.isfinite(trace.values(q)[1]))) for q in columns
                if not np.isfinite(trace.values(q)[1]).all())
    assert first == 5 and np.isfinite(trace.total[0]).all()

    result = CliRunner().invoke(main, ["verify", str(book)])
    assert result.exit_code == 0, result.output
    assert f"\nGradient descent, lr=10 (sheet {sheets[1]}): diverged from iteration {first}:" in result.output
    assert "error value" not in result.output and "OK: within 1e-09 (1 learning rate diverged)" in result.output


def test_saved_book_reads_what_openpyxl_reads(tmp_path):
    """Numbers, texts, cached error values and defined names, from xlsxwriter's file (inline strings, shared
    formulas) and openpyxl's copy (shared strings, a formula in every cell)."""
    book = tmp_path / "linear.xlsx"
    api.build(LINEAR, [1.0, 10.0], 8, book)
    copy = tmp_path / "copy.xlsx"
    openpyxl.load_workbook(book).save(copy)
    for path in (book, copy):
        wb = openpyxl.load_workbook(path, data_only=True)
        with SavedBook(path) as saved:
            assert saved.sheetnames == wb.sheetnames
            for name, defined in wb.defined_names.items():
                sheet, ref = next(iter(defined.destinations))
                cell = wb[sheet][ref.replace("$", "")]
                assert saved.names[name] == (sheet, cell.row - 1, cell.column - 1)
            errors = 0
            for ws in wb.worksheets:
                sheet = saved.sheet(ws.title)
                for row in ws.iter_rows():
                    for c in row:
                        if c.value is not None and not isinstance(c.value, bool):
                            assert sheet.value(c.row - 1, c.column - 1) == c.value, (ws.title, c.coordinate)
                errors += len(sheet.errors)
            assert errors > 0 or path == copy  # the cached #NUM! of η = 10 (openpyxl's copy keeps no values)


def test_a_divergence_names_its_optimizer_learning_rate_and_sheet():
    assert str(Divergence("Training 7", 5.0, 3, "adam")) == "Adam, lr=5 (sheet Training 7): diverged from iteration 3"


@pytest.mark.libreoffice
def test_a_wrong_cell_is_reported_with_its_sheets_optimizer_and_learning_rate(soffice, tmp_path):
    book = tmp_path / "two.xlsx"
    api.build("classic", [0.5], 5, book, optimizers=["sgd", "adam"])
    broken = edit(book, {("Training 2", "B9"): "=B8*1.001"}, tmp_path / "broken.xlsx")
    result = CliRunner().invoke(main, ["verify", str(broken)])
    assert result.exit_code == 1
    assert "\nTraining 2 (Adam, lr=0.5): 1 cell beyond 1e-09, the first at iteration 3:\n  B9 (w1): " in result.output
