"""`sheetprop grade` on a corpus of hand-built workbooks (tests/students.py): five layouts, each correct and
with each of the usual mistakes, saved three ways (formulas only, recalculated and saved by LibreOffice, and
written with cached values as Excel writes them). Oracles: torch autograd for the corpus's own numbers, and
the cell and cause each mistake was injected at."""

import hashlib
import shutil
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pytest
import torch
import xlsxwriter
from click.testing import CliRunner

import sheetprop
from sheetprop.cli import main
from sheetprop.grading import grade_file
from sheetprop.recalc import recalculate_all
from tests.students import LAYOUTS, MISTAKES, RATES, Sheetwriter, paste_values, write

# the first mistake of its own each injection makes: the column (by layout where it differs), its iteration,
# and words of the diagnosis
EXPECTED = {
    "a_h1 for a_h2": ("∂E/∂w3", 0, "∂E/∂w3 uses a_h1 where a_h2 belongs"),
    "parentheses": ({"repeated with factors": "δ_h1", "side by side": "δ_h1"}, 0, "missing a pair of parentheses"),
    "w6 w7 swapped": ({"repeated with factors": "δ_h1", "side by side": "δ_h1"}, 0, "w6 and w7 swapped"),
    "w2 from a_h2": ("∂E/∂w2", 0, "∂E/∂w2 uses a_h2 where a_h1 belongs"),
    "w3 w4 with w1 w2 gradients": ({"repeated with factors": "w3+"}, {"repeated with factors": 0},
                                   "uses ∂E/∂w1 where ∂E/∂w3 belongs"),
    "drifting η": ({"repeated with factors": "w1+"}, {"repeated with factors": 1},
                   "η is read from a cell that moves down the rows"),
    "constants": ("h1", 1, "a constant where a formula belongs"),
    "pasted values": ("h1", 0, "values where formulas belong"),
    "updated weights": ({"repeated with factors": "δ_h1", "side by side": "δ_h1"}, 0,
                        "uses the weights after this iteration's update (w5, w7) where the weights before it belong"),
}
DEFAULT_COLUMN = {"parentheses": "∂E/∂w1", "w6 w7 swapped": "∂E/∂w1", "w3 w4 with w1 w2 gradients": "w3",
                  "drifting η": "w1", "updated weights": "∂E/∂w1"}
DEFAULT_ITERATION = {"w3 w4 with w1 w2 gradients": 1, "drifting η": 2}


def cases():
    for layout, student in LAYOUTS.items():
        for mistake in MISTAKES:
            if not (mistake == "drifting η" and student.rate == "typed"):
                yield layout, mistake


def stem(layout: str, mistake: str) -> str:
    return f"{layout}-{mistake}".replace(" ", "_").replace(",", "").replace("η", "eta")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, soffice) -> dict[str, Path]:
    """Every case as formulas only (``formulas/``), recalculated and saved by LibreOffice (``libreoffice/``) and
    written by xlsxwriter with its cached values (``cached/``)."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "formulas").mkdir()
    written = {}
    for layout, mistake in cases():
        name = stem(layout, mistake)
        written[name] = write(root / "formulas" / f"{name}.xlsx", LAYOUTS[layout],
                              "correct" if mistake == "pasted values" else mistake)
    saved = dict(zip(written, recalculate_all(list(written.values()), root / "libreoffice")))
    for layout, mistake in cases():
        name = stem(layout, mistake)
        if mistake == "pasted values":
            for folder in ("formulas", "libreoffice"):
                paste_values(written[name], saved[name], root / folder / f"{name}.xlsx")
        _with_cache(root / "formulas" / f"{name}.xlsx", saved[name], root / "cached" / f"{name}.xlsx")
    return {"formulas": root / "formulas", "libreoffice": root / "libreoffice", "cached": root / "cached"}


def _with_cache(formulas: Path, computed: Path, out: Path) -> None:
    """The workbook as Excel saves it: every formula with the value it computed."""
    out.parent.mkdir(exist_ok=True)
    wb, values = openpyxl.load_workbook(formulas), openpyxl.load_workbook(computed, data_only=True)
    book = xlsxwriter.Workbook(str(out))
    for ws in wb.worksheets:
        sheet = book.add_worksheet(ws.title)
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    sheet.write_formula(cell.row - 1, cell.column - 1, cell.value,
                                        None, values[ws.title][cell.coordinate].value)
                elif cell.value is not None:
                    sheet.write(cell.row - 1, cell.column - 1, cell.value)
    book.close()


def expected_cell(layout: str, column: str, iteration: int, table: int) -> str:
    student = LAYOUTS[layout]
    row0, col0 = student.origin
    if student.tables > 1:
        col0 += table * (len(student.keys) + 2)
    writer = Sheetwriter(None, student, 0.5, "correct", (row0, col0), {})
    return writer.at(column, iteration)


# Formulas saved without values make `grade` recalculate them in LibreOffice, a second each: a few suffice
UNCOMPUTED = [("mazur rows", "correct"), ("columns", "a_h1 for a_h2"), ("side by side", "drifting η"),
              ("biases, no half, typed η", "w6 w7 swapped"), ("repeated with factors", "constants")]


@pytest.mark.libreoffice
@pytest.mark.parametrize("saved, layout, mistake", [("libreoffice", *c) for c in cases()] +
                         [("cached", *c) for c in cases()] + [("formulas", *c) for c in UNCOMPUTED])
def test_each_workbook_is_graded_at_the_cell_and_cause_of_its_mistake(corpus, saved, layout, mistake):
    path = corpus[saved] / f"{stem(layout, mistake)}.xlsx"
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    graded = grade_file(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # the student's file is only read
    assert graded.error is None and len(graded.tables) == len(RATES[layout]), graded
    if mistake == "correct":
        assert graded.status == "correct", [f for t in graded.tables for f in t.findings if not f.ok]
        return
    assert graded.status == "mistakes"
    if mistake == "mislabelled η":
        wrong = [t for t in graded.tables if not t.ok]
        assert wrong and all(any("but the weights are updated with η = 0.1" in m for m in t.mistakes) for t in wrong)
        assert all(t.ok for t, lr in zip(graded.tables, RATES[layout]) if lr == 0.1)
        return
    column, iteration, words = EXPECTED[mistake]
    column = column.get(layout, DEFAULT_COLUMN.get(mistake)) if isinstance(column, dict) else column
    iteration = iteration.get(layout, DEFAULT_ITERATION.get(mistake)) if isinstance(iteration, dict) else iteration
    for number, table in enumerate(graded.tables):
        first = table.first
        assert first is not None and words in first.why, (table.where, first)
        assert (first.quantity, first.iteration) == (column, iteration), first
        assert first.cell.split("!")[1] == expected_cell(layout, column, iteration, number)


@pytest.mark.libreoffice
def test_a_column_wrong_only_because_an_earlier_one_is_follows_from_it(corpus):
    graded = grade_file(corpus["libreoffice"] / f"{stem('mazur rows', 'a_h1 for a_h2')}.xlsx")
    findings = {f.quantity: f for f in graded.tables[0].findings}
    assert findings["∂E/∂w3"].status == findings["∂E/∂w4"].status == "wrong"
    assert findings["w3"].status == "follows" and findings["w3"].why == "follows from ∂E/∂w3 (iteration 0)"
    assert all(findings[q].ok for q in ("w1", "w2", "w5", "E_total", "∂E/∂w5"))


@pytest.mark.libreoffice
def test_the_corpus_itself_agrees_with_torch_autograd(corpus):
    """The correct workbooks' own gradients, as LibreOffice computed them, are torch's for the same network."""
    for layout, student in LAYOUTS.items():
        path = corpus["libreoffice"] / f"{stem(layout, 'correct')}.xlsx"
        ws = openpyxl.load_workbook(path, data_only=True).worksheets[0]
        writer = Sheetwriter(None, student, RATES[layout][0], "correct", student.origin, {})
        v = student.values
        w = torch.tensor([ws[writer.at(f"w{n}", 0)].value for n in range(1, 9)], dtype=torch.float64,
                         requires_grad=True)
        i, t = torch.tensor([v["i1"], v["i2"]], dtype=torch.float64), torch.tensor([v["t1"], v["t2"]],
                                                                                   dtype=torch.float64)
        b = torch.tensor(student.biases or (0.0, 0.0), dtype=torch.float64)
        a_h = torch.sigmoid(w[:4].reshape(2, 2) @ i + b[0])
        a_o = torch.sigmoid(w[4:].reshape(2, 2) @ a_h + b[1])
        ((0.5 if student.half else 1.0) * ((t - a_o) ** 2).sum()).backward()
        got = [ws[writer.at(f"∂E/∂w{n}", 0)].value for n in range(1, 9)]
        np.testing.assert_allclose(got, w.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("template", ["classic", "mazur"])
def test_a_workbook_sheetprop_wrote_grades_as_correct(tmp_path, template):
    path = sheetprop.build(template, learning_rates=[0.1, 2, 20], iterations=12, out=tmp_path / "own.xlsx").path
    graded = grade_file(path)
    assert graded.status == "correct" and len(graded.tables) == 3
    assert [t.lr for t in graded.tables] == [0.1, 2, 20] and all("½" in t.notes[0] for t in graded.tables)


def test_other_optimizers_and_networks_are_named_as_not_graded(tmp_path):
    adam = sheetprop.build("classic", learning_rates=[0.5], optimizers=["sgd", "adam"], iterations=3,
                           out=tmp_path / "adam.xlsx").path
    graded = grade_file(adam)
    assert [t.unrecognised is None for t in graded.tables] == [True, False] and graded.status == "not graded"
    assert "not the 2-2-2 network trained by gradient descent" in graded.tables[1].unrecognised
    xor = sheetprop.build("xor", learning_rates=[0.5], iterations=3, out=tmp_path / "xor.xlsx").path
    assert grade_file(xor).error.startswith("no training table found")


def _ungradeable(folder: Path) -> dict[str, str]:
    (folder / "notes.xlsx").write_text("not a workbook")
    (folder / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    (folder / "locked.xlsx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))  # encrypted: OLE
    empty = openpyxl.Workbook()
    empty.active["A1"] = "my answers are on paper"
    empty.save(folder / "empty.xlsx")
    return {"notes.xlsx": "not a readable .xlsx workbook", "old.xls": "old Excel 97-2003 .xls",
            "locked.xlsx": "password-protected", "empty.xlsx": "no training table found"}


def test_files_that_cannot_be_graded_get_one_line_each_and_exit_2_while_the_others_are_graded(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    reasons = _ungradeable(folder)
    sheetprop.build("classic", learning_rates=[0.5], iterations=4, out=folder / "good.xlsx")
    result = CliRunner().invoke(main, ["grade", str(folder)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for name, words in reasons.items():
        line = next(line for line in result.output.splitlines() if name in line)
        assert "not graded" in line and words in line
    assert any("good.xlsx" in line and "correct" in line for line in result.output.splitlines())
    assert "5 files: 1 correct, 4 not graded" in result.output


@pytest.mark.libreoffice
def test_a_class_is_graded_into_one_workbook_with_the_counts_of_each_mistake(corpus, tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    for mistake in ("correct", "a_h1 for a_h2", "constants"):
        shutil.copy(corpus["cached"] / f"{stem('mazur rows', mistake)}.xlsx", folder)
    out = tmp_path / "grades.xlsx"
    result = CliRunner().invoke(main, ["grade", str(folder), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "3 files: 1 correct, 2 mistakes" in result.output
    ws = openpyxl.load_workbook(out)["Grades"]
    rows = [[c.value for c in row] for row in ws.iter_rows()]
    counts = {r[2]: r[1] for r in rows if r and isinstance(r[1], int)}
    assert counts["uses a_h1 where a_h2 belongs"] == 2 and counts["a constant where a formula belongs"] == 2
    header = next(r for r in rows if r[0] == "File")
    table = [dict(zip(header, r)) for r in rows[rows.index(header) + 1:] if r[0]]
    assert len(table) == 6  # 3 files × 2 tables (η = 0.5 and 2)
    wrong = next(r for r in table if "a_h1_for_a_h2" in r["File"])
    assert wrong["∂E/∂w3"] == "0" and wrong["w3"] == "(1)" and wrong["E_total"] == "✓" and wrong["w1"] == "✓"
    with zipfile.ZipFile(out) as z:  # a well-formed workbook
        assert "xl/worksheets/sheet1.xml" in z.namelist()


def test_the_api_returns_the_grades_as_an_object(tmp_path):
    path = sheetprop.build("classic", learning_rates=[0.5], iterations=4, out=tmp_path / "a.xlsx").path
    grades = sheetprop.grade(path)
    assert grades.exit_code == 0 and grades.files[0].status == "correct"
    assert "1 file: 1 correct" in str(grades)


@pytest.mark.libreoffice
def test_columns_whose_headers_name_nothing_are_read_by_their_values(corpus, tmp_path):
    wb = openpyxl.load_workbook(corpus["formulas"] / f"{stem('mazur rows', 'correct')}.xlsx")
    for ws in wb.worksheets:
        ws[expected_cell("mazur rows", "a_h1", -1, 0)] = "sig"  # a header no rule reads
        ws[expected_cell("mazur rows", "a_h2", -1, 0)] = None  # no header at all
    wb.save(tmp_path / "unnamed.xlsx")
    graded = grade_file(tmp_path / "unnamed.xlsx")
    assert graded.status == "correct"
    table = graded.tables[0]
    assert "'sig' read as a_h1 from its values" in table.notes
    assert any(note.endswith("read as a_h2 from its values") for note in table.notes)
    assert {"sig"} <= {f.quantity for f in table.findings}


@pytest.mark.libreoffice
@pytest.mark.parametrize("mistake", ["correct", "a_h1 for a_h2"])
def test_a_single_step_with_its_updated_weights_in_the_same_row_is_graded(tmp_path, soffice, mistake):
    """The step-by-step exercise done once: one row of forward pass, gradients and the weights after it."""
    typed = write(tmp_path / "one.xlsx", LAYOUTS["repeated with factors"], mistake, iterations=1)
    graded = grade_file(recalculate_all([typed], tmp_path / "saved")[0])
    assert [t.iterations for t in graded.tables] == [1]
    if mistake == "correct":
        assert graded.status == "correct"
    else:
        first = graded.tables[0].first
        assert (first.quantity, first.iteration, first.why) == ("∂E/∂w3", 0, "∂E/∂w3 uses a_h1 where a_h2 belongs")


def test_a_large_folder_shows_its_progress_and_a_small_one_does_not(tmp_path, capsys):
    for i in range(11):
        sheetprop.build("classic", learning_rates=[0.5], iterations=2, out=tmp_path / f"s{i:02d}.xlsx")
    capsys.readouterr()
    assert sheetprop.grade(tmp_path).exit_code == 0
    assert "11/11" in capsys.readouterr().err  # more than ten files: a bar counts them
    sheetprop.grade(tmp_path / "s00.xlsx")
    assert capsys.readouterr().err == ""


def test_labelled_values_are_read_beside_below_or_inside_their_labels():
    from sheetprop.grading.tables import Cell, Sheet, fixed

    sheet = Sheet("x", {(0, 0): Cell("Learning rate 0.5"), (1, 0): Cell("i1"), (1, 1): Cell(0.05),
                        (2, 0): Cell("target t2"), (3, 0): Cell(0.99), (4, 0): Cell("η = 2"), (5, 0): Cell("Step 1")})
    assert [(f.key, f.value) for f in fixed(sheet, set())] == [("η", 0.5), ("i1", 0.05), ("t2", 0.99), ("η", 2.0)]


@pytest.mark.libreoffice
def test_initial_weights_typed_as_text_are_read_as_excel_reads_them(corpus, tmp_path):
    wb = openpyxl.load_workbook(corpus["formulas"] / f"{stem('mazur rows', 'correct')}.xlsx")
    for ws in wb.worksheets:
        cell = ws[expected_cell("mazur rows", "w1", 0, 0)]
        cell.value = str(cell.value)  # '0.15, typed with an apostrophe
    wb.save(tmp_path / "text.xlsx")
    assert grade_file(tmp_path / "text.xlsx").status == "correct"


@pytest.mark.parametrize("header, key", [
    # the spellings the issue lists, and others seen in hand-built sheets
    ("h1", "h1"), ("a_h1", "a_h1"), ("out_h1", "a_h1"), ("σ(h1)", "a_h1"), ("E1", "E1"), ("E_tot", "E_total"),
    ("E_total", "E_total"), ("Etotal", "E_total"), ("∂E/∂w1", "∂E/∂w1"), ("dE/dw1", "∂E/∂w1"),
    ("∂E_total/∂w1", "∂E/∂w1"), ("dEtotal_dw1", "∂E/∂w1"), ("w1_new", "w1+"), ("net_h1", "h1"), ("Net h1", "h1"),
    ("net input h1", "h1"), ("Out h1", "a_h1"), ("output o1 (sigmoid)", "a_o1"), ("Predicted o1", "a_o1"),
    ("E_o1", "E1"), ("Total Error", "E_total"), ("Loss", "E_total"), ("δ_o1", "δ_o1"), ("delta_h2", "δ_h2"),
    ("dE/dnet_o1", "δ_o1"), ("∂E/∂out_o1", "∂E/∂a_o1"), ("∂out_o1/∂net_o1", "∂a_o1/∂o1"),
    ("∂E_o1/∂out_h1", "∂E1/∂a_h1"), ("Target o1", "t1"), ("Input 1", "i1"), ("x2", "i2"), ("Learning rate", "η"),
    ("η", "η"), ("Epoch", "iteration"), ("weight 1", "w1"), ("W8", "w8"), ("b1", "b1"), ("b_h2", "b_h2"),
])
def test_a_header_is_read_in_its_many_spellings(header, key):
    from sheetprop.grading.headers import keys

    assert keys(header)[0] == key


def step_by_step(path: Path, wrong_unit: bool = False) -> Path:
    """The step-by-step exercise as many write it out: names down column A, one column of values and formulas
    (inputs, weights, the forward pass, the chain rule's factors, the gradients, the weights after the step)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["A1"] = "One step of backpropagation"
    at: dict[str, str] = {}

    def put(name: str, value) -> None:
        row = ws.max_row + 1
        ws.cell(row, 1, name)
        ws.cell(row, 2, value if not isinstance(value, str) else "=" + value.format(**at))
        at[name] = f"B{row}"

    for name, value in [("i1", 0.05), ("i2", 0.1), ("t1", 0.01), ("t2", 0.99), ("eta", 0.5), ("w1", 0.15),
                        ("w2", 0.2), ("w3", 0.25), ("w4", 0.3), ("w5", 0.4), ("w6", 0.45), ("w7", 0.5), ("w8", 0.55)]:
        put(name, value)
    for unit, (a, b, x, y) in {"h1": ("w1", "w2", "i1", "i2"), "h2": ("w3", "w4", "i1", "i2"),
                               "o1": ("w5", "w6", "out_h1", "out_h2"), "o2": ("w7", "w8", "out_h1", "out_h2")}.items():
        put(f"net_{unit}", f"{{{a}}}*{{{x}}}+{{{b}}}*{{{y}}}")
        put(f"out_{unit}", f"1/(1+EXP(-{{net_{unit}}}))")
    put("E_total", "0.5*({t1}-{out_o1})^2+0.5*({t2}-{out_o2})^2")
    for j in "12":
        put(f"dE/dout_o{j}", f"{{out_o{j}}}-{{t{j}}}")
        put(f"dout_o{j}/dnet_o{j}", f"{{out_o{j}}}*(1-{{out_o{j}}})")
    for n, j, src in [(5, 1, "out_h1"), (6, 1, "out_h2"), (7, 2, "out_h1"), (8, 2, "out_h2")]:
        put(f"dE/dw{n}", f"{{dE/dout_o{j}}}*{{dout_o{j}/dnet_o{j}}}*{{{src}}}")
    for j, (first, second) in {"1": ("w5", "w7"), "2": ("w6", "w8")}.items():
        put(f"dE/dout_h{j}", f"{{dE/dout_o1}}*{{dout_o1/dnet_o1}}*{{{first}}}+{{dE/dout_o2}}*{{dout_o2/dnet_o2}}*"
                            f"{{{second}}}")
    for n, j, src in [(1, 1, "i1"), (2, 1, "i2"), (3, 2, "i1"), (4, 2, "i2")]:
        unit = "out_h1" if wrong_unit and n in (3, 4) else f"out_h{j}"
        put(f"dE/dw{n}", f"{{dE/dout_h{j}}}*{{{unit}}}*(1-{{{unit}}})*{{{src}}}")
    for n in range(1, 9):
        put(f"w{n}+", f"{{w{n}}}-{{eta}}*{{dE/dw{n}}}")
    wb.save(path)
    return path


@pytest.mark.libreoffice
@pytest.mark.parametrize("wrong_unit", [False, True])
def test_a_step_written_down_one_column_is_graded(tmp_path, soffice, wrong_unit):
    saved = recalculate_all([step_by_step(tmp_path / "step.xlsx", wrong_unit)], tmp_path / "saved")[0]
    graded = grade_file(saved)
    assert [t.iterations for t in graded.tables] == [1]
    if not wrong_unit:
        assert graded.status == "correct"
        return
    findings = {f.quantity: f for f in graded.tables[0].findings}
    assert findings["∂E/∂w3"].why == "∂E/∂w3 uses a_h1 where a_h2 belongs"  # from its formula and its value
    assert findings["w3+"].why == "follows from ∂E/∂w3 (iteration 0)"
