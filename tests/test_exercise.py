"""`sheetprop build --exercise`: the student's version of the workbook. Filled with the full workbook's own
formulas it checks as right in LibreOffice and Gnumeric and grades as correct; each usual mistake turns the
right check cells ✗ and `grade` names the first one. Oracles: the engines' recalculation, the full
workbook's formulas and sheetprop's reference."""

import csv
import dataclasses
import re
import subprocess

import numpy as np
import openpyxl
import pytest
from click.testing import CliRunner
from xlsxwriter.utility import xl_col_to_name

import sheetprop
from sheetprop import reference, template
from sheetprop.cli import main
from sheetprop.exercise import DEFAULT_PARTS, PARTS, RIGHT, WRONG, Exercise, ExerciseError, parts
from sheetprop.grading import grade_file
from sheetprop.layout import GRADIENT_CHECK_SHEET, training_layouts
from sheetprop.quantities import A, Delta, Grad, Param, Z
from sheetprop.recalc import recalculate_all
from sheetprop.update import OPTIMIZERS
from tests.xlsx import formula_cells, formulas_values

ITERATIONS = 4


def build_pair(tmp_path, name="classic", optimizer="sgd", lrs=(0.5, 2.0), blank=True):
    net = dataclasses.replace(template.load(name), optimizers=(optimizer,))
    exercise = sheetprop.build(net, list(lrs), ITERATIONS, tmp_path / "exercise.xlsx", exercise=blank)
    full = sheetprop.build(net, list(lrs), ITERATIONS, tmp_path / "full.xlsx")
    return net, exercise.path, full.path


def fill(exercise, full, out, change=None):
    """The exercise's blank cells given the full workbook's formulas (``change(sheet, cell, formula)`` may alter
    one), as a student who derived everything right would write them."""
    wb, answers = openpyxl.load_workbook(exercise), openpyxl.load_workbook(full)
    for name in (s for s in wb.sheetnames if s.startswith("Training")):
        for row in wb[name].iter_rows(min_row=6, max_row=6 + ITERATIONS):
            for cell in row:
                if cell.value is None and answers[name][cell.coordinate].value is not None:
                    formula = answers[name][cell.coordinate].value
                    cell.value = change(name, cell, formula) if change else formula
    wb.save(out)
    return out


def checks(ws, layout, exercise) -> dict[tuple[str, int], str]:
    """Every check cell: (quantity label, iteration) → ✓, ✗ or blank."""
    net = layout.network
    out = {}
    for q in exercise.blanks:
        for k in range(layout.iterations + 1):
            if exercise.blank(q, k):
                out[(q.label(net), k)] = ws.cell(layout.row(k) + 1, exercise.check_col(q) + 1).value or ""
    return out


def gnumeric_checks(path, ssconvert, out_dir, layout, exercise, sheet_index):
    out_dir.mkdir(exist_ok=True)
    subprocess.run([ssconvert, "--recalc", "-S", str(path), str(out_dir / "s.csv")], check=True, capture_output=True)
    rows = list(csv.reader(open(out_dir / f"s.csv.{sheet_index}", encoding="utf-8")))
    net = layout.network
    return {(q.label(net), k): rows[layout.row(k)][exercise.check_col(q)]
            for q in exercise.blanks for k in range(layout.iterations + 1) if exercise.blank(q, k)}


# every template (with an optimizer that keeps state), and every optimizer on classic
CASES = [(name, "adam") for name in template.shipped()] + [("classic", o) for o in OPTIMIZERS if o != "adam"]


@pytest.mark.parametrize("name, optimizer", CASES)
def test_every_template_and_optimizer_can_be_an_exercise_that_shows_what_its_blanks_compute(tmp_path, name,
                                                                                             optimizer):
    net = dataclasses.replace(template.load(name), optimizers=(optimizer,))
    built = sheetprop.build(net, [0.5], 3, tmp_path / "e.xlsx", exercise=True)
    layout = training_layouts(net, 1, 3)[0]
    exercise = Exercise(layout, frozenset(DEFAULT_PARTS), 0.5)
    ws = openpyxl.load_workbook(built.path)[layout.sheet]
    for q in layout.columns:  # blank where the student writes, a formula everywhere else
        for k in range(4):
            value = ws.cell(layout.row(k) + 1, layout.col(q) + 1).value
            assert (value is None) == exercise.blank(q, k), (q, k, value)
    nothing = Exercise(layout, frozenset(), 0.5).simulate(0.5)[0]  # the sheet's own formulas, computed
    trace = reference.train(net, [0.5], 3, optimizer=optimizer)
    want = np.column_stack([trace.values(q)[0] for q in layout.columns])
    np.testing.assert_allclose(nothing, want, rtol=1e-9, atol=1e-12)


@pytest.mark.libreoffice
def test_an_exercise_filled_with_the_full_workbooks_formulas_is_all_right_in_every_engine_and_grades_correct(
        tmp_path, soffice, ssconvert):
    net, exercise_path, full = build_pair(tmp_path)
    filled = fill(exercise_path, full, tmp_path / "filled.xlsx")
    blank = recalculate_all([exercise_path], tmp_path / "blank")[0]
    done = recalculate_all([filled], tmp_path / "lo")[0]
    for slot, lr in enumerate((0.5, 2.0)):
        layout = training_layouts(net, 2, ITERATIONS)[slot]
        exercise = Exercise(layout, frozenset(DEFAULT_PARTS), lr)
        ws = openpyxl.load_workbook(done, data_only=True)[layout.sheet]
        assert set(checks(ws, layout, exercise).values()) == {RIGHT}
        assert ws.cell(2, 6).value == f"{exercise.cells} of {exercise.cells} cells right so far"
        empty = openpyxl.load_workbook(blank, data_only=True)[layout.sheet]
        assert set(checks(empty, layout, exercise).values()) == {""}
        assert empty.cell(2, 6).value == f"0 of {exercise.cells} cells right so far"
        index = openpyxl.load_workbook(filled, read_only=True).sheetnames.index(layout.sheet)
        assert set(gnumeric_checks(filled, ssconvert, tmp_path / f"gn{slot}", layout, exercise, index).values()) == \
            {RIGHT}
    assert grade_file(filled).status == "correct"
    assert grade_file(exercise_path).status == "incomplete"  # blanks are not done, not wrong


def test_an_exercises_checks_work_with_excels_function_semantics(tmp_path, formulas_engine):
    """The `formulas` package (Excel's functions in Python) computes the checks of a filled exercise as ✓."""
    net, exercise_path, full = build_pair(tmp_path, lrs=(0.5,))
    values = formulas_values(fill(exercise_path, full, tmp_path / "filled.xlsx"))
    layout = training_layouts(net, 1, ITERATIONS)[0]
    exercise = Exercise(layout, frozenset(DEFAULT_PARTS), 0.5)
    sheet = values[layout.sheet]
    marks = {sheet.get((layout.row(k) + 1, exercise.check_col(q) + 1)) for q in exercise.blanks
             for k in range(ITERATIONS + 1) if exercise.blank(q, k)}
    assert marks == {RIGHT}
    assert sheet[(2, 6)] == f"{exercise.cells} of {exercise.cells} cells right so far"


def _column(layout, q) -> str:
    return xl_col_to_name(layout.col(q))


MISTAKES = {
    # ∂E/∂w3 written out with a_h1·(1−a_h1) where a_h2·(1−a_h2) belongs
    "a_h1 for a_h2": (lambda layout, net, row, formula: (
        f"=({_column(layout, Delta(2, 0))}{row}*{_column(layout, Param(2, 0, 1))}{row}+"
        f"{_column(layout, Delta(2, 1))}{row}*{_column(layout, Param(2, 1, 1))}{row})*"
        f"{_column(layout, A(1, 0))}{row}*(1-{_column(layout, A(1, 0))}{row})*input_i1"), Grad(Param(1, 1, 0)), 0,
        "∂E/∂w3 uses a_h1 where a_h2 belongs"),
    # δ_h1 with w6 where w7 belongs (and δ_h2 with w7 where w6 belongs)
    "w6 and w7 swapped": (lambda layout, net, row, formula: formula.replace(
        f"{_column(layout, Param(2, 1, 0))}{row}", "#").replace(f"{_column(layout, Param(2, 0, 1))}{row}",
        f"{_column(layout, Param(2, 1, 0))}{row}").replace("#", f"{_column(layout, Param(2, 0, 1))}{row}"),
        Delta(1, 0), 0, "w6 and w7 swapped"),
    # η as a relative reference, filled down: B2, then B3, B4, …
    "moving η": (lambda layout, net, row, formula: formula.replace("$B$2", f"B{row - 5}"), Param(1, 0, 0), 2,
                 "η is read from a cell that moves down the rows"),
    # ∂E/∂w5's first value typed over its formulas below
    "a constant": (None, Grad(Param(2, 0, 0)), 1, "a constant where a formula belongs"),
}


@pytest.mark.libreoffice
@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_each_usual_mistake_turns_its_checks_wrong_and_grade_names_it(tmp_path, soffice, mistake):
    net, exercise_path, full = build_pair(tmp_path, lrs=(0.5,))
    layout = training_layouts(net, 1, ITERATIONS)[0]
    exercise = Exercise(layout, frozenset(DEFAULT_PARTS), 0.5)
    rewrite, target, iteration, words = MISTAKES[mistake]
    cols = {_column(layout, target)} | ({_column(layout, Delta(1, 1))} if mistake == "w6 and w7 swapped" else set())
    first_value = {}

    def change(sheet, cell, formula):
        if cell.column_letter not in cols:
            return formula
        if rewrite is None:  # the value of the first row, typed
            return first_value.setdefault(cell.column_letter, formula) if cell.row == 6 else 0.0721570729121362
        return rewrite(layout, net, cell.row, formula)

    filled = fill(exercise_path, full, tmp_path / "wrong.xlsx", change)
    done = recalculate_all([filled], tmp_path / "lo")[0]
    marks = checks(openpyxl.load_workbook(done, data_only=True)[layout.sheet], layout, exercise)
    label = target.label(net)
    assert marks[(label, iteration)] == WRONG
    assert all(mark == RIGHT for (q, k), mark in marks.items() if k < iteration)
    graded = grade_file(filled)
    first = graded.tables[0].first
    assert graded.status == "mistakes" and (first.quantity, first.iteration) == (label, iteration), first
    assert words in first.why and first.cell == f"{layout.sheet}!{layout.cell(target, iteration)}"


def test_the_parts_left_blank_are_chosen_by_name(tmp_path):
    assert parts(True) == frozenset(DEFAULT_PARTS) and parts("all") == frozenset(PARTS)
    with pytest.raises(ExerciseError, match="must be some of forward, loss, delta, gradient, update or all"):
        parts(["deltas"])
    net = template.load("classic")
    built = sheetprop.build(net, [0.5], 3, tmp_path / "f.xlsx", exercise=["forward"])
    layout = training_layouts(net, 1, 3)[0]
    ws = openpyxl.load_workbook(built.path)[layout.sheet]
    assert ws[layout.cell(Z(1, 0), 0)].value is None and ws[layout.cell(Grad(net.params[0]), 0)].value.startswith("=")
    result = CliRunner().invoke(main, ["build", "--exercise", "--blank", "deltas", "--out", str(tmp_path / "x.xlsx")])
    assert result.exit_code == 2 and "'deltas' is not one of" in result.output


def test_an_exercise_keeps_its_answers_out_of_sight(tmp_path):
    net, exercise_path, full = build_pair(tmp_path)
    wb = openpyxl.load_workbook(exercise_path)
    assert [wb[s].sheet_state for s in wb.sheetnames if s.startswith("Answers")] == ["veryHidden"] * 2
    assert GRADIENT_CHECK_SHEET not in wb.sheetnames  # its central differences would give the gradients away
    equations = [[c.value for c in row] for row in wb["Equations"].iter_rows()]
    deltas = [r for r in equations if r[0] and str(r[0]).startswith("δ")]
    assert deltas and all("yours to derive" in r[2] and r[3] is None for r in deltas)
    cached = openpyxl.load_workbook(exercise_path, data_only=True)
    full_values = openpyxl.load_workbook(full, data_only=True)
    layout = training_layouts(net, 2, ITERATIONS)[0]
    from sheetprop.quantities import Total
    last = layout.cell(Total(), ITERATIONS)
    assert cached[layout.sheet][last].value != pytest.approx(full_values[layout.sheet][last].value)
    sheet_values = [c for row in cached[layout.sheet].iter_rows(values_only=True) for c in row]
    assert all(not isinstance(v, float) or not re.match(r"0\.00018825566", repr(v)) for v in sheet_values)


@pytest.mark.libreoffice
def test_verify_sends_an_exercise_to_grade_in_one_line(tmp_path, soffice):
    path = sheetprop.build("classic", [0.5], 3, tmp_path / "e.xlsx", exercise=["gradient"]).path
    result = CliRunner().invoke(main, ["verify", str(path)])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "is an exercise (its gradient cells are the student's to write): check it with `sheetprop grade`" in \
        result.output


@pytest.mark.libreoffice
def test_an_unfilled_exercise_caches_what_libreoffice_computes_from_its_blanks(tmp_path, soffice):
    """Every cached value (the diagram's labels, E_total, the Compare sheet, the answers) is what the sheet
    computes with its blanks, not the full workbook's numbers, which LibreOffice would otherwise show."""
    path = sheetprop.build("classic", [0.5, 2], ITERATIONS, tmp_path / "e.xlsx", exercise=True).path
    fresh = openpyxl.load_workbook(recalculate_all([path], tmp_path / "lo")[0], data_only=True)
    compared = 0
    for sheet, cell, want in formula_cells(path):
        got = fresh[sheet][cell.coordinate].value
        if isinstance(want, (int, float)) or isinstance(got, (int, float)):
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12), (sheet, cell.coordinate, want, got)
        else:
            assert (want or "") == (got or ""), (sheet, cell.coordinate, want, got)
        compared += 1
    assert compared > 500


def test_cells_that_only_read_blank_ones_are_not_done_not_wrong(tmp_path):
    """With only the gradients blank, the weights after iteration 0 read them (as 0): not done, not a mistake."""
    path = sheetprop.build("classic", [0.5], 5, tmp_path / "e.xlsx", exercise=["gradient"]).path
    graded = grade_file(path)
    assert graded.status == "incomplete"
    findings = {f.quantity: f for f in graded.tables[0].findings}
    assert findings["w1"].status == "not done" and findings["w1"].why.endswith("not written yet)")
    assert findings["∂E/∂w1"].why.startswith("not written yet")
