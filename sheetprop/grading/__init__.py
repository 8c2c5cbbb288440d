"""Grading backpropagation workbooks built by hand: every training table found, every quantity column held
against sheetprop's reference, the first wrong cell of each and why (see :mod:`sheetprop.grading.judge`).

``sheetprop.grade`` and ``sheetprop grade`` call :func:`grade_files`; the class summary is written by
:mod:`sheetprop.grading.report`.
"""

from sheetprop.grading.files import FileGrade, Grades, files_in, grade_file, grade_files
from sheetprop.grading.judge import Finding, TableGrade

__all__ = ["FileGrade", "Finding", "Grades", "TableGrade", "files_in", "grade_file", "grade_files"]
