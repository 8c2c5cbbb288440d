import math
import re
import zipfile

import numpy as np
import openpyxl
import pytest

from sheetprop import api, template, workbook
from sheetprop.book import Book, OutputError
from sheetprop.layout import TrainingLayout, training_sheet_name
from sheetprop.quantities import Grad, Input, Param, Total
from sheetprop.reference import train
from tests.conftest import CLASSIC_LRS
from tests.xlsx import chart_sheets, charts, gnumeric_sheets, libreoffice_sheets


def test_sheets_are_network_equations_compare_gradient_check_then_one_per_learning_rate(classic_book):
    wb = openpyxl.load_workbook(classic_book, read_only=True)
    assert wb.sheetnames[:4] == ["Network", "Equations", "Compare", "Gradient check"]
    assert wb.sheetnames[4:10] == [f"Training {n}" for n in range(1, 7)] == [training_sheet_name(s) for s in range(6)]


def test_every_training_cell_is_a_formula_carrying_the_reference_value(classic_book, classic):
    formulas_wb = openpyxl.load_workbook(classic_book)
    values_wb = openpyxl.load_workbook(classic_book, data_only=True)
    trace = train(classic, CLASSIC_LRS, 100)
    for slot, lr in enumerate(CLASSIC_LRS):
        layout = TrainingLayout(classic, 100, training_sheet_name(slot))
        fs, vs = formulas_wb[layout.sheet], values_wb[layout.sheet]
        assert fs[layout.lr_cell.replace("$", "")].value == f"=lr_{slot + 1}"
        for q in layout.columns:
            want = trace.values(q)[slot]
            for it in range(101):
                cell = layout.cell(q, it)
                assert str(fs[cell].value).startswith("="), (layout.sheet, cell)
                assert vs[cell].value == want[it]


def test_row_zero_takes_initial_weights_and_later_rows_update_them(classic_book, classic):
    layout = TrainingLayout(classic, 100, training_sheet_name(CLASSIC_LRS.index(0.5)))
    ws = openpyxl.load_workbook(classic_book)[layout.sheet]
    w5 = Param(2, 0, 0)
    assert ws[layout.cell(w5, 0)].value == "=w5_init"
    assert ws[layout.cell(w5, 3)].value == "=F8-$B$2*AC8"
    assert ws.freeze_panes == "B6"


def test_inputs_have_defined_names_and_learning_rates_are_validated(classic_book):
    wb = openpyxl.load_workbook(classic_book)
    names = set(wb.defined_names)
    expected = {"input_i1", "input_i2", "target_t1", "target_t2", "error_target"}
    expected |= {f"w{i}_init" for i in range(1, 9)} | {f"lr_{k}" for k in range(1, 7)}
    assert expected <= names
    sheet, ref = next(iter(wb.defined_names["w1_init"].destinations))
    assert (sheet, wb[sheet][ref.replace("$", "")].value) == ("Network", 0.15)
    validated = {str(r) for dv in wb["Network"].data_validations.dataValidation
                 if dv.type == "decimal" and dv.operator == "greaterThan" for r in dv.sqref.ranges}
    lr_cells = {next(iter(wb.defined_names[f"lr_{k}"].destinations))[1].replace("$", "") for k in range(1, 7)}
    assert lr_cells == validated


def test_equations_sheet_gives_each_gradient_with_its_value(classic_book, classic):
    values = openpyxl.load_workbook(classic_book, data_only=True)["Equations"]
    rows = {r[0]: r for r in values.iter_rows(values_only=True) if r[0]}
    w1 = rows["∂E_total/∂w1"]
    assert w1[2] == "= ((a_o1 − t1)·a_o1·(1−a_o1)·w5 + (a_o2 − t2)·a_o2·(1−a_o2)·w7)·a_h1·(1−a_h1)·i1"
    assert w1[1] == "= ∂E_total/∂a_h1 · ∂a_h1/∂h1 · ∂h1/∂w1"
    trace = train(classic, [0.1], 0)
    assert w1[3] == trace.grads[0, 0, 0]
    assert rows["E_total"][3] == trace.total[0, 0]


def test_compare_chart_has_one_series_per_learning_rate_on_the_training_ranges(classic_book, classic):
    found = charts(classic_book)
    by_part = {c["part"]: c for c in found}
    compare = [by_part[p] for p in chart_sheets(classic_book)["Compare"]]
    big = next(c for c in compare if c["title"].startswith("E_total vs iteration"))
    expected = []
    for slot in range(len(CLASSIC_LRS)):
        layout = TrainingLayout(classic, 100, training_sheet_name(slot))
        expected.append({"x": layout.column_range(None), "y": layout.column_range(Total())})
    assert [{"x": s["x"], "y": s["y"]} for s in big["series"]] == expected
    singles = [c for c in compare if len(c["series"]) == 1]
    assert [{"x": c["series"][0]["x"], "y": c["series"][0]["y"]} for c in singles] == expected


def test_summary_table_on_compare_sheet_matches_the_reference(classic_book, classic):
    ws = openpyxl.load_workbook(classic_book, data_only=True)["Compare"]
    rows = [r for r in ws.iter_rows(min_row=6, max_row=11, values_only=True)]
    for row, s in zip(rows, workbook.summarize(train(classic, CLASSIC_LRS, 100))):
        assert row[0] == s.lr and row[2] == s.start and row[3] == s.end
        assert row[4] == ("never" if s.first_below is None else s.first_below)


def test_failed_build_leaves_no_file_behind(tmp_path, classic, monkeypatch):
    def explode(*args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(workbook, "_compare_sheet", explode)
    out = tmp_path / "book.xlsx"
    with pytest.raises(RuntimeError):
        workbook.build(classic, [0.5], 10, out)
    assert list(tmp_path.iterdir()) == []


def test_failed_rebuild_keeps_the_previous_file(tmp_path, classic, monkeypatch):
    out = tmp_path / "book.xlsx"
    workbook.build(classic, [0.5], 10, out)
    before = out.read_bytes()
    monkeypatch.setattr(workbook, "_compare_sheet", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        workbook.build(classic, [0.5, 1.0], 10, out, force=True)
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["book.xlsx"]


def test_book_refuses_existing_file_without_force(tmp_path):
    (tmp_path / "a.xlsx").write_bytes(b"keep")
    with pytest.raises(OutputError, match="already exists"):
        Book(tmp_path / "a.xlsx")
    assert (tmp_path / "a.xlsx").read_bytes() == b"keep"


def test_written_file_is_a_complete_zip(classic_book):
    with zipfile.ZipFile(classic_book) as z:
        assert z.testzip() is None
        assert "xl/workbook.xml" in z.namelist()


def test_cached_values_are_finite_at_huge_learning_rate(tmp_path, classic):
    out = tmp_path / "huge.xlsx"
    workbook.build(classic, [1000.0], 1000, out)
    ws = openpyxl.load_workbook(out, data_only=True, read_only=True)[training_sheet_name(0)]
    values = [v for row in ws.iter_rows(min_row=6, values_only=True) for v in row]
    assert len(values) == 1001 * 32 and np.isfinite(np.array(values, dtype=float)).all()


def test_a_build_streamed_in_blocks_caches_every_value_of_the_whole_trace(classic, tmp_path, monkeypatch):
    # the reference streams blocks of rows to the writer; blocks of 7 rows put many seams in 30 iterations
    blocks = workbook.chunks
    monkeypatch.setattr(workbook, "chunks", lambda *args, **kwargs: blocks(*args, size=7, **kwargs))
    out = tmp_path / "blocks.xlsx"
    summary = workbook.build(classic, [0.5, 2.0], 30, out)
    trace = train(classic, [0.5, 2.0], 30)
    assert summary == workbook.summarize(trace)
    formulas_wb, values_wb = openpyxl.load_workbook(out), openpyxl.load_workbook(out, data_only=True)
    for slot in range(2):
        layout = TrainingLayout(classic, 30, training_sheet_name(slot))
        for q in layout.columns:
            got = [values_wb[layout.sheet][layout.cell(q, it)].value for it in range(31)]
            assert got == trace.values(q)[slot].tolist(), q
        w1 = Param(1, 0, 0)  # a filled-down column across the seams: each row refers to the one above
        assert [formulas_wb[layout.sheet][layout.cell(w1, it)].value for it in (6, 7, 8)] == [
            f"=B{layout.row(it)}-$B$2*{layout.cell(Grad(w1), it - 1)}" for it in (6, 7, 8)]


def test_a_diverging_run_is_reported_as_diverged_without_warnings(tmp_path, recwarn):
    from sheetprop import api

    linear = {"name": "linear", "loss": "l2", "inputs": ["x"], "targets": ["y"],
              "sample": {"inputs": [3.0], "targets": [1.0]},
              "layers": [{"size": 1, "activation": "identity", "bias": False, "weights": [[0.5]]}]}
    built = api.build(linear, [0.1, 10.0], iterations=2000, out=tmp_path / "linear.xlsx")
    stable, diverging = built.summary
    assert stable.diverged is None and diverging.diverged is not None and diverging.first_below is None
    w, k = 0.5, 0  # the same descent in plain floats: the first iteration whose E_total or w is not finite
    while math.isfinite(w) and math.isfinite(0.5 * (w * 3.0 - 1.0) * (w * 3.0 - 1.0)):
        w, k = w - 10.0 * (w * 3.0 - 1.0) * 3.0, k + 1
    assert diverging.diverged == k
    line = built.table().splitlines()[-1]
    assert "diverged" in line and "nan" not in line.lower()
    assert [w for w in recwarn if issubclass(w.category, RuntimeWarning)] == []


def test_the_equations_sheet_states_each_activation_once_and_the_samples_plainly(tmp_path):
    from sheetprop import template

    net = template.load("deep")  # tanh hidden layers, 4 samples, mean loss
    out = tmp_path / "deep.xlsx"
    workbook.build(net, [0.5], 3, out)
    wb = openpyxl.load_workbook(out, read_only=True)
    equations = [r[2] for r in wb["Equations"].iter_rows(values_only=True) if r[2] and str(r[2]).startswith("= tanh")]
    assert equations and all(e.count("tanh") == 1 for e in equations), equations[:3]
    network = [c for r in wb["Network"].iter_rows(values_only=True) for c in r if isinstance(c, str)]
    assert any(c.startswith("Samples (4; E_total is the mean of their losses)") for c in network)
    assert not any("meaned" in c for c in network)


# Texts an engine could read as an escape _xHHHH_ (Excel), _xH_ … _xHHHH_ (LibreOffice), or that xlsxwriter escapes.
ESCAPE_SHAPED = ["_x1_", "_x00A1_", "_x005F_", "input_x1_s1", "a_x1_x2_b", "_X0041_", "__x12_", "_xA_", "_x_", "plain"]


@pytest.mark.libreoffice
@pytest.mark.parametrize("constant_memory", [True, False], ids=["inline strings", "shared strings"])
def test_texts_shaped_like_escapes_show_as_written_in_openpyxl_libreoffice_and_gnumeric(soffice, ssconvert, tmp_path,
                                                                                       constant_memory):
    path = tmp_path / "texts.xlsx"
    with Book(path, constant_memory=constant_memory) as book:
        ws = book.add_sheet("Texts")
        for row, text in enumerate(ESCAPE_SHAPED):  # every way a text reaches a cell
            ws.write(row, 0, text, book.formats.note)
            ws.write_string(row, 1, text)
            book.write_row(ws, row, 2, [text], book.formats.label)
            ws.merge_range(row, 3, row, 4, text, book.formats.subtitle)
            ws.write_url(row, 5, "internal:Texts!A1", string=text)
    want = [[text, text, text, text, "", text] for text in ESCAPE_SHAPED]
    assert [row[:6] for row in libreoffice_sheets(path, tmp_path / "lo")["Texts"]] == want
    assert [row[:6] for row in gnumeric_sheets(path, ssconvert, tmp_path / "gnumeric")[0]] == want
    # openpyxl drops every "x005F_" from a shared string, whatever the file holds: its own reading
    read = [[c.value or "" for c in row[:6]] for row in openpyxl.load_workbook(path)["Texts"].iter_rows()]
    assert [r for r, w in zip(read, want) if constant_memory or "x005F_" not in w[0]] == [
        w for w in want if constant_memory or "x005F_" not in w[0]]


@pytest.mark.libreoffice
def test_the_deep_templates_defined_names_show_as_written_in_libreoffice_and_gnumeric(soffice, ssconvert, tmp_path):
    net = template.load("deep")
    path = tmp_path / "deep.xlsx"
    api.build(net, [0.5], 2, path)
    names = {Input(k, s).defined_name(net) for s in range(net.samples) for k in range(net.size(0))}
    assert "input_x1_s1" in names
    libreoffice = libreoffice_sheets(path, tmp_path / "lo")["Network"]
    gnumeric = gnumeric_sheets(path, ssconvert, tmp_path / "gnumeric")[0]
    written = {c.value: (c.row - 1, c.column - 1) for row in openpyxl.load_workbook(path)["Network"].iter_rows()
               for c in row if c.value in names}
    assert set(written) == names
    for text, (r, c) in written.items():
        assert (libreoffice[r][c], gnumeric[r][c]) == (text, text)


@pytest.fixture(scope="module")
def adam_book(tmp_path_factory):
    """classic with gradient descent and Adam: Adam's v of the first step is about 3.5e-11 for w1."""
    path = tmp_path_factory.mktemp("adam") / "adam.xlsx"
    api.build("classic", [0.5], 1, path, optimizers=["sgd", "adam"])
    return path


def test_the_equations_sheet_shows_tiny_and_huge_values_in_scientific_notation(adam_book, ssconvert, tmp_path):
    """Gnumeric shows the conditional format (LibreOffice draws it too, but leaves it out of a CSV export)."""
    ws = openpyxl.load_workbook(adam_book)["Equations"]
    [rule_range] = [str(r.sqref) for r in ws.conditional_formatting]
    assert rule_range == f"D4:D{ws.max_row}"
    sheets = gnumeric_sheets(adam_book, ssconvert, tmp_path, shown=True)
    shown = {row[0]: row[3] for row in sheets[ws.parent.sheetnames.index("Equations")] if len(row) > 3}
    assert re.fullmatch(r"3\.54\d{4}E[−-]11", shown["v(w1)"]), shown["v(w1)"]
    assert shown["E_total"] == "0.242519857"  # within 1e-4 … 1e6: nine decimals, as before
    assert re.fullmatch(r"[−-]0\.349973442", shown["w1 ←"])  # Adam's step (the last w1 ←): a minus, once


def test_the_equations_sheet_headings_are_not_cut_by_the_cells_beside_them(adam_book):
    """Each heading is merged across as many columns as it needs (its text at 12 pt bold, about 1.3 characters of
    the column widths' 11 pt each), and the update rule beside an update heading wraps in rows tall enough."""
    ws = openpyxl.load_workbook(adam_book)["Equations"]
    widths = [ws.column_dimensions[c].width for c in "ABCD"]
    merged = {(m.min_row, m.min_col): m for m in ws.merged_cells.ranges}
    headings = [c for c in ws["A"] if c.font.sz == 12 and c.font.b]
    assert [h.value for h in headings if h.value.startswith("Update")] == ["Update: Gradient descent", "Update: Adam"]
    for heading in headings:
        span = merged[(heading.row, 1)]
        assert 1.3 * len(heading.value) <= sum(widths[span.min_col - 1 : span.max_col]), heading.value
        if heading.value.startswith("Update"):
            rule = ws.cell(heading.row, 3)
            assert rule.alignment.wrap_text and merged[(heading.row, 3)].max_col == 4
            lines = -(-len(rule.value) // int(widths[2] + widths[3]))
            assert (ws.row_dimensions[heading.row].height or 15) >= 15 * lines, rule.value
