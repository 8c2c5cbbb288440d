"""Check a workbook: recalculate it in LibreOffice and compare every training cell with the reference.

The inputs are read from the file itself (after any edits), so a workbook whose weights or
learning rates were changed by hand is checked against the reference for those new values.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
from openpyxl.utils import get_column_letter

from sheetprop import limits, template
from sheetprop.layout import TrainingLayout, lr_name
from sheetprop.network import Network
from sheetprop.quantities import Input, Target
from sheetprop.recalc import recalculated_copy
from sheetprop.reference import train
from sheetprop.workbook import META_SHEET

# LibreOffice returns exactly 0 for the difference of two nearly equal numbers, where numpy
# keeps a residue of ~1e-17; below this magnitude values are compared on this scale instead.
FLOOR = 1e-6
EXCEL_ERRORS = ("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "Err:")


class VerifyError(ValueError):
    """The file is not a sheetprop workbook, or cannot be read."""


@dataclass
class Report:
    cells: int = 0
    max_difference: float = 0.0
    worst: tuple[str, str, float, float] | None = None  # sheet, cell, reference, workbook
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    over_limits: list[tuple[str, str, str]] = field(default_factory=list)  # sheet, cell, which limit

    def ok(self, tolerance: float) -> bool:
        return not self.errors and not self.over_limits and self.cells > 0 and self.max_difference <= tolerance


def relative_difference(got: float, want: float, floor: float = 0.0) -> float:
    """|got − want| relative to the larger magnitude, or to ``floor`` if that is larger (0 when both are 0)."""
    scale = max(abs(got), abs(want), floor)
    return 0.0 if scale == 0 else abs(got - want) / scale


def _name_cell(wb, name: str) -> tuple[str, str]:
    if name not in wb.defined_names:
        raise VerifyError(f"defined name {name!r} is missing")
    sheet, ref = next(iter(wb.defined_names[name].destinations))
    return sheet, ref.replace("$", "")


def read_setup(formulas_wb, values_wb, source: str) -> tuple[Network, list[float], int, list[str]]:
    """The network, learning rates, iterations and training sheets as the workbook holds them now."""
    if META_SHEET not in formulas_wb.sheetnames:
        raise VerifyError(f"{source} was not written by sheetprop (no {META_SHEET} sheet)")
    meta = formulas_wb[META_SHEET]
    iterations = int(meta.cell(2, 1).value)
    text = "".join(str(c.value) for c in meta[3] if c.value is not None)
    sheets = [str(c.value) for c in meta[4] if c.value is not None]
    net = template.from_dict(json.loads(text), source)

    def value(name: str) -> float:
        sheet, ref = _name_cell(formulas_wb, name)
        v = values_wb[sheet][ref].value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise VerifyError(f"{name} ({sheet}!{ref}) holds {v!r}, not a number")
        return float(v)

    inputs = [[value(Input(k, s).defined_name(net)) for k in range(net.size(0))] for s in range(net.samples)]
    targets = [[value(Target(j, s).defined_name(net)) for j in range(net.size(net.depth))]
               for s in range(net.samples)]
    initial = {p: value(p.defined_name(net)) for p in net.params}
    lrs = [value(lr_name(slot)) for slot in range(len(sheets))]
    return net.with_values(inputs, targets, initial), lrs, iterations, sheets


def scan_errors(values_wb) -> list[tuple[str, str, str]]:
    """Every cell that holds an error value."""
    found = []
    for ws in values_wb.worksheets:
        for r, row in enumerate(ws.iter_rows(values_only=True), start=1):
            for c, v in enumerate(row, start=1):
                if isinstance(v, str) and v.startswith(EXCEL_ERRORS):
                    found.append((ws.title, f"{get_column_letter(c)}{r}", v))
    return found


def scan_limits(formulas_wb) -> list[tuple[str, str, str]]:
    """Every formula or text cell beyond Excel's limits (length, nesting, arguments)."""
    found = []
    for ws in formulas_wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                value = getattr(cell.value, "text", cell.value)  # array formulas keep theirs in .text
                if not isinstance(value, str):
                    continue
                try:
                    if cell.data_type == "f":
                        limits.check_formula(value, "this cell")
                    else:
                        limits.check_text(value, "this cell")
                except limits.LimitError as exc:
                    found.append((ws.title, cell.coordinate, str(exc)))
    return found


def compare(values_wb, net: Network, lrs: list[float], iterations: int, sheets: list[str],
            floor: float = FLOOR) -> Report:
    """Hold every training-sheet cell against the reference trace for the same inputs."""
    trace = train(net, lrs, iterations)
    report = Report()
    for slot, sheet in enumerate(sheets):
        layout = TrainingLayout(net, iterations, sheet)
        ws = values_wb[sheet]
        cols = {layout.col(q): q for q in layout.columns}
        expected = {c: trace.values(q)[slot] for c, q in cols.items()}
        for r, row in enumerate(ws.iter_rows(min_row=layout.FIRST_ROW + 1, max_row=layout.last_row + 1,
                                             values_only=True)):
            for c, want in expected.items():
                got = row[c] if c < len(row) else None
                if not isinstance(got, (int, float)) or isinstance(got, bool):
                    report.errors.append((sheet, f"{get_column_letter(c + 1)}{r + layout.FIRST_ROW + 1}",
                                          repr(got)))
                    continue
                d = relative_difference(float(got), float(want[r]), floor)
                report.cells += 1
                if d > report.max_difference or math.isnan(d):
                    report.max_difference = d
                    cell = f"{get_column_letter(c + 1)}{r + layout.FIRST_ROW + 1}"
                    report.worst = (sheet, cell, float(want[r]), float(got))
    return report


def verify(path: str | Path) -> Report:
    """Recalculate ``path`` in LibreOffice and compare it with the reference for its own inputs."""
    path = Path(path)
    if not path.is_file():
        raise VerifyError(f"{path} does not exist")
    try:
        formulas_wb = openpyxl.load_workbook(path, read_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not a workbook
        raise VerifyError(f"{path} is not a readable .xlsx workbook ({type(exc).__name__})") from None
    recalculated, tmp = recalculated_copy(path)
    with tmp:
        values_wb = openpyxl.load_workbook(recalculated, data_only=True, read_only=True)
        net, lrs, iterations, sheets = read_setup(formulas_wb, values_wb, str(path))
        report = compare(values_wb, net, lrs, iterations, sheets)
        report.errors += scan_errors(values_wb)
        values_wb.close()
    report.over_limits = scan_limits(formulas_wb)
    formulas_wb.close()
    return report

