"""Grading workbooks file by file: each file's tables, or why it cannot be graded, and a class's grades."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from sheetprop.grading.judge import TableGrade, grade_table
from sheetprop.grading.tables import GradeError, find, fixed, read

SUFFIXES = (".xlsx", ".xlsm", ".xls")


@dataclass
class FileGrade:
    """One workbook's grade: its tables, or why it could not be graded."""

    path: Path
    tables: list[TableGrade] = field(default_factory=list)
    error: str | None = None  # why the file cannot be graded

    @property
    def status(self) -> str:
        """"correct", "mistakes", "incomplete" (cells left blank, none wrong) or "not graded"."""
        if self.error is not None or any(t.unrecognised for t in self.tables):
            return "not graded"
        if all(t.ok for t in self.tables):
            return "correct"
        wrong = any(t.mistakes or any(f.status in ("wrong", "follows") for f in t.findings) for t in self.tables)
        return "mistakes" if wrong else "incomplete"


@dataclass
class Grades:
    """The grades of every file given, in order."""

    files: list[FileGrade]

    @property
    def exit_code(self) -> int:
        """Like a linter's: 0 when every table is correct, 1 when a mistake is found (or cells are left blank),
        2 when a file cannot be graded (the others are still graded)."""
        statuses = {f.status for f in self.files}
        return 2 if "not graded" in statuses else 1 if statuses & {"mistakes", "incomplete"} else 0

    def __str__(self) -> str:
        from sheetprop.grading.report import text

        return text(self)


def files_in(paths: Iterable[str | Path]) -> list[Path]:
    """The workbooks named: files as given, and the spreadsheets inside folders (sorted, Office's lock files
    ``~$…`` left out)."""
    out: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                          and not p.name.startswith("~$"))
        else:
            out.append(path)
    return out


def grade_file(path: str | Path) -> FileGrade:
    """One workbook graded; a file that cannot be read or holds no training table gets its reason."""
    path = Path(path)
    result = FileGrade(path)
    if not path.is_file():
        result.error = "no such file"
        return result
    try:
        book = read(path)
    except GradeError as exc:
        result.error = str(exc)
        return result
    sheets = [s for s in book.sheets ]
    ours = _training_sheets(book)  # a workbook sheetprop wrote names its training sheets
    tables = [t for t in find(sheets) if ours is None or t.sheet.name in ours]
    if any(t.complete for t in tables):  # a block naming some quantities beside the training tables is not one
        tables = [t for t in tables if t.complete]
    if not tables:
        result.error = "no training table found (a header line naming w1..w8 with a row of numbers per iteration)"
        return result
    inside = {at for t in tables for cells in t.cells.values() for at in cells}
    found = book.named() + [f for sheet in sheets for f in fixed(sheet, inside)]
    try:
        result.tables = [grade_table(t, found) for t in tables]
    except Exception as exc:  # noqa: BLE001 - one file the grader cannot read must not stop a class's grading
        result.error = f"the grader failed on it ({type(exc).__name__}: {exc}); please report it with the file"
    return result


def _training_sheets(book) -> set[str] | None:
    """The training sheets a workbook of sheetprop's own lists on its hidden sheet (None for any other)."""
    from sheetprop.layout import Meta

    meta = next((s for s in book.sheets if s.name == Meta.SHEET), None)
    if meta is None:
        return None
    return {str(c.value) for (r, _), c in meta.cells.items() if r == Meta.SHEETS_ROW and c.value is not None}


def grade_files(paths: Iterable[str | Path], progress: Callable[[Path], None] | None = None) -> Grades:
    """Every workbook in ``paths`` (files and folders) graded; the files are only read, never written."""
    graded = []
    for path in files_in(paths):
        graded.append(grade_file(path))
        if progress is not None:
            progress(path)
    return Grades(graded)

