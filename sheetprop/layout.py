"""Where each quantity lives: sheet names, defined names, rows and columns.

The single source of cell addresses: the workbook writer, the charts and ``verify`` all ask
these objects instead of repeating offsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from xlsxwriter.utility import quote_sheetname, xl_col_to_name, xl_range_abs, xl_rowcol_to_cell

from sheetprop import gradcheck, limits
from sheetprop.network import Network
from sheetprop.quantities import (A, Delta, Grad, Input, LayerMax, LayerSumExp, LearningRate, LossTerm,
                                  Param, Quantity, Row, SampleGrad, SampleLoss, State, Target, Total, Z)
from sheetprop.update import OPTIMIZERS

NETWORK_SHEET = "Network"
EQUATIONS_SHEET = "Equations"
COMPARE_SHEET = "Compare"
GRADIENT_CHECK_SHEET = "Gradient check"
ERROR_TARGET_NAME = "error_target"
GRADIENT_STEP_NAME = "gradient_check_h"  # the step h of the central differences
DIAGRAM_ITERATION, DIAGRAM_SHEET = "diagram_iteration", "diagram_sheet"  # what the network diagram shows


class Meta:
    """The hidden sheet from which ``sheetprop verify`` rebuilds a workbook's setup: its rows (0-based)."""

    SHEET = "_sheetprop"
    ITERATIONS_ROW = 1  # the number of iterations, in column A
    NETWORK_ROW = 2  # the network as JSON, in chunks from column A on
    SHEETS_ROW = 3  # the training sheets' names, from column A on
    EXERCISE_ROW = 4  # the parts an exercise leaves blank, from column A on (none: not an exercise)


def lr_label(lr: float) -> str:
    """The shortest text that reads back as exactly ``lr`` (0.1, 2, 1e-05)."""
    short = f"{lr:g}"
    return short if float(short) == lr else repr(lr)


def lr_name(slot: int) -> str:
    """Defined name of the learning-rate input in slot 0, 1, …: lr_1, lr_2, …"""
    return f"lr_{slot + 1}"


def defined_name(net: Network, q: Input | Target | Param) -> str:
    """Defined name of an editable input on the Network sheet (input_i1, target_t1_s2, w1_init, w2_11_init)."""
    return q.defined_name(net)


def forward_quantities(net: Network, s: int) -> tuple[Quantity, ...]:
    """Layer by layer for sample s: z and a of each unit, side by side.

    A softmax layer keeps its z together (its largest z and Σ e^(z − max) read them as one
    range, which also holds layers wider than a function's 255 arguments), then its activations.
    """
    out: list[Quantity] = []
    for l in range(1, net.depth + 1):
        units = range(net.size(l))
        if net.activation_of(l).vector:
            out += [Z(l, j, s) for j in units] + [LayerMax(l, s), LayerSumExp(l, s)] + [A(l, j, s) for j in units]
        else:
            out += [q for j in units for q in (Z(l, j, s), A(l, j, s))]
    return tuple(out)


def loss_quantities(net: Network, s: int) -> tuple[Quantity, ...]:
    terms = tuple(LossTerm(j, s) for j in range(net.size(net.depth)))
    return terms if net.samples == 1 else terms + (SampleLoss(s),)


def backward_quantities(net: Network, s: int) -> tuple[Delta, ...]:
    """δ of every unit for sample s, from the output layer back to the first."""
    return tuple(Delta(l, j, s) for l in range(net.depth, 0, -1) for j in range(net.size(l)))


def training_sheet_name(slot: int) -> str:
    """Training sheet 0, 1, … (per optimizer, its learning rates in turn): numbered, so that its tab never
    shows a stale η."""
    return f"Training {slot + 1}"


def state_quantities(net: Network, optimizer: str) -> tuple[State, ...]:
    """The optimizer's state of every parameter: per kind (b; m, v, m̂, v̂), the parameters in order."""
    return tuple(State(p, kind, optimizer) for kind in OPTIMIZERS[optimizer].states for p in net.params)


class ColumnGroups:
    """A table whose column 0 labels its rows and whose columns from 1 on hold ``groups`` of quantities."""

    groups: tuple[tuple[str, tuple[Quantity, ...]], ...]

    @cached_property
    def columns(self) -> tuple[Quantity, ...]:
        return tuple(q for _, qs in self.groups for q in qs)

    @cached_property
    def _col(self) -> dict[Quantity, int]:
        return {q: i + 1 for i, q in enumerate(self.columns)}

    def col(self, q: Quantity) -> int:
        return self._col[q]


@dataclass(frozen=True, eq=False)
class TrainingLayout(ColumnGroups):
    """One training sheet: η at the top, then one row per iteration 0..N, for one optimizer and learning rate."""

    network: Network
    iterations: int
    sheet: str = "lr"
    optimizer: str = "sgd"
    lr_slot: int = 0  # which learning-rate input (lr_1, lr_2, …) the sheet trains with

    TITLE_ROW = 0
    LR_ROW = 1
    GROUP_ROW = 3
    HEADER_ROW = 4
    FIRST_ROW = 5
    ITERATION_COL = 0
    LR_COL = 1

    @staticmethod
    def max_iterations() -> int:
        return limits.MAX_ROWS - TrainingLayout.FIRST_ROW - 1

    @cached_property
    def groups(self) -> tuple[tuple[str, tuple[Quantity, ...]], ...]:
        """Column groups: parameters; per sample its forward pass, loss and δs; E_total; gradients."""
        net = self.network
        grads = ("Gradients ∂E_total/∂p = δ · source", tuple(Grad(p) for p in net.params))
        states = state_quantities(net, self.optimizer)
        state = ((f"{OPTIMIZERS[self.optimizer].title} state after step t = iteration + 1", states),) if states else ()
        backward = "Backward pass: δ = ∂E/∂z"
        if net.samples == 1:
            return (("Parameters", net.params), ("Forward pass", forward_quantities(net, 0)),
                    ("Loss", loss_quantities(net, 0) + (Total(),)), (backward, backward_quantities(net, 0)), grads,
                    *state)
        out: list[tuple[str, tuple[Quantity, ...]]] = [("Parameters", net.params)]
        for s in range(net.samples):
            out += [(f"Sample {s + 1}: forward pass", forward_quantities(net, s)),
                    (f"Sample {s + 1}: loss", loss_quantities(net, s)),
                    (f"Sample {s + 1}: δ = ∂{SampleLoss(s).label(net)}/∂z", backward_quantities(net, s))]
        out += [(f"Loss ({net.reduction} over samples)", (Total(),)), grads, *state]
        return tuple(out)

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
            if q.editable:
                return q.defined_name(net)
            if isinstance(q, LearningRate):
                return self.lr_cell
            return f"{letters[q]}{row_field}"

        return ref

    @property
    def state_columns(self) -> int:
        return len(OPTIMIZERS[self.optimizer].states) * len(self.network.params)

    @property
    def step_number(self) -> str:
        """The optimizer's step t of a row, as a formula template: its iteration + 1."""
        return f"(${xl_col_to_name(self.ITERATION_COL)}{{0}}+1)"

    def _row(self, previous: bool) -> Row:
        """A row of this sheet as formula templates: ``{0}`` for its number, ``{1}`` for the row before's."""
        return Row(self._ref("{0}"), self._ref("{1}") if previous else None, self.optimizer, self.step_number)

    @cached_property
    def row_templates(self) -> dict[Quantity, str]:
        """Per column, its formula in the rows after the first, with ``{0}`` for the row's number and ``{1}`` for
        the previous row's."""
        row = self._row(previous=True)
        return {q: "=" + q.row_formula(self.network, row) for q in self.columns}

    @cached_property
    def first_row_templates(self) -> dict[Quantity, str]:
        """Per column, its formula at iteration 0: each parameter its initial value on the Network sheet, the
        optimizer's state its first step, the rest as in every row."""
        row = self._row(previous=False)
        return {q: "=" + q.row_formula(self.network, row) for q in self.columns}

    def check(self) -> None:
        """Refuse, before anything is written, a sheet or a formula that Excel cannot hold."""
        net = self.network
        with_state = f" with {self.optimizer} (its state: {len(OPTIMIZERS[self.optimizer].states)} columns per parameter)"
        limits.check_extent(self.last_row + 1, len(self.columns) + 1,
                            f"a training sheet of {net.sizes}" + (with_state if self.state_columns else ""))
        last = self.row(self.iterations) + 1
        for q, template in self.row_templates.items():
            limits.check_formula(template.format(last, last - 1), f"{q.label(net)} on a training sheet")


def training_layouts(net: Network, rates: int, iterations: int) -> list[TrainingLayout]:
    """The training sheets of a workbook with ``rates`` learning rates: per optimizer, one per learning rate."""
    return [TrainingLayout(net, iterations, training_sheet_name(o * rates + slot), optimizer, slot)
            for o, optimizer in enumerate(net.optimizers) for slot in range(rates)]


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
        """Forward pass, loss, δs and the chain rule, per sample when there are several."""
        net = self.network
        several = net.samples > 1

        def title(text: str, s: int) -> str:
            return f"{text}, sample {s + 1}" if several else text

        out = [(title("Forward pass", s), forward_quantities(net, s)) for s in range(net.samples)]
        out.append(("Loss", tuple(q for s in range(net.samples) for q in loss_quantities(net, s)) + (Total(),)))
        out += [(title("Backward pass: δ = ∂E/∂z, one layer at a time", s), backward_quantities(net, s))
                for s in range(net.samples)]
        if several:
            out += [(title("The chain rule, fully expanded", s), tuple(SampleGrad(p, s) for p in net.params))
                    for s in range(net.samples)]
            out.append((f"Gradients: the {net.reduction} over the samples of δ · source",
                        tuple(Grad(p) for p in net.params)))
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

    @cached_property
    def updates(self) -> tuple[tuple[str, tuple[Quantity, ...]], ...]:
        """Per optimizer, its first step (with η = lr_1): every parameter's state, then every parameter after it."""
        net = self.network
        return tuple((o, state_quantities(net, o) + net.params) for o in net.optimizers)

    @cached_property
    def update_rows(self) -> dict[tuple[str, Quantity], int]:
        """The row of each line of the update sections, by (optimizer, state or parameter)."""
        out, row = {}, max(self.rows.values()) + 3
        for optimizer, qs in self.updates:
            for q in qs:
                out[(optimizer, q)] = row
                row += 1
            row += 2  # a blank row, then the next section's title
        return out

    @property
    def last_row(self) -> int:
        return max(self.update_rows.values())

    def ref(self, q: Quantity) -> str:
        if q.editable or isinstance(q, Param):
            return q.defined_name(self.network)
        if isinstance(q, LearningRate):
            return lr_name(0)
        if isinstance(q, State):
            return xl_rowcol_to_cell(self.update_rows[(q.optimizer, q)], self.VALUE_COL)
        return xl_rowcol_to_cell(self.rows[q], self.VALUE_COL)


@dataclass(frozen=True)
class CompareLayout:
    """The Compare sheet: the summary table (a row per training sheet), then the charts."""

    rates: int  # rows of the table: one per training sheet

    TARGET_ROW = 2
    TABLE_HEADER_ROW = 4
    VALUE_COL = 1
    RATE_COL = 0  # =lr_1, shown as "η = 0.1": the charts' series names and titles read it

    def table_row(self, slot: int) -> int:
        return self.TABLE_HEADER_ROW + 1 + slot

    def label(self, slot: int) -> str:
        """The learning rate's cell as a chart's series name or title (a reference, so it follows edits)."""
        return f"={quote_sheetname(COMPARE_SHEET)}!{xl_rowcol_to_cell(self.table_row(slot), self.RATE_COL, True, True)}"

    @property
    def chart_row(self) -> int:
        return self.table_row(self.rates) + 2


@dataclass(frozen=True, eq=False)
class GradientCheckLayout(ColumnGroups):
    """The Gradient check sheet: per parameter, the backpropagated gradient at iteration 0 beside the central
    difference (E(p + h) − E(p − h)) / 2h; below, the forward passes that give E(p ± h), a row each."""

    network: Network
    gradient_sheet: TrainingLayout  # where the backpropagated gradients of iteration 0 are read

    H_ROW = 2
    VALUE_COL = 1
    TABLE_HEADER_ROW = 5
    MAX_CELLS = 20_000  # beyond this many forward-pass cells the sheet is left out (a table nobody reads whole)
    TABLE_COLUMNS = ("Parameter", "Backpropagated ∂E/∂p", "E(p + h)", "E(p − h)",
                     "Central difference (E(p + h) − E(p − h)) / 2h", "Relative difference",
                     "Rounding level at this h (relative)", "Units moved across a kink", "Verdict")
    # the table's columns, in TABLE_COLUMNS' order
    BACKPROP_COL, PLUS_COL, MINUS_COL, CENTRAL_COL, RELATIVE_COL, LEVEL_COL, KINKS_COL, VERDICT_COL = range(1, 9)
    SUMMARY_ROW = 4  # the verdicts in one line

    def table_row(self, i: int) -> int:
        return self.TABLE_HEADER_ROW + 1 + i

    @property
    def header_row(self) -> int:
        """The header of the forward passes (their group row is just above it)."""
        return self.table_row(len(self.network.params)) + 3

    def pass_row(self, i: int, sign: int) -> int:
        """The forward pass with parameter i moved by +h (sign 1) or −h (sign −1)."""
        return self.header_row + 1 + 2 * i + (sign < 0)

    @property
    def last_row(self) -> int:
        return self.pass_row(len(self.network.params) - 1, -1)

    @cached_property
    def groups(self) -> tuple[tuple[str, tuple[Quantity, ...]], ...]:
        net = self.network
        out: list[tuple[str, tuple[Quantity, ...]]] = [("Parameters, one moved by ± h", net.params)]
        for s in range(net.samples):
            mark = f"Sample {s + 1}: " if net.samples > 1 else ""
            out += [(f"{mark}forward pass", forward_quantities(net, s)), (f"{mark}loss", loss_quantities(net, s))]
        return tuple(out + [("E_total", (Total(),))])

    @property
    def fits(self) -> bool:
        """Whether the sheet is written: within Excel's grid and :data:`MAX_CELLS` (its formulas are checked
        by :meth:`check`)."""
        cells = (self.last_row - self.header_row) * len(self.columns)
        return (cells <= self.MAX_CELLS and self.last_row < limits.MAX_ROWS
                and len(self.columns) + 1 <= limits.MAX_COLUMNS)

    def formula(self, q: Quantity, row: int, i: int, sign: int) -> str:
        """Cell q of the pass that moves parameter i by sign·h: a parameter is its initial value (± h), and
        the rest is the training sheets' forward pass over this row."""
        net = self.network
        letters = {c: xl_col_to_name(n) for c, n in self._col.items()}

        def ref(r: Quantity) -> str:
            return r.defined_name(net) if r.editable else f"{letters[r]}{row + 1}"

        moved = "" if q != net.params[i] else ("+" if sign > 0 else "-") + GRADIENT_STEP_NAME
        return "=" + q.row_formula(net, Row(ref)) + moved

    def backpropagated(self, p: Param) -> str:
        return self.gradient_sheet.qualified(Grad(p), 0)

    @cached_property
    def kinked(self) -> tuple[Z, ...]:
        """The z of every unit whose activation has a kink at 0 (ReLU, leaky ReLU), every sample."""
        net = self.network
        return tuple(Z(l, j, s) for s in range(net.samples) for l in range(1, net.depth + 1)
                     if net.activation_of(l).kinked for j in range(net.size(l)))

    def kink_pairs(self, i: int) -> list[tuple[str, str]]:
        """(z at p + h, z at p − h) of each kinked unit, for the passes that move parameter i."""
        return [(xl_rowcol_to_cell(self.pass_row(i, 1), self.col(z)), xl_rowcol_to_cell(self.pass_row(i, -1),
                 self.col(z))) for z in self.kinked]

    def energy(self, i: int, sign: int) -> str:
        return xl_rowcol_to_cell(self.pass_row(i, sign), self.col(Total()))

    def check(self) -> None:
        """Refuse a formula Excel cannot hold (only called when the sheet :attr:`fits`)."""
        net = self.network
        for q in self.columns:
            limits.check_formula(self.formula(q, self.last_row, len(net.params) - 1, -1), f"{q.label(net)} on the "
                                 "Gradient check sheet")
        limits.check_formula(gradcheck.kinks_formula(self.kink_pairs(len(net.params) - 1)),
                             "the count of units at a kink on the Gradient check sheet")
