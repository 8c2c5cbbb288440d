"""The private parts of xlsxwriter and click that sheetprop relies on: if these fail after an upgrade,
update sheetprop/rows.py or sheetprop/book.py's TextWorksheet (xlsxwriter) or sheetprop/cli.py's ManyValues
(click) before widening the version bounds in pyproject.toml."""

import inspect
import zipfile
from importlib.metadata import version
from xml.etree import ElementTree

import numpy as np
import openpyxl
import xlsxwriter
from click.testing import CliRunner
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from sheetprop.cli import main
from sheetprop.rows import FormulaRowsWorksheet


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_xlsxwriter_internals_used_by_the_fast_row_writer_are_unchanged():
    assert version("xlsxwriter").split(".")[0] == "3", "sheetprop.rows was written against xlsxwriter 3"
    assert parameters(Worksheet._write_single_row) == ["self", "current_row_num"]
    assert parameters(Worksheet._check_dimensions) == ["self", "row", "col", "ignore_row", "ignore_col"]
    assert parameters(Format._get_xf_index) == ["self"]
    wb = xlsxwriter.Workbook(None, {"constant_memory": True, "in_memory": False})
    ws = wb.add_worksheet()
    for name in ("constant_memory", "previous_row", "fh", "table"):
        assert hasattr(ws, name), f"xlsxwriter worksheets no longer have .{name}"


def test_xlsxwriter_internals_used_by_the_text_worksheet_are_unchanged():
    """Every text reaches a cell through _write_string (write, write_string, merge_range, write_url, tables)."""
    assert parameters(Worksheet._write_string) == ["self", "row", "col", "string", "cell_format"]
    assert parameters(Worksheet._write_rich_string) == ["self", "row", "col", "args"]
    calls = []
    wb = xlsxwriter.Workbook(None, {"in_memory": True})
    ws = wb.add_worksheet()
    ws._write_string = lambda *args: calls.append(args[2]) or 0
    ws.write(0, 0, "a")
    ws.write_row(1, 0, ["b"])
    ws.merge_range(2, 0, 2, 1, "c")
    ws.write_url(3, 0, "internal:Sheet1!A1", string="d")
    ws.add_table(4, 0, 5, 0, {"data": [["e"]], "columns": [{"header": "f"}]})
    assert calls == ["a", "b", "c", "d", "f", "e"]


def write_both_ways(path, rows: int = 40):
    """The same block of formulas through the fast writer and through xlsxwriter's public API."""
    templates = ["=B{1}+1", "=B{0}*C{1}-$B$2", '=IF(B{0}>=0,"a<b&c",C{1})']
    values = np.arange(rows * 3, dtype=float).reshape(rows, 3) / 7
    values[5, 1] = np.inf  # a value the reference could not represent
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    fmt = wb.add_format({"num_format": "0.00"})
    for name, fast in (("fast", True), ("public", False)):
        ws = wb.add_worksheet(name, worksheet_class=FormulaRowsWorksheet if fast else None)
        ws.write_string(0, 0, "before")
        cells = [(c + 1, t, fmt) for c, t in enumerate(templates)]
        if fast:
            write = ws.formula_rows(2, 0, rows, cells)
            write(range(7), values[:7])  # in two blocks, as a streamed build writes them
            write(range(7, rows), values[7:])
        else:
            for i in range(rows):
                ws.write_number(2 + i, 0, i)
                for (c, t, f), v in zip(cells, values[i]):
                    ws.write_formula(2 + i, c, t.format(3 + i, 2 + i), f, v if np.isfinite(v) else "#NUM!")
        ws.write_string(2 + rows, 0, "after")
    wb.close()


def test_fast_rows_read_back_exactly_like_xlsxwriters_own(tmp_path):
    path = tmp_path / "both.xlsx"
    write_both_ways(path)
    with zipfile.ZipFile(path) as z:  # well-formed XML everywhere
        for name in z.namelist():
            if name.endswith(".xml"):
                ElementTree.fromstring(z.read(name))
    for data_only in (False, True):
        wb = openpyxl.load_workbook(path, data_only=data_only)
        fast = [[c.value for c in row] for row in wb["fast"].iter_rows()]
        public = [[c.value for c in row] for row in wb["public"].iter_rows()]
        assert fast == public
        assert wb["fast"].max_row == 43 and wb["fast"]["A43"].value == "after"
    assert openpyxl.load_workbook(path)["fast"]["C9"].value == "=B9*C8-$B$2"


def test_click_internals_used_by_the_many_values_option_are_unchanged():
    assert version("click").split(".")[0] == "8", "sheetprop.cli.ManyValues was written against click 8"
    result = CliRunner().invoke(main, ["build", "--lr", "0.5", "1", "2", "--iterations", "2", "--help"])
    assert result.exit_code == 0
    ctx = main.make_context("sheetprop", ["build", "--lr", "0.5", "1", "--iterations", "3"], resilient_parsing=True)
    build = main.get_command(ctx, "build")
    sub = build.make_context("build", ["--lr", "0.5", "1", "--iterations", "3"])
    assert sub.params["learning_rates"] == (0.5, 1.0) and sub.params["iterations"] == 3
