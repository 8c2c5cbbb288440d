"""Read a saved .xlsx back fast: each sheet's cells parsed once into arrays, its defined names once.

openpyxl builds a Python object per cell, and in read-only mode reads a sheet again from its top
for every cell looked up by address; a training sheet holds up to 16,384 columns per row, so
``sheetprop verify`` reads the sheet XML with one regular expression, a block of rows at a time.
"""

from __future__ import annotations

import html
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple
from xml.etree import ElementTree

import numpy as np

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_BLOCK = 1 << 24  # bytes of sheet XML parsed at a time

# One cell: column letters, row number, its other attributes, then "/>" or its children: a formula
# (skipped), a value or an inline string. Formulas are found apart, by their own pattern.
_CELL = re.compile(rb'<c r="([A-Z]+)([0-9]+)"([^>/]*)(?:/>|>(?:<f[^>]*>[^<]*</f>|<f[^>]*/>)?'
                   rb'(?:<v>([^<]*)</v>|<is>(.*?)</is>)?)', re.S)
_WRITTEN = re.compile(rb"<f\b([^>]*)>([^<]+)</f>|<is>(.*?)</is>", re.S)  # a formula, or an inline string
_CELL_START = re.compile(rb'<c r="([A-Z]+)([0-9]+)"')
_TYPE = re.compile(rb'\bt="(\w+)"')
_SHARED_REF = re.compile(rb'\bref="([A-Z]+[0-9]+(?::[A-Z]+[0-9]+)?)"')
_TEXT = re.compile(rb"<t\b[^>]*>([^<]*)</t>")
_ONE_CELL = re.compile(r"^(?:'((?:[^']|'')+)'|([^'!]+))!\$?([A-Z]+)\$?([0-9]+)$")


class Written(NamedTuple):
    """A formula or a text as the file stores it."""

    row: int  # 0-based
    col: int
    text: str  # a formula without its leading "="
    formula: bool
    shared: str | None = None  # the range a shared formula's first cell fills (B7:B105)


@dataclass
class Sheet:
    """One sheet's cells by 0-based (row, column): numbers in a dense array, the rest in dicts."""

    numbers: np.ndarray  # NaN where a cell holds no number
    text: dict[tuple[int, int], str] = field(default_factory=dict)  # strings and booleans
    errors: dict[tuple[int, int], str] = field(default_factory=dict)  # #NUM!, #DIV/0!, …

    def value(self, row: int, col: int) -> float | str | None:
        """What the cell holds: a number, a text, an error value, or None."""
        if row < self.numbers.shape[0] and col < self.numbers.shape[1] and not np.isnan(self.numbers[row, col]):
            return float(self.numbers[row, col])
        return self.errors.get((row, col), self.text.get((row, col)))


def column_index(letters: bytes | str) -> int:
    """0-based index of a column's letters (A → 0, AA → 26)."""
    n = 0
    for ch in letters.encode() if isinstance(letters, str) else letters:
        n = n * 26 + ch - 64
    return n - 1


class SavedBook:
    """A saved workbook: its sheet names, its workbook-wide defined names, and each sheet on demand."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._zip = zipfile.ZipFile(self.path)
        names = set(self._zip.namelist())
        root = ElementTree.fromstring(self._zip.read("xl/workbook.xml"))
        rels = ElementTree.fromstring(self._zip.read("xl/_rels/workbook.xml.rels"))
        targets = {r.get("Id"): r.get("Target", "") for r in rels}
        self._parts = {}
        for s in root.iter(f"{_MAIN}sheet"):
            target = targets.get(s.get(_REL_ID), "")
            part = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
            if part in names:
                self._parts[s.get("name")] = part
        #: workbook-wide defined names that point at one cell: name → (sheet, row, col), 0-based
        self.names: dict[str, tuple[str, int, int]] = {}
        for d in root.iter(f"{_MAIN}definedName"):
            m = _ONE_CELL.match((d.text or "").strip())
            if m and d.get("localSheetId") is None:
                sheet = m.group(1).replace("''", "'") if m.group(1) else m.group(2)
                self.names[d.get("name")] = (sheet, int(m.group(4)) - 1, column_index(m.group(3)))
        self._strings: list[str] | None = None
        self._kinds: dict[bytes, bytes] = {}  # a cell's attributes → its type (n, s, e, …)
        self._letters: dict[bytes, int] = {}  # column letters → index

    @property
    def sheetnames(self) -> list[str]:
        return list(self._parts)

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> SavedBook:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def strings(self) -> list[str]:
        """The shared strings table."""
        if self._strings is None:
            self._strings = []
            if "xl/sharedStrings.xml" in self._zip.namelist():
                root = ElementTree.fromstring(self._zip.read("xl/sharedStrings.xml"))
                for si in root.iter(f"{_MAIN}si"):
                    plain = si.find(f"{_MAIN}t")  # else rich text: the runs' <t>, not the phonetic <rPh>
                    runs = [plain] if plain is not None else [r.find(f"{_MAIN}t") for r in si.findall(f"{_MAIN}r")]
                    self._strings.append("".join(t.text or "" for t in runs if t is not None))
        return self._strings

    def sheet(self, name: str) -> Sheet:
        """Parse one sheet's values."""
        out = Sheet(np.empty((0, 0)))
        parsed = [self._parse(block, out) for block in self._blocks(name)]
        rows, cols, values = (np.concatenate(a) for a in zip(*parsed))
        keys = (*out.text, *out.errors)
        n_rows = 1 + max(rows.max(initial=-1), max((r for r, _ in keys), default=-1))
        n_cols = 1 + max(cols.max(initial=-1), max((c for _, c in keys), default=-1))
        out.numbers = np.full((n_rows, n_cols), np.nan)
        out.numbers[rows, cols] = values
        return out

    def written(self, name: str, texts_longer_than: int = 0) -> Iterator[Written]:
        """Each formula of a sheet as stored (a shared formula once, in its first cell) and each inline
        string longer than ``texts_longer_than`` characters, in one pass."""
        for block in self._blocks(name):
            for m in _WRITTEN.finditer(block):
                f_attrs, formula, inline = m.groups()
                if inline is not None:
                    if len(inline) <= texts_longer_than:  # bytes: never fewer than characters
                        continue
                    text = html.unescape("".join(t.decode() for t in _TEXT.findall(inline)))
                    if len(text) <= texts_longer_than:
                        continue
                else:
                    text = html.unescape(formula.decode())
                cell = _CELL_START.search(block, block.rfind(b"<c ", 0, m.start()))
                shared = _SHARED_REF.search(f_attrs) if f_attrs else None
                yield Written(int(cell.group(2)) - 1, column_index(cell.group(1)), text, inline is None,
                              shared.group(1).decode() if shared else None)

    def _parse(self, block: bytes, out: Sheet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The numbers of a block of rows as (rows, cols, values); text and errors go into ``out``."""
        rows: list[int] = []
        cols: list[int] = []
        values: list[float] = []
        kinds, letters = self._kinds, self._letters
        for col_letters, row_text, attrs, v, inline in _CELL.findall(block):
            kind = kinds.get(attrs)
            if kind is None:
                m = _TYPE.search(attrs)
                kind = kinds[attrs] = m.group(1) if m else b"n"
            col = letters.get(col_letters)
            if col is None:
                col = letters[col_letters] = column_index(col_letters)
            row = int(row_text) - 1
            if kind == b"n":
                if v:
                    rows.append(row)
                    cols.append(col)
                    values.append(float(v))
            elif kind == b"s":
                out.text[row, col] = self.strings[int(v)]
            elif kind == b"e":
                out.errors[row, col] = v.decode()
            elif kind == b"inlineStr":
                out.text[row, col] = html.unescape("".join(t.decode() for t in _TEXT.findall(inline)))
            elif kind == b"b":
                out.text[row, col] = "TRUE" if v.strip() == b"1" else "FALSE"
            else:  # str (a formula's text result), d (a date written as text)
                out.text[row, col] = html.unescape(v.decode())
        return np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp), np.asarray(values, dtype=float)

    def _blocks(self, name: str) -> Iterator[bytes]:
        """A sheet's XML in blocks of whole rows."""
        if name not in self._parts:
            raise KeyError(f"no sheet {name!r}")
        rest = b""
        with self._zip.open(self._parts[name]) as f:
            while chunk := f.read(_BLOCK):
                rest += chunk
                cut = rest.rfind(b"</row>")
                if cut >= 0:
                    yield rest[: cut + 6]
                    rest = rest[cut + 6 :]
        yield rest
