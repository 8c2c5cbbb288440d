"""Excel's limits, and the checks that keep a workbook within them.

Excel refuses or "repairs" a file that breaks them, and xlsxwriter silently drops cells
beyond the grid, so the writer checks everything before it writes anything.
"""

from __future__ import annotations

import re

MAX_FORMULA_CHARS = 8_192
MAX_NESTING = 64  # levels of functions inside functions
MAX_ARGUMENTS = 255  # per function call
MAX_TEXT_CHARS = 32_767  # per cell
MAX_COLUMNS = 16_384
MAX_ROWS = 1_048_576

# Strings and quoted sheet names (skipped), a function's opening parenthesis, other parentheses, commas.
_TOKENS = re.compile(r'"(?:[^"]|"")*"|\'(?:[^\']|\'\')*\'|[A-Za-z_][A-Za-z0-9_.]*\(|[(),]')


class LimitError(ValueError):
    """Something that does not fit in an Excel workbook; the message names the limit and by how much."""


def formula_shape(formula: str) -> tuple[int, int]:
    """(deepest nesting of function calls, most arguments given to one call) of a formula."""
    stack: list[list[int]] = []  # per open parenthesis: [is a function call, commas so far]
    deepest = most = calls = 0
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
            is_call, commas = stack.pop()
            if is_call:
                calls -= 1
                # a call with nothing between its parentheses (PI()) takes no argument
                empty = formula[match.start() - 1] == "(" and commas == 0
                most = max(most, 0 if empty else commas + 1)
        else:
            is_call = token != "("
            stack.append([is_call, 0])
            if is_call:
                calls += 1
                deepest = max(deepest, calls)
    return deepest, most


def check_formula(formula: str, what: str) -> None:
    """Refuse a formula Excel cannot hold; ``what`` names it in the message."""
    body = formula[1:] if formula.startswith("=") else formula
    if len(body) > MAX_FORMULA_CHARS:
        raise LimitError(f"{what} needs a formula of {len(body):,} characters; Excel allows {MAX_FORMULA_CHARS:,}")
    depth, arguments = formula_shape(body)
    if depth > MAX_NESTING:
        raise LimitError(f"{what} needs functions nested {depth} deep; Excel allows {MAX_NESTING}")
    if arguments > MAX_ARGUMENTS:
        raise LimitError(f"{what} needs a function of {arguments:,} arguments; Excel allows {MAX_ARGUMENTS}")


def check_text(text: str, what: str) -> None:
    if len(text) > MAX_TEXT_CHARS:
        raise LimitError(f"{what} needs {len(text):,} characters in one cell; Excel allows {MAX_TEXT_CHARS:,}")


def check_extent(rows: int, columns: int, what: str) -> None:
    """Refuse a sheet of ``rows`` × ``columns`` cells (counted from A1) that Excel cannot hold."""
    if columns > MAX_COLUMNS:
        raise LimitError(f"{what} needs {columns:,} columns; Excel allows {MAX_COLUMNS:,}")
    if rows > MAX_ROWS:
        raise LimitError(f"{what} needs {rows:,} rows; Excel allows {MAX_ROWS:,}")
