"""Finding the training tables in a workbook someone built by hand: where each one is, which column (or row)
holds which quantity, and the fixed cells around it (inputs, targets, biases, η).

A table is a header line of quantity names (see :mod:`sheetprop.grading.headers`) with a line of numbers per
iteration below it, or the same turned sideways (names down a column, an iteration per column). Tables side
by side on one sheet are told apart where a name repeats. Nothing here knows the writer's layout: a
student's sheet has none of it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
from openpyxl.utils import get_column_letter
from openpyxl.utils.cell import column_index_from_string, coordinate_from_string

from sheetprop.grading.headers import canonical, keys, label_key

MIN_COLUMNS = 4  # quantity names a header line needs to be taken for a table
MIN_ROWS = 2  # iterations a table needs to be graded (the first, and one update) ...
ONE_STEP = {f"w{n}+" for n in range(1, 9)}  # ... unless one row holds the weights after its update too


class GradeError(ValueError):
    """A file that cannot be graded; the message says why, in one line."""


@dataclass(frozen=True)
class Cell:
    value: object  # what the cell shows: a number, a text, a bool, an error value, or None
    formula: str | None = None  # its formula, without the leading "=", or None for a typed value


@dataclass
class Sheet:
    """One sheet's cells by (row, column), both from 0."""

    name: str
    cells: dict[tuple[int, int], Cell]

    def number(self, at: tuple[int, int]) -> float | None:
        cell = self.cells.get(at)
        return _number(cell.value) if cell else None


def address(at: tuple[int, int]) -> str:
    return f"{get_column_letter(at[1] + 1)}{at[0] + 1}"


def _number(value: object) -> float | None:
    """A cell's number: a number, or a text that is one (typed with an apostrophe, which Excel's arithmetic
    reads as the number)."""
    if isinstance(value, str) and _NUMERIC.fullmatch(value.strip()):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


_NUMERIC = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass
class Table:
    """One training table: per key its cells, one per iteration, in order."""

    sheet: Sheet
    header: dict[str, tuple[int, int]]  # key → the header cell
    headers: dict[str, str]  # key → the header as written
    cells: dict[str, list[tuple[int, int]]]  # key → its cell at each iteration
    across: bool = False  # an iteration per column (names down a column)
    ambiguous: dict[str, tuple[str, ...]] = field(default_factory=dict)  # header cell → the keys it may be
    unrecognised: str | None = None  # names of a network other than 2-2-2 (w9, h3, …) among its headers
    unnamed: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # columns of numbers no header names

    @property
    def iterations(self) -> int:
        return len(next(iter(self.cells.values())))

    @property
    def complete(self) -> bool:
        """Whether it holds every weight w1..w8 (a table of some quantities only is not a training table)."""
        return all(f"w{n}" in self.cells for n in range(1, 9))

    @property
    def where(self) -> str:
        """sheet!A1:H9, the table's range."""
        every = [at for cells in self.cells.values() for at in cells] + list(self.header.values())
        rows, cols = [r for r, _ in every], [c for _, c in every]
        return f"{self.sheet.name}!{address((min(rows), min(cols)))}:{address((max(rows), max(cols)))}"

    def values(self, key: str) -> list[float | None]:
        return [self.sheet.number(at) for at in self.cells[key]]


@dataclass
class Book:
    """A workbook as read: its sheets, and its defined names that point at one cell."""

    sheets: list[Sheet]
    names: dict[str, tuple[str, tuple[int, int]]]  # defined name → (sheet, cell)

    def named(self) -> list[Fixed]:
        """The values of defined names that label an input (input_i1, target_t2, lr_1, eta)."""
        out = []
        by_name = {s.name: s for s in self.sheets}
        for name, (sheet, at) in self.names.items():
            key = label_key(name.replace("_", " "))
            value = by_name[sheet].number(at) if sheet in by_name else None
            if key is not None and value is not None:
                out.append(Fixed(key, value, at, sheet, name))
        return out


def read(path: Path) -> Book:
    """Every sheet's values and formulas, and the defined names. Values are the cached ones; a workbook saved
    without them (its formulas never computed) is recalculated in LibreOffice first."""
    suffix = path.suffix.lower()
    if suffix == ".xls":
        raise GradeError("an old Excel 97-2003 .xls file: save it as .xlsx (File → Save As) to grade it")
    if suffix not in (".xlsx", ".xlsm"):
        raise GradeError("not an .xlsx workbook")
    try:
        formulas = openpyxl.load_workbook(path, data_only=False)
        values = openpyxl.load_workbook(path, data_only=True)
    except Exception as exc:  # zipfile, XML and openpyxl raise many kinds for a file that is not a workbook
        raise GradeError(_unreadable(path, exc)) from None
    sheets = _sheets(formulas, values)
    if _uncomputed(sheets):
        sheets = _recalculated(path, formulas)
    names = {}
    for name, defined in formulas.defined_names.items():
        for sheet, ref in defined.destinations:
            if ":" not in ref:
                col, row = coordinate_from_string(ref.replace("$", ""))
                names[name] = (sheet, (row - 1, column_index_from_string(col) - 1))
    return Book(sheets, names)


def _unreadable(path: Path, exc: Exception) -> str:
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\xd0\xcf\x11\xe0"):  # an OLE container: an encrypted .xlsx or an old .xls
        return "password-protected or not an .xlsx workbook (an encrypted or Excel 97-2003 file)"
    return f"not a readable .xlsx workbook ({type(exc).__name__})"


def _sheets(formulas, values) -> list[Sheet]:
    out = []
    for ws in formulas.worksheets:
        shown = values[ws.title]
        cells = {}
        for row in ws.iter_rows():
            for cell in row:
                raw = cell.value
                if raw is None:
                    continue
                text = raw.text if hasattr(raw, "text") else raw  # an array formula
                formula = text[1:] if isinstance(text, str) and text.startswith("=") else None
                value = shown.cell(cell.row, cell.column).value if formula is not None else raw
                cells[(cell.row - 1, cell.column - 1)] = Cell(value, formula)
        out.append(Sheet(ws.title, cells))
    return out


def _uncomputed(sheets: list[Sheet]) -> bool:
    """Whether the formulas were saved without the values they compute (as some tools save them)."""
    formulas = [c for s in sheets for c in s.cells.values() if c.formula is not None]
    return bool(formulas) and sum(c.value is None for c in formulas) > len(formulas) / 2


def _recalculated(path: Path, formulas) -> list[Sheet]:
    from sheetprop.recalc import RecalcError, recalculated_copy

    try:
        copy, tmp = recalculated_copy(path)
    except RecalcError as exc:
        raise GradeError(f"its formulas were saved without their values, and computing them needs LibreOffice: "
                         f"{exc}") from None
    with tmp:
        return _sheets(formulas, openpyxl.load_workbook(copy, data_only=True))


# -- finding tables ---------------------------------------------------------------------------------------
def find(sheets: list[Sheet]) -> list[Table]:
    """Every training table of every sheet, in reading order."""
    found = []
    for sheet in sheets:
        for across in (False, True):
            found += _tables(sheet, across)
    return found


def _tables(sheet: Sheet, across: bool) -> list[Table]:
    """The tables whose header runs along a row (``across``: down a column)."""
    def at(line: int, pos: int) -> tuple[int, int]:
        return (pos, line) if across else (line, pos)

    lines: dict[int, dict[int, Cell]] = {}
    for (r, c), cell in sheet.cells.items():
        line, pos = (c, r) if across else (r, c)
        lines.setdefault(line, {})[pos] = cell
    tables = []
    for line in sorted(lines):
        for group in _groups(lines[line]):
            table = _table(sheet, line, group, lines, at, across)
            if table is not None:
                other = other_network(lines[line])
                if other is not None:
                    table.unrecognised = (f"its header names {other!r}: not the 2-2-2 network trained by gradient "
                                          f"descent (i1 i2, h1 h2, o1 o2, w1..w8) this grader knows")
                tables.append(table)
    return tables


_OTHER_NETWORK = re.compile(r"w(?:9|[1-9]\d+)|(?:net|out|a|z)?(?:h|o)[3-9]|(?:net|out|a|z)?h[12][12]|i3|t3|"
                            r"(?:[mvb]|m\u0302|v\u0302)w[1-8]")  # an optimizer's state: b(w1), m(w1), v̂(w1)


def other_network(cells: dict[int, Cell]) -> str | None:
    """A name of a network larger than 2-2-2 on the header line (w9, h3, o3, i3)."""
    for cell in cells.values():
        if isinstance(cell.value, str) and _OTHER_NETWORK.fullmatch(canonical(cell.value)):
            return cell.value
    return None


def _groups(cells: dict[int, Cell]) -> list[list[tuple[int, tuple[str, ...], str]]]:
    """The header line's named cells, split into tables where a name comes again or two cells stand empty."""
    groups: list[list[tuple[int, tuple[str, ...], str]]] = [[]]
    seen: set[str] = set()
    last = None
    for pos in sorted(cells):
        cell = cells[pos]
        if cell.formula is not None or not isinstance(cell.value, str):
            continue
        found = keys(cell.value)
        if not found:
            continue
        if (found[0] in seen and found[0] != "iteration") or (last is not None and pos - last > 3):
            groups.append([])
            seen = set()
        groups[-1].append((pos, found, cell.value))
        seen.add(found[0])
        last = pos
    return [g for g in groups if sum(k[0] not in ("iteration", "η") for _, k, _ in g) >= MIN_COLUMNS
            and any(k[0].startswith(("w", "∂E/∂w", "E_total")) for _, k, _ in g)]


def _table(sheet: Sheet, line: int, group, lines, at, across: bool) -> Table | None:
    """The table under one header group: the lines of numbers that follow it (one blank or text line allowed
    right under the header)."""
    positions = [pos for pos, _, _ in group]
    rows, skipped, nxt = [], 0, line + 1
    while True:
        cells = lines.get(nxt, {})
        numbers = sum(_number(cells[p].value) is not None for p in positions if p in cells)
        if numbers * 4 >= len(positions):  # a quarter: an exercise shows its forward pass, the rest still blank
            rows.append(nxt)
        elif rows or skipped >= 2:
            break
        else:
            skipped += 1
        nxt += 1
    keys_found = {found[0] for _, found, _ in group}
    if len(rows) < MIN_ROWS and not (rows and ONE_STEP <= keys_found):
        return None
    header, headers, cells, ambiguous = {}, {}, {}, {}
    for pos, found, text in group:
        key = found[0]
        if key in header:
            continue
        header[key], headers[key] = at(line, pos), text
        cells[key] = [at(r, pos) for r in rows]
        if len(found) > 1:
            ambiguous[key] = found
    unnamed = {}
    for pos in range(min(positions), max(positions) + 1):  # numbers under a header no rule reads
        if pos in positions:
            continue
        column = [at(r, pos) for r in rows]
        if sum(sheet.number(c) is not None for c in column) * 2 > len(rows):
            title = lines.get(line, {}).get(pos)
            name = title.value if title is not None and isinstance(title.value, str) else f"column {address(at(line, pos))}"
            unnamed[name] = column
    return Table(sheet, header, headers, cells, across, ambiguous, unnamed=unnamed)


# -- fixed cells ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fixed:
    """A value with a label beside it: i1 = 0.05, η = 0.5, b1 = 0.35."""

    key: str
    value: float
    at: tuple[int, int]  # the value's cell (the label's, for a value written into its label)
    sheet: str = ""
    name: str | None = None  # the defined name that points at it, if one does


def fixed(sheet: Sheet, inside: set[tuple[int, int]]) -> list[Fixed]:
    """Every labelled value of a sheet outside the tables' cells ``inside``: a number right of or below its
    label, or written in the label itself ("η = 0.5")."""
    out = []
    for (r, c), cell in sheet.cells.items():
        if (r, c) in inside or not isinstance(cell.value, str) or cell.formula is not None:
            continue
        key = label_key(cell.value)
        if key is None:
            continue
        written = re.search(r"[=:\s]\s*(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s*$", cell.value)
        if written:
            out.append(Fixed(key, float(written.group(1)), (r, c), sheet.name))
            continue
        for near in ((r, c + 1), (r + 1, c)):
            value = sheet.number(near)
            if value is not None and near not in inside:
                out.append(Fixed(key, value, near, sheet.name))
                break
    return out


def labelled_rate(text: str) -> float | None:
    """The η a sheet's name or a title gives: "lr=0.5", "eta 0.1", "η = 2" (None when it names none)."""
    match = re.search(r"(?:η|eta|lr|learning\s*rate|alpha|α)\s*[=:]?\s*(\d+(?:[.,]\d+)?(?:[eE]-?\d+)?)", text,
                      re.IGNORECASE)
    return float(match.group(1).replace(",", ".")) if match else None
