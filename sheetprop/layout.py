"""Where each quantity lives: sheet names, defined names, rows and columns.

The single source of cell addresses: the workbook writer, the charts and ``verify`` all ask
these objects instead of repeating offsets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from xlsxwriter.utility import quote_sheetname, xl_col_to_name, xl_range_abs, xl_rowcol_to_cell

from sheetprop import formulas
from sheetprop.network import (A, Delta, Grad, Input, LearningRate, LossTerm, Network, Param, Quantity, SampleGrad,
                               SampleLoss, Target, Total, Z)

MAX_ROWS = 1_048_576  # Excel's sheet height
NETWORK_SHEET = "Network"
EQUATIONS_SHEET = "Equations"
COMPARE_SHEET = "Compare"
ERROR_TARGET_NAME = "error_target"


def lr_label(lr: float) -> str:
    """The shortest text that reads back as exactly ``lr`` (0.1, 2, 1e-05)."""
    short = f"{lr:g}"
    return short if float(short) == lr else repr(lr)


def lr_name(slot: int) -> str:
    """Defined name of the learning-rate input in slot 0, 1, …: lr_1, lr_2, …"""
    return f"lr_{slot + 1}"


def _name_safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "", label.replace(",", "_"))


def defined_name(net: Network, q: Input | Target | Param) -> str:
    """Defined name of an editable input on the Network sheet (input_i1, target_t1_s2, w1_init, w2_11_init)."""
    sample = "" if net.samples == 1 or isinstance(q, Param) else f"_s{q.s + 1}"
    match q:
        case Input(k):
            return f"input_{net.input_names[k]}{sample}"
        case Target(j):
            return f"target_{net.target_names[j]}{sample}"
        case Param():
            return f"{_name_safe(net.label(q))}_init"
    raise TypeError(f"{q!r} is not an input of the network")


def forward_quantities(net: Network, s: int) -> tuple[Quantity, ...]:
    """z and a of every unit, layer by layer, for sample s."""
    return tuple(q for l in range(1, net.depth + 1) for j in range(net.size(l)) for q in (Z(l, j, s), A(l, j, s)))


def loss_quantities(net: Network, s: int) -> tuple[Quantity, ...]:
    terms = tuple(LossTerm(j, s) for j in range(net.size(net.depth)))
    return terms if net.samples == 1 else terms + (SampleLoss(s),)


def training_sheet_name(lr: float) -> str:
    return f"lr={lr_label(lr)}"


@dataclass(frozen=True, eq=False)
class TrainingLayout:
    """One training sheet: η at the top, then one row per iteration 0..N."""

    network: Network
    iterations: int
    sheet: str = "lr"

    TITLE_ROW = 0
    LR_ROW = 1
    GROUP_ROW = 3
    HEADER_ROW = 4
    FIRST_ROW = 5
    ITERATION_COL = 0
    LR_COL = 1

    @staticmethod
    def max_iterations() -> int:
        return MAX_ROWS - TrainingLayout.FIRST_ROW - 1

    @cached_property
    def groups(self) -> tuple[tuple[str, tuple[Quantity, ...]], ...]:
        """Column groups: parameters, per-sample forward pass and loss, E_total, gradients."""
        net = self.network
        grads = ("Gradients ∂E_total/∂p", tuple(Grad(p) for p in net.params))
        if net.samples == 1:
            return (("Parameters", net.params), ("Forward pass", forward_quantities(net, 0)),
                    ("Loss", loss_quantities(net, 0) + (Total(),)), grads)
        out: list[tuple[str, tuple[Quantity, ...]]] = [("Parameters", net.params)]
        for s in range(net.samples):
            out += [(f"Sample {s + 1}: forward pass", forward_quantities(net, s)),
                    (f"Sample {s + 1}: loss", loss_quantities(net, s))]
        out.append((f"Loss ({net.reduction} over samples)", (Total(),)))
        out += [(f"Sample {s + 1}: ∂{net.label(SampleLoss(s))}/∂p", tuple(SampleGrad(p, s) for p in net.params))
                for s in range(net.samples)]
        out.append(grads)
        return tuple(out)

    @cached_property
    def columns(self) -> tuple[Quantity, ...]:
        return tuple(q for _, qs in self.groups for q in qs)

    @cached_property
    def _col(self) -> dict[Quantity, int]:
        return {q: i + 1 for i, q in enumerate(self.columns)}

    def col(self, q: Quantity) -> int:
        return self._col[q]

    def row(self, iteration: int) -> int:
        return self.FIRST_ROW + iteration

    @property
    def last_row(self) -> int:
        return self.row(self.iterations)

    def cell(self, q: Quantity, iteration: int) -> str:
        return xl_rowcol_to_cell(self.row(iteration), self.col(q))

    @property
    def lr_cell(self) -> str:
        return xl_rowcol_to_cell(self.LR_ROW, self.LR_COL, row_abs=True, col_abs=True)

    def column_range(self, q: Quantity | None) -> str:
        """Absolute sheet-qualified range of a column over all iterations (None: the iteration column)."""
        col = self.ITERATION_COL if q is None else self.col(q)
        return f"{quote_sheetname(self.sheet)}!{xl_range_abs(self.FIRST_ROW, col, self.last_row, col)}"

    def qualified(self, q: Quantity, iteration: int) -> str:
        return f"{quote_sheetname(self.sheet)}!{xl_rowcol_to_cell(self.row(iteration), self.col(q), row_abs=True, col_abs=True)}"

    def _ref(self, row_field: str):
        net = self.network
        letters = {q: xl_col_to_name(c) for q, c in self._col.items()}

        def ref(q: Quantity) -> str:
            if isinstance(q, (Input, Target)):
                return defined_name(net, q)
            if isinstance(q, LearningRate):
                return self.lr_cell
            return f"{letters[q]}{row_field}"

        return ref

    @cached_property
    def row_templates(self) -> dict[Quantity, str]:
        """Per column, its formula with ``{0}`` for this row's number and ``{1}`` for the previous row's."""
        net = self.network
        here, previous = self._ref("{0}"), self._ref("{1}")
        out = {q: "=" + formulas.formula(net, q, here) for q in self.columns if not isinstance(q, Param)}
        out.update({p: "=" + formulas.update(net, p, here, previous) for p in net.params})
        return out

    def first_row_formula(self, p: Param) -> str:
        """Iteration 0 takes each parameter from its initial value on the Network sheet."""
        return "=" + defined_name(self.network, p)


@dataclass(frozen=True, eq=False)
class EquationsLayout:
    """The Equations sheet: one line per quantity, its value at iteration 0 in ``VALUE_COL``."""

    network: Network

    FIRST_ROW = 3
    NAME_COL = 0
    CHAIN_COL = 1
    EQUATION_COL = 2
    VALUE_COL = 3

    @cached_property
    def sections(self) -> tuple[tuple[str, tuple[Quantity, ...]], ...]:
        """Forward pass, loss, deltas and chain rule, per sample when there are several."""
        net = self.network
        several = net.samples > 1

        def title(text: str, s: int) -> str:
            return f"{text}, sample {s + 1}" if several else text

        out = [(title("Forward pass", s), forward_quantities(net, s)) for s in range(net.samples)]
        out.append(("Loss", tuple(q for s in range(net.samples) for q in loss_quantities(net, s)) + (Total(),)))
        out += [(title("Backward pass: δ = ∂E/∂z, one layer at a time", s),
                 tuple(Delta(l, j, s) for l in range(net.depth, 0, -1) for j in range(net.size(l))))
                for s in range(net.samples)]
        if several:
            out += [(title("The chain rule, fully expanded", s), tuple(SampleGrad(p, s) for p in net.params))
                    for s in range(net.samples)]
            out.append((f"Gradients: the {net.reduction} over the samples", tuple(Grad(p) for p in net.params)))
        else:
            out.append(("The chain rule, fully expanded", tuple(Grad(p) for p in net.params)))
        return tuple(out)

    @cached_property
    def rows(self) -> dict[Quantity, int]:
        out, row = {}, self.FIRST_ROW
        for _, qs in self.sections:
            row += 1  # section title
            for q in qs:
                out[q] = row
                row += 1
            row += 1
        return out

    @property
    def update_row(self) -> int:
        return max(self.rows.values()) + 3

    def ref(self, q: Quantity) -> str:
        if isinstance(q, (Input, Target, Param)):
            return defined_name(self.network, q)
        if isinstance(q, LearningRate):
            return lr_name(0)
        return xl_rowcol_to_cell(self.rows[q], self.VALUE_COL)


@dataclass(frozen=True)
class CompareLayout:
    """The Compare sheet: the summary table, then the charts."""

    rates: int

    TARGET_ROW = 2
    TABLE_HEADER_ROW = 4
    VALUE_COL = 1

    def table_row(self, slot: int) -> int:
        return self.TABLE_HEADER_ROW + 1 + slot

    @property
    def chart_row(self) -> int:
        return self.table_row(self.rates) + 2
