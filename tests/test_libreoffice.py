"""Recalculation in LibreOffice must reproduce the cached values and follow edits."""

import openpyxl
import pytest
from click.testing import CliRunner

from sheetprop import recalc, template
from sheetprop.cli import main
from sheetprop.layout import TrainingLayout, defined_name, training_sheet_name
from sheetprop.quantities import Param
from sheetprop.readback import SavedBook
from sheetprop.verification import compare, read_setup, scan_errors
from sheetprop.workbook import build
from tests.xlsx import assert_gnumeric_matches_cache, assert_recalculation_matches_cache, with_inputs

pytestmark = pytest.mark.libreoffice


@pytest.fixture(scope="module")
def recalculated(soffice, classic_book, tmp_path_factory):
    return recalc.recalculate(classic_book, tmp_path_factory.mktemp("recalc"))


def test_every_formula_cell_recalculates_to_its_cached_value(classic_book, recalculated):
    assert assert_recalculation_matches_cache(classic_book, recalculated) > 6 * 101 * 31


def built_and_recalculated(folder, learning_rates, iterations) -> dict:
    """Every shipped template built (``learning_rates``: a function of the network), then recalculated by one
    start of LibreOffice: name → (network, workbook, recalculated workbook)."""
    books = {}
    for name in template.shipped():
        net = template.load(name)
        books[name] = (net, folder / f"{name}.xlsx")
        build(net, learning_rates(net), iterations, books[name][1])
    fresh = recalc.recalculate_all([book for _, book in books.values()], folder / "out")
    return {name: (net, book, result) for (name, (net, book)), result in zip(books.items(), fresh)}


@pytest.fixture(scope="module")
def every_template(soffice, tmp_path_factory):
    return built_and_recalculated(tmp_path_factory.mktemp("templates"), lambda net: list(net.learning_rates[:2]), 12)


@pytest.fixture(scope="module")
def every_template_at_a_huge_learning_rate(soffice, tmp_path_factory):
    return built_and_recalculated(tmp_path_factory.mktemp("huge"), lambda net: [1000.0], 200)


@pytest.mark.parametrize("name", list(template.shipped()))
def test_every_template_recalculates_to_its_cached_values_in_libreoffice_and_gnumeric(every_template, ssconvert, name,
                                                                                      tmp_path):
    net, book, recalculated = every_template[name]
    cells = assert_recalculation_matches_cache(book, recalculated)
    assert cells > 2 * 13 * len(TrainingLayout(net, 12).columns)
    assert assert_gnumeric_matches_cache(book, ssconvert, tmp_path / "gnumeric") == cells


@pytest.mark.parametrize("name", [name for name in template.shipped() if name != "classic"])
def test_every_template_has_no_error_cells_at_a_huge_learning_rate(every_template_at_a_huge_learning_rate, name):
    net, book, recalculated = every_template_at_a_huge_learning_rate[name]
    fresh = SavedBook(recalculated)
    assert scan_errors(fresh) == []
    setup = read_setup(SavedBook(book), fresh, str(book))
    assert compare(fresh, *setup).max_difference <= 1e-9


def edit_and_recalculate(book, edits: dict[str, float], tmp_path):
    """Set defined-name inputs with openpyxl, recalculate in LibreOffice; (values, setup as read back)."""
    edited = with_inputs(book, edits, tmp_path / "edited.xlsx")
    fresh = SavedBook(recalc.recalculate(edited, tmp_path / "out"))
    return fresh, read_setup(SavedBook(edited), fresh, str(edited))


def test_editing_a_sample_and_a_weight_of_xor_recomputes_every_row(soffice, tmp_path):
    net = template.load("xor")
    book = tmp_path / "xor.xlsx"
    build(net, [2.0, 5.0], 60, book)
    fresh, (edited_net, lrs, iterations, sheets) = edit_and_recalculate(
        book, {"input_x1_s2": 0.3, "w1_12_init": -1.25, "lr_2": 3.5}, tmp_path)
    assert edited_net.inputs[1, 0] == 0.3 and edited_net.initial(Param(1, 0, 1)) == -1.25 and lrs == [2.0, 3.5]
    report = compare(fresh, edited_net, lrs, iterations, sheets)
    assert report.cells == 2 * 61 * len(TrainingLayout(net, 60).columns) and not report.errors
    assert report.max_difference <= 1e-9


def test_editing_w1_and_a_learning_rate_recomputes_every_row(soffice, classic_book, classic, tmp_path):
    fresh, (net, lrs, iterations, sheets) = edit_and_recalculate(classic_book, {"w1_init": 0.9, "lr_3": 1.7},
                                                                 tmp_path)
    assert net.initial(Param(1, 0, 0)) == 0.9 and lrs[2] == 1.7
    report = compare(fresh, net, lrs, iterations, sheets)
    assert report.cells == 6 * 101 * 31 and not report.errors
    assert report.max_difference <= 1e-9
    # the edit really moved the numbers: row 100 of the η slot that changed differs from the original
    layout = TrainingLayout(classic, 100, training_sheet_name(2))
    before = SavedBook(classic_book).sheet(layout.sheet).value(layout.row(100), layout.col(Param(2, 0, 0)))
    after = fresh.sheet(layout.sheet).value(layout.row(100), layout.col(Param(2, 0, 0)))
    assert abs(after - before) > 1e-3


def test_huge_learning_rate_for_a_thousand_iterations_has_no_error_cells(soffice, classic, tmp_path):
    out = tmp_path / "huge.xlsx"
    build(classic, [1000.0, 0.5], 1000, out)
    fresh = SavedBook(recalc.recalculate(out, tmp_path / "out"))
    assert scan_errors(fresh) == []
    net, lrs, iterations, sheets = read_setup(SavedBook(out), fresh, str(out))
    assert compare(fresh, net, lrs, iterations, sheets).max_difference <= 1e-9


def test_verify_command_accepts_the_built_workbook(soffice, classic_book):
    result = CliRunner().invoke(main, ["verify", str(classic_book)])
    assert result.exit_code == 0, result.output
    assert f"{6 * 101 * 31:,} training cells recalculated" in result.output and "OK" in result.output


def test_verify_command_catches_a_broken_formula(soffice, classic_book, tmp_path):
    wb = openpyxl.load_workbook(classic_book)
    wb[training_sheet_name(3)]["F40"] = "=F39-$B$2*AC39*1.001"
    broken = tmp_path / "broken.xlsx"
    wb.save(broken)
    result = CliRunner().invoke(main, ["verify", str(broken)])
    assert result.exit_code == 1
    assert (f"{training_sheet_name(3)} (Gradient descent, lr=0.8): 1 cell beyond 1e-09, the first at iteration 34:\n"
            "  F40 (w5): ") in result.output
    assert "verification failed" in result.output


def test_verify_without_libreoffice_says_how_to_install_it(classic_book, monkeypatch):
    monkeypatch.setattr(recalc, "find_soffice", lambda: None)
    result = CliRunner().invoke(main, ["verify", str(classic_book)])
    assert result.exit_code == 1 and "LibreOffice is not installed" in result.output


def test_verify_refuses_a_foreign_workbook(soffice, tmp_path):
    other = tmp_path / "other.xlsx"
    openpyxl.Workbook().save(other)
    result = CliRunner().invoke(main, ["verify", str(other)])
    assert result.exit_code == 1 and "not written by sheetprop" in result.output


@pytest.mark.parametrize("name", ["mazur", "deep", "wide"])
def test_editing_a_parameter_and_a_learning_rate_of_any_template_recomputes_every_row(soffice, name, tmp_path):
    net = template.load(name)
    book = tmp_path / f"{name}.xlsx"
    build(net, [0.5], 30, book)
    first = defined_name(net, net.params[0])
    fresh, (edited_net, lrs, iterations, sheets) = edit_and_recalculate(book, {first: 0.77, "lr_1": 0.9}, tmp_path)
    assert edited_net.initial(net.params[0]) == 0.77 and lrs == [0.9]
    report = compare(fresh, edited_net, lrs, iterations, sheets)
    assert report.cells == 31 * len(TrainingLayout(net, 30).columns) and not report.errors
    assert report.max_difference <= 1e-9
