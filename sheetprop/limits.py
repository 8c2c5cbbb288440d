"""The limits of the engines that must compute a workbook, and the checks that keep it within them.

Excel, LibreOffice and Gnumeric each set their own; where they differ, the smallest decides. Excel
refuses or "repairs" a file that breaks them, LibreOffice shows Err:5xx in the cell, and xlsxwriter
silently drops cells beyond the grid, so the writer checks everything before it writes anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple


class LimitError(ValueError):
    """Something that does not fit in a workbook every engine computes; the message names the limit and by
    how much."""


@dataclass(frozen=True)
class EngineLimit:
    """One limit as each engine sets it (None: none below the others'); the smallest decides."""

    what: str
    excel: int | None
    libreoffice: int | None
    gnumeric: int | None

    @property
    def engines(self) -> dict[str, int]:
        named = {"Excel": self.excel, "LibreOffice": self.libreoffice, "Gnumeric": self.gnumeric}
        return {engine: value for engine, value in named.items() if value is not None}

    @property
    def value(self) -> int:
        """The most that every engine allows."""
        return min(self.engines.values())

    @property
    def engine(self) -> str:
        """The engine whose limit decides (Excel on a tie)."""
        return min(self.engines, key=self.engines.__getitem__)

    def refuse(self, what: str, needs: str) -> LimitError:
        """The error for ``what``, which needs more (``needs``: "a formula of 8,999 characters")."""
        return LimitError(f"{what} needs {needs}; {self.engine} allows {self.value:,}")


# Excel's from its specifications; LibreOffice 7.4's and Gnumeric 1.12's measured (a formula just beyond one shows
# Err:5xx in LibreOffice). LibreOffice counts a formula's length in tokens (8,192), never more than its characters.
FORMULA_CHARS = EngineLimit("characters of one formula", excel=8_192, libreoffice=None, gnumeric=None)
NESTING = EngineLimit("functions nested inside functions", excel=64, libreoffice=98, gnumeric=None)
ARGUMENTS = EngineLimit("arguments of one function call", excel=255, libreoffice=255, gnumeric=None)
CHOOSE_VALUES = EngineLimit("values of one CHOOSE, after its index", excel=254, libreoffice=30, gnumeric=None)
TEXT_CHARS = EngineLimit("characters of text in one cell", excel=32_767, libreoffice=None, gnumeric=None)
COLUMNS = EngineLimit("columns of a sheet", excel=16_384, libreoffice=None, gnumeric=None)
ROWS = EngineLimit("rows of a sheet", excel=1_048_576, libreoffice=None, gnumeric=None)

MAX_FORMULA_CHARS = FORMULA_CHARS.value
MAX_NESTING = NESTING.value
MAX_ARGUMENTS = ARGUMENTS.value
MAX_CHOOSE_VALUES = CHOOSE_VALUES.value
MAX_TEXT_CHARS = TEXT_CHARS.value
MAX_COLUMNS = COLUMNS.value
MAX_ROWS = ROWS.value
# A workbook's own: the network diagram picks among its training sheets in one formula, which at this many (6
# optimizers × 20 learning rates) stays within Excel's 8,192 characters whatever the sheets (tests/test_diagram.py).
MAX_TRAINING_SHEETS = 120

# Strings and quoted sheet names (skipped), a function's opening parenthesis, other parentheses, commas.
_TOKENS = re.compile(r'"(?:[^"]|"")*"|\'(?:[^\']|\'\')*\'|[A-Za-z_][A-Za-z0-9_.]*\(|[(),]')


class Shape(NamedTuple):
    """What the engines limit in a formula, besides its length."""

    nesting: int  # the deepest nesting of function calls
    arguments: int  # the most arguments given to one call
    choose_values: int = 0  # the most values of one CHOOSE (its arguments after the index)


def formula_shape(formula: str) -> Shape:
    """The nesting and the largest calls of a formula."""
    stack: list[list] = []  # per open parenthesis: [the function called (None: a bracket), commas so far]
    deepest = most = choose = calls = 0
    for match in _TOKENS.finditer(formula):
        token = match.group()
        if token[0] in "\"'":
            continue
        if token == ",":
            if stack:
                stack[-1][1] += 1
        elif token == ")":
            if not stack:
                continue
            function, commas = stack.pop()
            if function is not None:
                calls -= 1
                # a call with nothing between its parentheses (PI()) takes no argument
                empty = formula[match.start() - 1] == "(" and commas == 0
                most = max(most, 0 if empty else commas + 1)
                if function == "CHOOSE":
                    choose = max(choose, commas)
        else:
            function = token[:-1].upper() if token != "(" else None
            stack.append([function, 0])
            if function is not None:
                calls += 1
                deepest = max(deepest, calls)
    return Shape(deepest, most, choose)


def check_formula(formula: str, what: str) -> None:
    """Refuse a formula that an engine cannot compute; ``what`` names it in the message."""
    body = formula[1:] if formula.startswith("=") else formula
    if len(body) > MAX_FORMULA_CHARS:
        raise FORMULA_CHARS.refuse(what, f"a formula of {len(body):,} characters")
    shape = formula_shape(body)
    if shape.nesting > MAX_NESTING:
        raise NESTING.refuse(what, f"functions nested {shape.nesting} deep")
    if shape.arguments > MAX_ARGUMENTS:
        raise ARGUMENTS.refuse(what, f"a function of {shape.arguments:,} arguments")
    if shape.choose_values > MAX_CHOOSE_VALUES:
        raise CHOOSE_VALUES.refuse(what, f"a CHOOSE of {shape.choose_values:,} values")


def check_text(text: str, what: str) -> None:
    if len(text) > MAX_TEXT_CHARS:
        raise TEXT_CHARS.refuse(what, f"{len(text):,} characters in one cell")


def check_extent(rows: int, columns: int, what: str) -> None:
    """Refuse a sheet of ``rows`` × ``columns`` cells (counted from A1) that an engine cannot hold."""
    if columns > MAX_COLUMNS:
        raise COLUMNS.refuse(what, f"{columns:,} columns")
    if rows > MAX_ROWS:
        raise ROWS.refuse(what, f"{rows:,} rows")


def check_training_sheets(count: int, what: str) -> None:
    """Refuse more than :data:`MAX_TRAINING_SHEETS` training sheets (``what`` says what makes them)."""
    if count > MAX_TRAINING_SHEETS:
        raise LimitError(f"{what} need {count:,} training sheets; a workbook holds at most {MAX_TRAINING_SHEETS} (the "
                         f"network diagram picks among them in one formula, and Excel allows {MAX_FORMULA_CHARS:,} "
                         "characters in a formula)")
