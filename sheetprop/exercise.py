"""The student's version of a workbook: parts of the derivation left blank to be written, every blank cell
checked as it is filled.

A blank cell is checked against its answer: the correct formula applied to the student's own cells (so a
right formula that reads an earlier wrong cell is right, and a wrong one is wrong whatever came before), held
on a very hidden sheet per training sheet. Everything else in the workbook reads the student's cells, so the
later rows, E_total, the charts and the Compare sheet follow what the student wrote. The answers are hidden,
not secret: a student who looks for them (unhiding the sheet with a macro, or unzipping the file) finds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterable

import numpy as np
from xlsxwriter.utility import quote_sheetname, xl_col_to_name, xl_rowcol_to_cell

from sheetprop.formulas import EXCEL, Style, evaluate
from sheetprop.layout import TrainingLayout
from sheetprop.quantities import Hyperparameter, Input, LearningRate, Quantity, Row, Target

PARTS = ("forward", "loss", "delta", "gradient", "update")
DEFAULT_PARTS = ("delta", "gradient", "update")
RIGHT, WRONG = "✓", "✗"
TOLERANCE = 1e-9  # relative, on a scale of at least 1e-6 (as sheetprop verify and grade compare)


class ExerciseError(ValueError):
    """Parts of a derivation that do not exist; the message names them."""


def parts(names: Iterable[str] | bool | None) -> frozenset[str]:
    """The parts an exercise leaves blank: ``True`` for the default ones, names from :data:`PARTS`, or
    ``all``."""
    if names is True:
        return frozenset(DEFAULT_PARTS)
    chosen = [names] if isinstance(names, str) else list(names or ())
    unknown = [n for n in chosen if n not in PARTS and n != "all"]
    if unknown or not chosen:
        raise ExerciseError(f"parts to leave blank must be some of {', '.join(PARTS)} or all, got "
                            f"{', '.join(map(str, unknown)) or 'none'}")
    return frozenset(PARTS if "all" in chosen else chosen)


def answers_sheet(training_sheet: str) -> str:
    """The very hidden sheet that holds one training sheet's answers: "Training 1" → "Answers 1"."""
    return training_sheet.replace("Training", "Answers")


@dataclass(frozen=True, eq=False)
class Exercise:
    """One training sheet of an exercise: which cells are blank, where their checks are, and the numbers the
    sheet shows before the student writes anything."""

    layout: TrainingLayout
    blank_parts: frozenset[str]
    lr: float

    @property
    def network(self):
        return self.layout.network

    def blank(self, q: Quantity, iteration: int) -> bool:
        """Whether the cell is the student's to write (the initial weights stay given)."""
        return q.part in self.blank_parts and not (iteration == 0 and q in self.network.param_index)

    @cached_property
    def blanks(self) -> list[Quantity]:
        """The columns with blank cells, in their order."""
        return [q for q in self.layout.columns if q.part in self.blank_parts]

    @cached_property
    def _check_cols(self) -> dict[Quantity, int]:
        return {q: len(self.layout.columns) + 2 + i for i, q in enumerate(self.blanks)}

    @property
    def cells(self) -> int:
        """How many cells the student writes."""
        rows = self.layout.iterations + 1
        return sum(rows - (q in self.network.param_index) for q in self.blanks)

    # where things are ------------------------------------------------------------------------------------
    def check_col(self, q: Quantity) -> int:
        """The column of q's checks: a block right of the table, one column per blank column."""
        return self._check_cols[q]

    @property
    def check_range(self) -> str:
        first, last = self.layout.row(0), self.layout.last_row
        return (f"{xl_rowcol_to_cell(first, self.check_col(self.blanks[0]))}:"
                f"{xl_rowcol_to_cell(last, self.check_col(self.blanks[-1]))}")

    def check_formula(self, q: Quantity, iteration: int) -> str:
        """✓ when the student's cell equals its answer, ✗ when it does not (or is not a number), empty while
        the cell is."""
        mine = self.layout.cell(q, iteration)
        answer = f"{quote_sheetname(answers_sheet(self.layout.sheet))}!{mine}"
        close = f"ABS({mine}-{answer})<={TOLERANCE!r}*MAX(ABS({mine}),ABS({answer}),1E-6)"
        return f'=IF(ISBLANK({mine}),"",IFERROR(IF(AND(ISNUMBER({mine}),{close}),"{RIGHT}","{WRONG}"),"{WRONG}"))'

    def answer_formula(self, q: Quantity, iteration: int) -> str:
        """q's correct formula over the student's own cells (this row's, and the row before's)."""
        sheet = quote_sheetname(self.layout.sheet)
        net = self.network

        def ref(row: int):
            def where(r: Quantity) -> str:
                if r.editable:
                    return r.defined_name(net)
                if isinstance(r, LearningRate):
                    return f"{sheet}!{self.layout.lr_cell}"
                return f"{sheet}!{xl_col_to_name(self.layout.col(r))}{row + 1}"
            return where

        r = self.layout.row(iteration)
        row = Row(ref(r), ref(r - 1) if iteration else None, self.layout.optimizer, str(iteration + 1))
        return "=" + q.row_formula(net, row)

    # what the sheet shows ---------------------------------------------------------------------------------
    @cached_property
    def simulation(self) -> tuple[np.ndarray, np.ndarray]:
        return self.simulate(self.lr)

    def shown(self, q: Quantity, iteration: int = 0) -> float:
        """What the sheet shows for q at an iteration before the student writes anything (a blank cell: 0)."""
        value = self.simulation[0][iteration, self.layout.columns.index(q)]
        return 0.0 if np.isnan(value) else float(value)

    def simulate(self, lr: float) -> tuple[np.ndarray, np.ndarray]:
        """(shown, answers), rows × columns: the values of the sheet as written, its blank cells empty (NaN)
        and read as 0 by the formulas that use them, and each blank cell's answer (NaN elsewhere)."""
        net, layout = self.network, self.layout
        cols = layout.columns
        n = layout.iterations + 1
        shown, answers = np.full((n, len(cols)), np.nan), np.full((n, len(cols)), np.nan)
        inputs = _inputs(net)
        index = {q: i for i, q in enumerate(cols)}
        style = _Spans(text=False, mul=EXCEL.mul, plus=EXCEL.plus, minus=EXCEL.minus)
        for k in range(n):
            # this row's cells by column (filled in as they are computed), the row before's, the inputs
            values: dict[str, float] = {**inputs, "lr": lr, "t": k + 1}
            if k:
                values.update({f"p{i}": 0.0 if np.isnan(v) else v for i, v in enumerate(shown[k - 1])})

            def ref(prefix: str):
                def where(r: Quantity) -> str:
                    if r.editable:
                        return r.defined_name(net)
                    return "lr" if isinstance(r, LearningRate) else f"{prefix}{index[r]}"
                return where

            row = Row(ref("c"), ref("p") if k else None, layout.optimizer, "t")
            for i, q in enumerate(cols):
                value = float(evaluate(q.row_formula(net, row, style), values))
                if self.blank(q, k):
                    answers[k, i], values[f"c{i}"] = value, 0.0  # a blank cell reads as 0
                else:
                    shown[k, i] = values[f"c{i}"] = value
        return shown, answers


@dataclass(frozen=True)
class _Spans(Style):
    """Excel's operators, with a run of cells (a softmax layer's z) written out one by one."""

    def span(self, first: str, last: str, count: int) -> str:
        prefix, a, b = first[0], int(first[1:]), int(last[1:])
        return ",".join(f"{prefix}{i}" for i in range(a, b + 1))


def _inputs(net) -> dict[str, float]:
    """The values of the Network sheet's inputs by their defined names."""
    out = {}
    for s in range(net.samples):
        out.update({Input(k, s).defined_name(net): net.inputs[s, k] for k in range(net.size(0))})
        out.update({Target(j, s).defined_name(net): net.targets[s, j] for j in range(net.size(net.depth))})
    out.update({p.defined_name(net): net.initial(p) for p in net.params})
    out.update({Hyperparameter(h).defined_name(net): net.hyperparameters[h] for h in net.hyperparameters_used})
    return out
