"""Writing sheets row by row in xlsxwriter's constant-memory mode, and writing long formula tables fast.

A training sheet repeats one formula template per column, row after row: what Excel itself
stores as a *shared formula* when a formula is filled down (the first cell holds the formula,
the cells below refer to it and shift its relative references). :class:`FormulaRowsWorksheet`
writes such blocks, one ``str.format`` call per row, where xlsxwriter would build every cell
through several Python calls and write its full formula. That relies on xlsxwriter internals
(``fh``, ``previous_row``, ``_write_single_row``, ``_check_dimensions``, ``Format._get_xf_index``):
pyproject.toml keeps xlsxwriter to the major version tested, and tests/test_internals.py fails
loudly if they change.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence
from xml.sax.saxutils import escape

import numpy as np
from xlsxwriter.format import Format
from xlsxwriter.utility import xl_col_to_name, xl_rowcol_to_cell
from xlsxwriter.worksheet import Worksheet

from sheetprop.book import TextWorksheet

ERROR_VALUE = "#NUM!"  # what Excel shows where the reference overflowed


class FormulaRowsWorksheet(TextWorksheet):
    """A constant-memory worksheet that can write a block of filled-down formula rows as ready-made XML."""

    _shared = 0  # shared formulas written so far (their index, si, is unique per sheet)

    def formula_rows(self, first_row: int, number_col: int, count: int,
                     cells: Sequence[tuple[int, str, Format | None]]) -> Callable[[Sequence[int], np.ndarray], None]:
        """A writer of ``count`` rows from ``first_row``, called with consecutive blocks of them (so that their
        values need never be in memory together): each row holds its number in ``number_col``, then per
        (col, template, format) a formula with its cached value ``values[i, c]``. Templates use ``{0}`` for the
        row's number (1-based) and ``{1}`` for the previous row's, so that each column is one formula filled
        down. Columns must be increasing and to the right of ``number_col``."""
        if not self.constant_memory:
            raise ValueError("formula_rows needs the workbook's constant_memory mode")
        last_row = first_row + count - 1
        last_col = cells[-1][0] if cells else number_col
        self._write_single_row(first_row)  # flush the row written before, as xlsxwriter would
        if count < 1 or self._check_dimensions(first_row, number_col) or self._check_dimensions(last_row, last_col):
            raise ValueError(f"rows {first_row}..{last_row}, columns {number_col}..{last_col} lie outside the sheet")

        shared = count > 1
        masters, followers = [], []
        for col, template, fmt in cells:
            start = f'<c r="{xl_col_to_name(col)}{{0}}"' + (f' s="{fmt._get_xf_index()}"' if fmt is not None else "")
            formula = escape(template.lstrip("="))
            if shared:
                where = f"{xl_rowcol_to_cell(first_row, col)}:{xl_rowcol_to_cell(last_row, col)}"
                masters.append((start, f'<f t="shared" ref="{where}" si="{self._shared}">{formula}</f>'))
                followers.append((start, f'<f t="shared" si="{self._shared}"/>'))
                self._shared += 1
            else:
                masters.append((start, f"<f>{formula}</f>"))
        number = f'<row r="{{0}}"><c r="{xl_col_to_name(number_col)}{{0}}"><v>{{2}}</v></c>'

        def row_xml(parts: list[tuple[str, str]], row_values: list[float] | None = None) -> str:
            """A row's XML with the values as format fields {3}, {4}, … or, given, written in."""
            if row_values is None:
                return number + "".join(f"{s}>{f}<v>{{{i + 3}}}</v></c>" for i, (s, f) in enumerate(parts)) + "</row>"
            return number + "".join(  # a value the reference could not represent caches Excel's error
                f"{s}>{f}<v>{v!r}</v></c>" if math.isfinite(v) else f'{s} t="e">{f}<v>{ERROR_VALUE}</v></c>'
                for (s, f), v in zip(parts, row_values)) + "</row>"

        templates = [row_xml(masters), row_xml(followers) if shared else None]
        written = 0

        def write(numbers: Sequence[int], values: np.ndarray) -> None:
            nonlocal written
            if written + len(numbers) > count:
                raise ValueError(f"more than the {count} rows announced")
            finite = np.isfinite(values).all(axis=1).tolist()
            out = self.fh.write
            for i, (n, row_values, ok) in enumerate(zip(numbers, values.tolist(), finite), start=written):
                r = first_row + i + 1
                if ok:
                    out(templates[i > 0].format(r, r - 1, n, *row_values))
                else:
                    out(row_xml(masters if i == 0 else followers, row_values).replace("{0}", str(r))
                        .replace("{1}", str(r - 1)).replace("{2}", str(n)))
            written += len(numbers)
            self.previous_row = first_row + written - 1

        return write


class RowOrdered:
    """A worksheet stand-in that collects cell writes and replays them in row order.

    With ``constant_memory`` xlsxwriter keeps one row at a time, so a sheet laid out in blocks
    (tables, then a drawing beside them) must be written through this.
    """

    def __init__(self, ws: Worksheet) -> None:
        self._ws = ws
        self._calls: list[tuple[int, int, Any, tuple, dict]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._ws, name)
        if not name.startswith(("write", "merge_range")):
            return method

        def defer(row: int, col: int, *args: Any, **kwargs: Any) -> None:
            self._calls.append((row, col, method, args, kwargs))

        return defer

    def flush(self) -> None:
        for row, col, method, args, kwargs in sorted(self._calls, key=lambda c: (c[0], c[1])):
            if method(row, col, *args, **kwargs) == -1:
                raise ValueError(f"cell ({row}, {col}) lies outside the sheet")
        self._calls.clear()
