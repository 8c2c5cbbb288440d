"""The vocabulary formulas are written in: Excel operators or readable text, from one builder, and
evaluated over numpy arrays.

A quantity's formula (see :mod:`sheetprop.quantities`) asks a ``ref`` function where each
quantity it uses lives (a cell such as ``B7``, a defined name such as ``w1_init``, or a label
such as ``a_h1`` for text) and joins the pieces with the operators of a :class:`Style`.
:func:`evaluate` computes such a formula with names in place of its cells (what a student's sheet
would compute from its own cells, in :mod:`sheetprop.grading`; an exercise's cells, in
:mod:`sheetprop.exercise`).
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
import re
from typing import Mapping, Sequence

import numpy as np

from sheetprop.limits import MAX_CHOOSE_VALUES


@dataclass(frozen=True)
class Style:
    text: bool
    mul: str
    plus: str
    minus: str

    def pick(self, excel: str, text: str) -> str:
        """The Excel or the text form of a template, whichever this style writes."""
        return text if self.text else excel

    def product(self, *factors: str) -> str:
        """Factors multiplied; factors of 1 are left out."""
        return self.mul.join(f for f in factors if f != "1")

    def sum(self, terms: Sequence[str]) -> str:
        return self.plus.join(terms)

    def grouped_sum(self, terms: Sequence[str]) -> str:
        """A sum in parentheses, so it can be a factor (one term needs none)."""
        return terms[0] if len(terms) == 1 else "(" + self.sum(terms) + ")"

    def reduce(self, terms: Sequence[str], reduction: str) -> str:
        """Per-sample values combined as the template says: their mean or their sum."""
        if len(terms) == 1 or reduction == "sum":
            return self.sum(terms)
        return f"({self.sum(terms)})/{len(terms)}"

    def span(self, first: str, last: str, count: int) -> str:
        """A run of consecutive cells: a range in Excel, a short list in text."""
        if not self.text:
            return f"{first}:{last}"
        return ", ".join((first, last)) if count == 2 else f"{first}, …, {last}" if count > 2 else first


EXCEL = Style(text=False, mul="*", plus="+", minus="-")
TEXT = Style(text=True, mul="·", plus=" + ", minus=" − ")


def fill(template: str, **parts: str) -> str:
    """Replace ``{name}`` placeholders (templates of :mod:`sheetprop.activations`)."""
    for key, value in parts.items():
        template = template.replace("{" + key + "}", value)
    return template


def choose(index: str, values: Sequence[str], most: int = MAX_CHOOSE_VALUES) -> str:
    """``CHOOSE(index, values…)`` nested so that no CHOOSE holds more than ``most`` values (LibreOffice takes
    30): CHOOSE(INT((index-1)/30)+1, CHOOSE(index, the first 30…), CHOOSE(index-30, the next…), …). One value
    is returned as it is."""
    if len(values) == 1:
        return values[0]
    if len(values) <= most:
        return f"CHOOSE({index},{','.join(values)})"
    size = most  # values per group, a power of ``most``, so that at most ``most`` groups hold them all
    while size * most < len(values):
        size *= most
    groups = [choose(f"{index}-{start}" if start else index, values[start : start + size], most)
              for start in range(0, len(values), size)]
    return f"CHOOSE(INT(({index}-1)/{size})+1,{','.join(groups)})"


_FUNCTIONS = {
    "IF": lambda c, a, b: np.where(c, a, b), "EXP": np.exp, "LN": np.log, "SQRT": np.sqrt, "TANH": np.tanh,
    "ABS": np.abs, "MAX": lambda *x: np.maximum.reduce(np.broadcast_arrays(*x)),
    "MIN": lambda *x: np.minimum.reduce(np.broadcast_arrays(*x)),
}
_TOKEN = re.compile(r"<>|>=|<=|=|\^|(?<![\w.])[A-Za-z_][A-Za-z0-9_]*\(?")


def evaluate(formula: str, values: Mapping[str, np.ndarray | float]) -> np.ndarray:
    """A formula of this project's Excel vocabulary (+ − * / ^, comparisons, IF EXP LN SQRT TANH ABS MAX MIN)
    whose references are names in ``values`` (a range ``a:b`` not allowed), computed elementwise."""
    with np.errstate(all="ignore"):
        return np.asarray(eval(_compiled(formula), {"__builtins__": {}, "F": _FUNCTIONS, "V": values}),  # noqa: S307
                          dtype=float)


@functools.lru_cache(maxsize=4096)
def _compiled(formula: str):
    """The formula as Python, compiled once (a column's formula is the same text in every row)."""

    def python(match: re.Match) -> str:
        token = match.group()
        if token.endswith("("):
            return f"F[{token[:-1]!r}]("
        if token in ("<>", "=", ">=", "<=", "^"):
            return {"<>": "!=", "=": "==", "^": "**"}.get(token, token)
        return f"V[{token!r}]"

    return compile(_TOKEN.sub(python, formula.lstrip("=")), "<formula>", "eval")
