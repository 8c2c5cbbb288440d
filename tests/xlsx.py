"""Helpers for reading workbooks back: recalculated values against cached ones, charts and raw XML."""

import csv
import math
import re
import subprocess
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import openpyxl
from openpyxl.utils.cell import column_index_from_string, get_column_letter

from sheetprop.layout import GRADIENT_CHECK_SHEET
from sheetprop.readback import SavedBook
from sheetprop.recalc import _profile_dir, find_soffice
from sheetprop.verification import relative_difference, scan_errors

# A central difference (E(p + h) − E(p − h)) / 2h carries the rounding of E magnified by 1/h (about 1e-11 at
# h = 1e-5), which each engine rounds its own way: its cells agree to 1e-9 on a scale of 100, not relatively.
SHEET_FLOORS = {GRADIENT_CHECK_SHEET: 100.0}

NS = {"c": "http://schemas.openxmlformats.org/drawingml/2006/chart",
      "a": "http://schemas.openxmlformats.org/drawingml/2006/main"}


def charts(path: Path) -> list[dict]:
    """Every chart in the file: its title and its series' category/value range formulas and marker."""
    out = []
    with zipfile.ZipFile(path) as z:
        for name in sorted(n for n in z.namelist() if re.match(r"xl/charts/chart\d+\.xml", n)):
            root = ElementTree.fromstring(z.read(name))
            title = "".join(t.text or "" for t in root.findall("c:chart/c:title//a:t", NS))
            series = []
            for ser in root.iter(f"{{{NS['c']}}}ser"):
                refs = {}
                for tag in ("xVal", "cat", "yVal", "val"):
                    f = ser.find(f"c:{tag}//c:f", NS)
                    if f is not None:
                        refs["x" if tag in ("xVal", "cat") else "y"] = f.text
                label = ser.find("c:tx//c:v", NS)
                if label is None:
                    label = ser.find("c:tx//c:f", NS)
                refs["name"] = label.text if label is not None else None
                symbol = ser.find("c:marker/c:symbol", NS)
                refs["marker"] = symbol.get("val") if symbol is not None else None
                series.append(refs)
            out.append({"part": name, "title": title, "series": series})
    return out


def chart_sheets(path: Path) -> dict[str, list[str]]:
    """Which sheet shows which chart parts (sheet name → chart part names)."""
    with zipfile.ZipFile(path) as z:
        wb = ElementTree.fromstring(z.read("xl/workbook.xml"))
        rels = ElementTree.fromstring(z.read("xl/_rels/workbook.xml.rels"))
        target = {r.get("Id"): r.get("Target") for r in rels}
        ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
        rid = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
        out = {}
        for s in wb.findall("m:sheets/m:sheet", ns):
            sheet_file = "xl/" + target[s.get(rid)]
            rel_file = sheet_file.replace("worksheets/", "worksheets/_rels/") + ".rels"
            parts = []
            if rel_file in z.namelist():
                for r in ElementTree.fromstring(z.read(rel_file)):
                    if r.get("Target", "").startswith("../drawings/"):
                        drawing = "xl/drawings/" + r.get("Target").split("/")[-1]
                        drel = drawing.replace("drawings/", "drawings/_rels/") + ".rels"
                        for d in ElementTree.fromstring(z.read(drel)):
                            if "charts/" in d.get("Target", ""):
                                parts.append("xl/charts/" + d.get("Target").split("/")[-1])
            out[s.get("name")] = parts
        return out


def assert_recalculation_matches_cache(book, recalculated, floor: float = 0.0) -> int:
    """Every formula cell of every sheet: LibreOffice's value equals the cached one; no error cells.

    Differences are relative to the larger value, or to ``floor`` when both are smaller."""
    fresh = openpyxl.load_workbook(recalculated, data_only=True)
    checked = 0
    for sheet, c, want in formula_cells(book):
        got = fresh[sheet][c.coordinate].value
        if isinstance(want, str):
            assert got == want, (sheet, c.coordinate)
        else:
            assert relative_difference(got, want, SHEET_FLOORS.get(sheet, floor)) <= 1e-9, (sheet, c.coordinate, want, got)
        checked += 1
    assert scan_errors(SavedBook(recalculated)) == []
    return checked


def formula_cells(book):
    """Every formula cell of every sheet (array formulas too), as (sheet, cell, its cached value)."""
    formulas_wb = openpyxl.load_workbook(book)
    cached = openpyxl.load_workbook(book, data_only=True)
    for ws in formulas_wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if c.data_type == "f" or isinstance(c.value, openpyxl.worksheet.formula.ArrayFormula):
                    yield ws.title, c, cached[ws.title][c.coordinate].value


def assert_gnumeric_matches_cache(book, ssconvert: str, out_dir: Path, floor: float = 0.0) -> int:
    """Every formula cell of every sheet recalculated by Gnumeric (`ssconvert --recalc`, a CSV per sheet)
    equals its cached value; no error values anywhere."""
    sheets = gnumeric_sheets(book, ssconvert, out_dir)
    formulas_wb = openpyxl.load_workbook(book)
    cached = openpyxl.load_workbook(book, data_only=True)
    checked = 0
    for i, ws in enumerate(formulas_wb.worksheets):
        rows = sheets[i]
        errors = [(ws.title, r, c, v) for r, row in enumerate(rows) for c, v in enumerate(row) if v.startswith("#")]
        assert not errors, errors[:5]
        for row in ws.iter_rows():
            for c in row:
                if c.data_type != "f" and not isinstance(c.value, openpyxl.worksheet.formula.ArrayFormula):
                    continue
                want = cached[ws.title][c.coordinate].value
                got = rows[c.row - 1][c.column - 1] if c.row <= len(rows) and c.column <= len(rows[c.row - 1]) else ""
                if isinstance(want, (int, float)):
                    assert relative_difference(float(got), want, SHEET_FLOORS.get(ws.title, floor)) <= 1e-9, (
                        ws.title, c.coordinate, want, got)
                else:
                    assert got == (want or ""), (ws.title, c.coordinate, want, got)
                checked += 1
    return checked


def with_inputs(book: Path, edits: dict, out: Path) -> Path:
    """A copy of ``book`` at ``out`` with defined-name inputs set, as a person would type them (through
    openpyxl, which keeps every cell but not the charts)."""
    wb = openpyxl.load_workbook(book)
    for name, value in edits.items():
        sheet, ref = next(iter(wb.defined_names[name].destinations))
        wb[sheet][ref.replace("$", "")] = value
    wb.save(out)
    return out


def libreoffice_sheets(book: Path, out_dir: Path) -> dict[str, list[list[str]]]:
    """Every sheet as LibreOffice shows it after recalculating (texts, and numbers in their number formats; a
    conditional format is not applied), sheet name → rows of text."""
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([find_soffice(), f"-env:UserInstallation={_profile_dir().as_uri()}", "--headless", "--norestore",
                    "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true,false,false,-1",
                    "--outdir", str(out_dir), str(book)], check=True, capture_output=True)
    sheets = {}
    for name in openpyxl.load_workbook(book, read_only=True).sheetnames:
        with open(out_dir / f"{book.stem}-{name}.csv", newline="", encoding="utf-8") as f:
            sheets[name] = list(csv.reader(f))
    return sheets


def gnumeric_sheets(book: Path, ssconvert: str, out_dir: Path, shown: bool = False) -> list[list[list[str]]]:
    """Every sheet as Gnumeric recalculates it (`ssconvert --recalc`, a CSV per sheet), as rows of text: the
    values, or (``shown``) the numbers as their formats show them, conditional formats applied."""
    out_dir.mkdir(parents=True, exist_ok=True)
    as_shown = ["--export-type=Gnumeric_stf:stf_assistant", "-O", "format=preserve"] if shown else []
    subprocess.run([ssconvert, "--recalc", *as_shown, "-S", str(book), str(out_dir / "sheet.csv")], check=True,
                   capture_output=True)
    sheets = []
    for i in range(len(openpyxl.load_workbook(book, read_only=True).sheetnames)):
        with open(out_dir / f"sheet.csv.{i}", newline="", encoding="utf-8") as f:
            sheets.append(list(csv.reader(f)))
    return sheets


# A single cell of the `formulas` package's solution: "'[book.xlsx]SHEET NAME'!B7" (the sheet name upper-cased).
_FORMULAS_CELL = re.compile(r"^'\[[^\]]+\](.+)'!\$?([A-Z]+)\$?([0-9]+)$")


def formulas_values(path: Path) -> dict[str, dict[tuple[int, int], object]]:
    """Every cell as the `formulas` package (Excel's function semantics, in Python) recalculates it:
    sheet name (as the workbook spells it) → {(row, column), 1-based: value}. A value is a float, a bool,
    a str, or the package's ``XlError`` for an error value (a ``str`` subclass: "#NUM!", "#VALUE!", …).

    ``ExcelModel().loads(path).finish().calculate()`` returns a dict keyed "'[name.xlsx]SHEET'!A1" (sheet names
    upper-cased), ranges "'[…]SHEET'!A1:A8" and defined names "'[…]'!LR_1" (both skipped here: their cells are
    reported one by one too), each a ``Ranges`` whose ``.value`` is a 2-D array."""
    import formulas  # imported here: the rest of the tests do not need it

    names = {name.upper(): name for name in openpyxl.load_workbook(path, read_only=True).sheetnames}
    out: dict[str, dict[tuple[int, int], object]] = {name: {} for name in names.values()}
    solution = formulas.ExcelModel().loads(str(path)).finish().calculate()
    for key, ranges in solution.items():
        match = _FORMULAS_CELL.match(key)
        if not match:
            continue
        value = np.asarray(getattr(ranges, "value", ranges)).reshape(-1)[0]
        if isinstance(value, np.generic):
            value = value.item()
        out[names[match.group(1)]][(int(match.group(3)), column_index_from_string(match.group(2)))] = value
    return out


def formulas_errors(values: dict[str, dict[tuple[int, int], object]]) -> list[tuple[str, str, str]]:
    """Every cell of :func:`formulas_values` that holds an error value, as (sheet, cell, error) like
    :func:`sheetprop.verification.scan_errors`."""
    from formulas.tokens.operand import XlError

    return [(sheet, f"{get_column_letter(c)}{r}", str(v)) for sheet, cells in values.items()
            for (r, c), v in sorted(cells.items()) if isinstance(v, XlError)]


def gnumeric_errors(book: Path, ssconvert: str, out_dir: Path) -> list[tuple[str, str, str]]:
    """Every cell that holds an error value after Gnumeric recalculates ``book``, as (sheet, cell, error)."""
    names = openpyxl.load_workbook(book, read_only=True).sheetnames
    return [(names[i], f"{get_column_letter(c + 1)}{r + 1}", v)
            for i, rows in enumerate(gnumeric_sheets(book, ssconvert, out_dir))
            for r, row in enumerate(rows) for c, v in enumerate(row) if v.startswith("#")]


def assert_formulas_matches_cache(book: Path, floor: float = 0.0) -> int:
    """Every formula cell of every sheet recalculated by the `formulas` package equals its cached value, to
    the tolerance of the LibreOffice and Gnumeric checks (relative 1e-9, SHEET_FLOORS); no error value
    anywhere. Returns the number of formula cells compared."""
    values = formulas_values(book)
    errors = formulas_errors(values)
    assert not errors, errors[:5]
    checked = 0
    for sheet, c, want in formula_cells(book):
        assert (c.row, c.column) in values[sheet], (sheet, c.coordinate, "not calculated")
        got = values[sheet][(c.row, c.column)]
        if isinstance(want, (int, float)) and not isinstance(want, bool):
            assert isinstance(got, (int, float)) and math.isfinite(got), (sheet, c.coordinate, want, got)
            assert relative_difference(got, want, SHEET_FLOORS.get(sheet, floor)) <= 1e-9, (sheet, c.coordinate, want, got)
        else:
            assert got == want, (sheet, c.coordinate, want, got)
        checked += 1
    return checked
