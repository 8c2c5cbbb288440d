"""Write the live backpropagation workbook: Network, Equations, one training sheet per η, Compare.

A :class:`Plan` lays out every sheet and checks it against Excel's limits before anything is
written; the sheet writers then fill it in, each formula carrying the reference's value.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
from xlsxwriter.utility import quote_sheetname, xl_rowcol_to_cell

from sheetprop import diagram, gradcheck, limits, template
from sheetprop.book import Book, check_target
from sheetprop.chainrule import Expansion
from sheetprop.cost import Cost
from sheetprop.exercise import RIGHT, WRONG, Exercise, answers_sheet
from sheetprop.formulas import TEXT
from sheetprop.layout import (
    COMPARE_SHEET,
    EQUATIONS_SHEET,
    ERROR_TARGET_NAME,
    NETWORK_SHEET,
    CompareLayout,
    Meta,
    EquationsLayout,
    GRADIENT_CHECK_SHEET,
    GRADIENT_STEP_NAME,
    GradientCheckLayout,
    TrainingLayout,
    lr_name,
    training_layouts,
)
from sheetprop.network import Network
from sheetprop.quantities import Input, LossTerm, Quantity, Row, Target, Total, Z
from sheetprop.reference import Trace, chunks, evaluate
from sheetprop.rows import ERROR_VALUE, FormulaRowsWorksheet, RowOrdered
from sheetprop.update import OPTIMIZERS, specs

META_SHEET = Meta.SHEET
DEFAULT_ERROR_TARGET = 0.01
DEFAULT_GRADIENT_STEP = 1e-5  # h: the central difference is off by about h²·|E‴|/6, plus rounding of 1e-16·E/h
_CHUNK = 30_000  # characters per cell of the description (Excel holds 32,767)


@dataclass(frozen=True)
class Summary:
    """One line of the summary table: how training went for one optimizer and learning rate."""

    lr: float
    start: float
    end: float  # NaN or inf for a run that diverged
    first_below: int | None
    diverged: int | None = None  # the first iteration whose parameters or E_total are not finite
    optimizer: str = "sgd"


class Tally:
    """The summary of each learning rate, gathered from consecutive blocks of a trace as they stream past."""

    def __init__(self, threshold: float = DEFAULT_ERROR_TARGET, optimizer: str = "sgd") -> None:
        self.threshold, self.optimizer = threshold, optimizer
        self._start: list[float] = []
        self._end: list[float] = []
        self._below: list[int | None] = []
        self._diverged: list[int | None] = []
        self._lrs: list[float] = []

    def add(self, block: Trace) -> None:
        if not self._lrs:
            self._lrs, self._start = block.learning_rates.tolist(), block.total[:, 0].tolist()
            self._below, self._diverged = [None] * len(self._lrs), [None] * len(self._lrs)
        self._end = block.total[:, -1].tolist()
        def earliest(old: list[int | None], new: list[int | None]) -> list[int | None]:
            return [o if o is not None else n for o, n in zip(old, new)]

        self._below = earliest(self._below, block.first_below(self.threshold))
        self._diverged = earliest(self._diverged, block.first_diverged())

    def summaries(self) -> list[Summary]:
        return [Summary(*row, optimizer=self.optimizer)
                for row in zip(self._lrs, self._start, self._end, self._below, self._diverged)]


def summarize(trace: Trace, threshold: float = DEFAULT_ERROR_TARGET) -> list[Summary]:
    tally = Tally(threshold)
    tally.add(trace)
    return tally.summaries()


@dataclass(frozen=True)
class EquationLine:
    """One line of the Equations sheet: what it is, its chain rule, its equation and its live formula."""

    quantity: Quantity
    name: str
    chain: str | None
    equation: str
    formula: str


@dataclass(frozen=True, eq=False)
class Plan:
    """Every sheet of one workbook laid out, and checked against Excel's limits."""

    network: Network
    learning_rates: tuple[float, ...]
    iterations: int
    exercise: frozenset[str] = frozenset()  # the parts left blank for a student (see sheetprop.exercise)

    @cached_property
    def training(self) -> list[TrainingLayout]:
        return training_layouts(self.network, len(self.learning_rates), self.iterations)

    @cached_property
    def exercises(self) -> dict[str, Exercise]:
        """Per training sheet, its blank cells and their checks (none unless the workbook is an exercise)."""
        return {layout.sheet: Exercise(layout, self.exercise, self.learning_rates[layout.lr_slot])
                for layout in self.training} if self.exercise else {}

    @cached_property
    def equations(self) -> EquationsLayout:
        return EquationsLayout(self.network)

    @cached_property
    def equation_lines(self) -> list[EquationLine]:
        net, eq = self.network, self.equations
        expansion = Expansion(net)
        lines = []
        for _, qs in eq.sections:
            for q in qs:
                name, chain, text = q.equation(net, expansion)
                lines.append(EquationLine(q, name, chain, "= " + text, "=" + q.formula(net, eq.ref)))
        return lines

    @cached_property
    def update_lines(self) -> dict[str, list[EquationLine]]:
        """Per optimizer, its first step from the initial values with η = lr_1: the state, then each parameter."""
        net, eq = self.network, self.equations
        out = {}
        for optimizer, qs in eq.updates:
            lines = []
            for q in qs:  # the state of step 1 (from nothing), then each parameter after it (from iteration 0)
                after = q in net.param_index

                def row(ref):
                    return Row(ref, ref if after else None, optimizer, "1")

                lines.append(EquationLine(q, q.label(net) + (" ←" if after else ""), None,
                                          "= " + q.row_formula(net, row(net.label), TEXT),
                                          "=" + q.row_formula(net, row(eq.ref))))
            out[optimizer] = lines
        return out

    @cached_property
    def gradient_check(self) -> GradientCheckLayout | None:
        """The Gradient check sheet, or None where it would be too large to be of use (or, in an exercise that
        leaves the backward pass blank, where its central differences would give the answers away)."""
        layout = GradientCheckLayout(self.network, self.training[0])
        if not layout.fits or self.exercise & {"delta", "gradient"}:
            return None
        try:
            layout.check()
        except limits.LimitError:
            return None
        return layout

    @cached_property
    def cost(self) -> Cost:
        """The formula cells of the training sheets, and what writing them takes."""
        return Cost(sum((self.iterations + 1) * len(layout.columns) for layout in self.training),
                    self.iterations * len(self.network.optimizers), bool(self.exercise))

    def check(self) -> None:
        """Raise :class:`~sheetprop.limits.LimitError` for anything Excel could not hold, or too large for any
        spreadsheet program to open."""
        net = self.network
        if not self.cost.openable:
            raise limits.LimitError(self.cost.refusal())
        limits.check_text(net.description, "the template's description")
        rates = len(self.learning_rates)
        several = f"{len(net.optimizers)} optimizers × " if len(net.optimizers) > 1 else ""
        limits.check_training_sheets(len(self.training), f"{several}{rates} learning rates")
        diagram.Diagram(tuple(self.training)).check()
        for layout in self.training[::rates]:  # an optimizer's sheets have the same shape and formulas
            layout.check()
        limits.check_extent(self.equations.last_row + 1, EquationsLayout.VALUE_COL + 1, "the Equations sheet")
        for line in self.equation_lines + [line for lines in self.update_lines.values() for line in lines]:
            what = f"{line.name} on the Equations sheet"
            limits.check_formula(line.formula, what)
            limits.check_text(line.equation, what)


def build(net: Network, learning_rates: list[float], iterations: int, out: str | Path, force: bool = False,
          progress: Callable[[int], None] | None = None, exercise: frozenset[str] = frozenset()) -> list[Summary]:
    """Check that the workbook fits in Excel, compute the reference trace and write it to ``out`` atomically;
    ``progress`` is told the training cells of each block as they are written. ``exercise``: the parts of the
    derivation left blank for a student (see :mod:`sheetprop.exercise`)."""
    check_target(Path(out), force)
    plan = Plan(net, tuple(learning_rates), iterations, exercise)
    plan.check()
    # the reference streams, one trace per optimizer over every learning rate: memory stays flat in N
    streams = [chunks(net, learning_rates, iterations, optimizer=o) for o in net.optimizers]
    starts = {o: next(stream) for o, stream in zip(net.optimizers, streams)}
    tallies = [Tally(optimizer=o) for o in net.optimizers]
    with Book(out, force=force, constant_memory=True) as book:
        _network_sheet(book, plan, starts)
        _equations_sheet(book, plan, starts)
        compare = book.add_sheet(COMPARE_SHEET)
        if plan.gradient_check is not None:
            _gradient_check_sheet(book, plan.gradient_check)
        sheets = [_training_sheet(book, layout, starts[layout.optimizer], plan.exercises.get(layout.sheet))
                  for layout in plan.training]
        for blocks in zip(*(itertools.chain([starts[o]], stream) for o, stream in zip(net.optimizers, streams))):
            by_optimizer = dict(zip(net.optimizers, blocks))
            for tally, block in zip(tallies, blocks):
                tally.add(block)
            for layout, write in zip(plan.training, sheets):
                write(by_optimizer[layout.optimizer])
                if progress is not None:
                    progress(len(blocks[0].total[0]) * len(layout.columns))
        summaries = [s for tally in tallies for s in tally.summaries()]
        if plan.exercises:  # what the sheets show before the student writes anything
            summaries = [_exercise_summary(plan.exercises[layout.sheet], s) for layout, s in
                         zip(plan.training, summaries)]
            for layout in plan.training:
                _answers_sheet(book, plan.exercises[layout.sheet])
        _compare_sheet(book, compare, plan, summaries)
        _meta_sheet(book, plan)
    return summaries


def _cached(value: float) -> float | str:
    """A value to cache beside a formula: the number, or Excel's error where the reference overflowed."""
    return value if math.isfinite(value) else ERROR_VALUE


def _meta_sheet(book: Book, plan: Plan) -> None:
    """A hidden sheet from which ``sheetprop verify`` rebuilds the network (see :mod:`sheetprop.verification`)."""
    ws = book.add_sheet(META_SHEET)
    ws.write(0, 0, "Read by `sheetprop verify`: iterations; the network as JSON (over row 3); the training sheets.")
    ws.write_number(Meta.ITERATIONS_ROW, 0, plan.iterations)
    text = template.to_json(plan.network)
    for i in range(0, len(text), _CHUNK):
        ws.write_string(Meta.NETWORK_ROW, i // _CHUNK, text[i : i + _CHUNK])
    for i, layout in enumerate(plan.training):
        ws.write_string(Meta.SHEETS_ROW, i, layout.sheet)
    for i, part in enumerate(sorted(plan.exercise)):
        ws.write_string(Meta.EXERCISE_ROW, i, part)
    ws.hide()


# -- Network sheet ----------------------------------------------------------------------------
def _network_sheet(book: Book, plan: Plan, starts: dict[str, Trace]) -> None:
    f, net = book.formats, plan.network
    ws = RowOrdered(book.add_sheet(NETWORK_SHEET))
    ws.set_column(0, 0, 22)
    ws.set_column(1, 1, 12)
    ws.set_column(2, 2, 26)
    ws.write(0, 0, f"Backpropagation, live — the “{net.name}” network", f.title)
    ws.write(1, 0, net.description, f.note)
    ws.write(2, 0, "Yellow cells are inputs: change any of them and every sheet recomputes.", f.note)
    row = _samples_block(book, ws, net, 4)
    row = _parameters_block(book, ws, net, row + 1)
    row = _rates_block(book, ws, plan, row + 1)
    row = _hyperparameters_block(book, ws, net, row + 1)
    _structure_block(book, ws, plan, row + 1)
    first = plan.training[0]
    exercise = plan.exercises.get(first.sheet)
    shown = None if exercise is None else (  # the first sheet's row 0 as the exercise shows it: blanks are 0
        lambda q: exercise.shown(q) if q in first.columns else float(q.values(starts[first.optimizer])[0, 0]))
    diagram.write(book, ws, diagram.Diagram(tuple(plan.training)), starts[first.optimizer], top=4, left=4, data_col=20,
                  shown=shown)
    ws.flush()


def _samples_block(book: Book, ws, net: Network, row: int) -> int:
    f = book.formats
    several = net.samples > 1
    combined = {"mean": "the mean of their losses", "sum": "the sum of their losses"}[net.reduction]
    ws.write(row, 0, f"Samples ({net.samples}; E_total is {combined})" if several else "Sample", f.subtitle)
    book.write_row(ws, row + 1, 0, ["Name", "Value", "Defined name"], f.header)
    row += 2
    for s in range(net.samples):
        entries = [(Input(k, s), net.inputs[s, k]) for k in range(net.size(0))]
        entries += [(Target(j, s), net.targets[s, j]) for j in range(net.size(net.depth))]
        for q, value in entries:
            kind = "input " if isinstance(q, Input) else "target "
            ws.write(row, 0, kind + q.label(net))
            ws.write_number(row, 1, value, f.input)
            ws.write(row, 2, q.defined_name(net), f.note)
            book.define_name(q.defined_name(net), NETWORK_SHEET, xl_rowcol_to_cell(row, 1, True, True))
            row += 1
    return row + 1


def _parameters_block(book: Book, ws, net: Network, row: int) -> int:
    f = book.formats
    ws.write(row, 0, "Initial parameters", f.subtitle)
    book.write_row(ws, row + 1, 0, ["Parameter", "Value", "Connects"], f.header)
    row += 2
    for p in net.params:
        src, target = net.source(p), Z(p.l, p.j).label(net)
        ws.write(row, 0, p.defined_name(net))
        ws.write_number(row, 1, net.initial(p), f.input)
        ws.write(row, 2, f"bias of {target}" if src is None else f"{src.label(net)} → {target}")
        book.define_name(p.defined_name(net), NETWORK_SHEET, xl_rowcol_to_cell(row, 1, True, True))
        row += 1
    return row + 1


def _rates_block(book: Book, ws, plan: Plan, row: int) -> int:
    f = book.formats
    several = len(plan.network.optimizers) > 1
    ws.write(row, 0, "Learning rates η", f.subtitle)
    book.write_row(ws, row + 1, 0, ["Name", "η", "Training sheets" if several else "Training sheet"], f.header)
    row += 2
    for slot, lr in enumerate(plan.learning_rates):
        ws.write(row, 0, lr_name(slot))
        ws.write_number(row, 1, lr, f.input)
        sheets = [layout for layout in plan.training if layout.lr_slot == slot]
        if several:
            ws.write(row, 2, ", ".join(f"{layout.sheet} ({layout.optimizer})" for layout in sheets))
        else:
            ws.write_url(row, 2, f"internal:{quote_sheetname(sheets[0].sheet)}!A1", string=sheets[0].sheet)
        ws.data_validation(xl_rowcol_to_cell(row, 1), {
            "validate": "decimal", "criteria": ">", "value": 0,
            "input_title": "Learning rate", "input_message": "A positive number",
            "error_title": "Learning rate", "error_message": "The learning rate must be a positive number.",
        })
        book.define_name(lr_name(slot), NETWORK_SHEET, xl_rowcol_to_cell(row, 1, True, True))
        row += 1
    return row + 1


def _hyperparameters_block(book: Book, ws, net: Network, row: int) -> int:
    """The optimizers' hyperparameters, each a named input validated as torch.optim would take it."""
    names = net.hyperparameters_used
    if not names:
        return row - 1
    f = book.formats
    ws.write(row, 0, "Optimizer hyperparameters", f.subtitle)
    book.write_row(ws, row + 1, 0, ["Name", "Value", "Meaning"], f.header)
    row += 2
    bounds = specs(net.optimizers)
    for name in names:
        spec = bounds[name]
        ws.write(row, 0, f"{name} ({spec.symbol})")
        value = net.hyperparameters[name]
        ws.write_number(row, 1, value, f.scientific_input if 0 < abs(value) < 1e-3 else f.input)
        ws.write(row, 2, spec.meaning)
        cell = xl_rowcol_to_cell(row, 1)
        conditions = [f"{cell}={spec.only:g}"] if spec.only is not None else [
            f"{cell}{'>' if spec.low_open else '>='}{spec.low:g}"] + ([] if spec.high is None else [f"{cell}<{spec.high:g}"])
        message = f"{spec.symbol}: a number {spec.expected}."
        ws.data_validation(cell, {"validate": "custom", "value": f"=AND(ISNUMBER({cell}),{','.join(conditions)})",
                                  "input_title": name, "input_message": message,
                                  "error_title": name, "error_message": message})
        book.define_name(name, NETWORK_SHEET, xl_rowcol_to_cell(row, 1, True, True))
        row += 1
    return row + 1


def _structure_block(book: Book, ws, plan: Plan, row: int) -> int:
    f, net = book.formats, plan.network
    ws.write(row, 0, "Structure", f.subtitle)
    book.write_row(ws, row + 1, 0, ["Layer", "Units", "Activation, bias"], f.header)
    ws.write(row + 2, 0, "input")
    ws.write_number(row + 2, 1, net.size(0))
    row += 3
    for l, layer in enumerate(net.layers, start=1):
        ws.write(row, 0, f"{layer.name} (layer {l})")
        ws.write_number(row, 1, layer.size)
        ws.write(row, 2, f"{layer.activation}, {'with' if layer.bias else 'no'} bias")
        row += 1
    ws.write(row, 0, "loss")
    ws.write(row, 2, f"{net.loss}: {LossTerm(0).formula(net, net.label, TEXT)} per output")
    ws.write(row + 1, 0, "iterations")
    ws.write_number(row + 1, 1, plan.iterations)
    return row + 2


# -- Equations sheet --------------------------------------------------------------------------
def _equations_sheet(book: Book, plan: Plan, starts: dict[str, Trace]) -> None:
    f, net, eq = book.formats, plan.network, plan.equations
    trace = starts[net.optimizers[0]]
    ws = RowOrdered(book.add_sheet(EQUATIONS_SHEET))
    ws.set_column(eq.NAME_COL, eq.NAME_COL, 14)
    ws.set_column(eq.CHAIN_COL, eq.CHAIN_COL, 34)
    ws.set_column(eq.EQUATION_COL, eq.EQUATION_COL, 90)
    ws.set_column(eq.VALUE_COL, eq.VALUE_COL, 20)
    ws.write(0, 0, "The equations, and their values at iteration 0", f.title)
    ws.write(1, 0, "Each value is a live formula over the inputs on the Network sheet; the training sheets "
                   "repeat the same one-step formulas (each δ from the next layer's δ) row after row.", f.note)
    book.write_row(ws, eq.FIRST_ROW - 1, 0, ["Quantity", "Chain rule", "Equation", "Value at iteration 0"], f.header)
    for title, qs in eq.sections:  # merged across the sheet, so that no cell beside it cuts a heading short
        ws.merge_range(eq.rows[qs[0]] - 1, 0, eq.rows[qs[0]] - 1, eq.VALUE_COL, title, f.subtitle)
    book.scientific_beyond(ws, eq.FIRST_ROW, eq.VALUE_COL, eq.last_row, eq.VALUE_COL)
    heading = book.workbook.add_format({"bold": True, "font_size": 12, "font_color": "#2F5597", "valign": "top"})
    wrapped = book.workbook.add_format({"text_wrap": True, "valign": "top"})
    yours = "yours to derive: write it in the training sheets"  # a part an exercise leaves blank
    for line in plan.equation_lines:
        r = eq.rows[line.quantity]
        ws.write(r, eq.NAME_COL, line.name, f.label)
        if line.chain:
            ws.write_string(r, eq.CHAIN_COL, line.chain)
        if line.quantity.part in plan.exercise:
            ws.write_string(r, eq.EQUATION_COL, yours, f.note)
            continue
        ws.write_string(r, eq.EQUATION_COL, line.equation)
        ws.write_formula(r, eq.VALUE_COL, line.formula, f.number, _cached(float(trace.values(line.quantity)[0, 0])))
    for optimizer, lines in plan.update_lines.items():
        rule, start = OPTIMIZERS[optimizer], starts[optimizer]
        first = eq.update_rows[(optimizer, lines[0].quantity)]
        text = f"The first step, with η = lr_1 and t = 1:  {rule.rule}"
        ws.merge_range(first - 1, 0, first - 1, eq.CHAIN_COL, f"Update: {rule.title}", heading)
        ws.merge_range(first - 1, eq.EQUATION_COL, first - 1, eq.VALUE_COL, text, wrapped)
        ws.set_row(first - 1, 15 * math.ceil(len(text) / 100))  # its lines, wrapped within the equation and value
        for line in lines:
            r = eq.update_rows[(optimizer, line.quantity)]
            q = line.quantity
            value = start.values(q)[0, 1 if q in net.param_index else 0]  # a parameter after the step
            ws.write(r, eq.NAME_COL, line.name, f.label)
            if q.part in plan.exercise:
                ws.write_string(r, eq.EQUATION_COL, yours, f.note)
                continue
            ws.write_string(r, eq.EQUATION_COL, line.equation)
            ws.write_formula(r, eq.VALUE_COL, line.formula, f.number, _cached(float(value)))
    ws.flush()


# -- Gradient check sheet ---------------------------------------------------------------------
@dataclass(frozen=True)
class GradientCheck:
    """The Gradient check sheet's numbers as the reference computes them, per parameter."""

    passes: Trace  # row 2i: parameter i moved by +h, row 2i + 1: by −h
    backprop: np.ndarray
    energy: np.ndarray  # E_total of each pass
    central: np.ndarray
    relative: np.ndarray
    rounding: np.ndarray
    kinks: np.ndarray
    verdicts: list[str]


def check_gradients(layout: GradientCheckLayout, h: float) -> GradientCheck:
    """Every parameter's central difference at step ``h`` against backpropagation, judged (see
    :mod:`sheetprop.gradcheck`)."""
    net = layout.network
    n = len(net.params)
    initial = np.array([net.initial(p) for p in net.params])
    moved = np.repeat(initial[None, :], 2 * n, axis=0)
    moved[0::2] += h * np.eye(n)
    moved[1::2] -= h * np.eye(n)
    passes = evaluate(net, moved)
    grads = evaluate(net, initial[None, :]).grads[0]
    energy = passes.total
    central = (energy[0::2] - energy[1::2]) / (2 * h)
    scale = np.maximum(np.maximum(np.abs(central), np.abs(grads)), 1e-300)
    relative = np.abs(central - grads) / scale
    kinks = np.array([sum(float((passes.values(z)[2 * i] > 0) != (passes.values(z)[2 * i + 1] > 0))
                          for z in layout.kinked) for i in range(n)])
    rounding = gradcheck.level(energy[0::2], energy[1::2], central, grads, h)
    verdicts = [gradcheck.verdict(*v) for v in zip(relative, rounding, kinks)]
    return GradientCheck(passes, grads, energy, central, relative, rounding, kinks, verdicts)


def _gradient_check_sheet(book: Book, layout: GradientCheckLayout) -> None:
    """Backpropagation confirmed by the definition of the derivative, from the sheet's own forward passes."""
    f, net = book.formats, layout.network
    ws = book.add_sheet(GRADIENT_CHECK_SHEET)
    n = len(net.params)
    check = check_gradients(layout, DEFAULT_GRADIENT_STEP)
    passes, grads, energy, central, relative = check.passes, check.backprop, check.energy, check.central, check.relative
    rounding, kinks, verdicts = check.rounding, check.kinks, check.verdicts

    ws.set_column(0, 0, 26)
    ws.set_column(1, len(layout.columns), 14)
    ws.write(0, 0, "Gradient check: backpropagation against the definition of the derivative", f.title)
    ws.write(1, 0, f"Each E(p ± h) is a forward pass below, with the initial values of the Network sheet and one "
                   f"parameter moved by h; the backpropagated gradients are iteration 0 of "
                   f"{layout.gradient_sheet.sheet}. Break a formula there and its row here disagrees.", f.note)
    ws.write(layout.H_ROW, 0, "step h", f.label)
    ws.write_number(layout.H_ROW, layout.VALUE_COL, DEFAULT_GRADIENT_STEP, f.scientific_input)
    h_cell = xl_rowcol_to_cell(layout.H_ROW, layout.VALUE_COL)
    ws.data_validation(h_cell, {"validate": "decimal", "criteria": ">", "value": 0, "input_title": "Step h",
                                "input_message": "A small positive number (1e-5: errors near 1e-10)",
                                "error_title": "Step h", "error_message": "h must be a positive number."})
    book.define_name(GRADIENT_STEP_NAME, GRADIENT_CHECK_SHEET, xl_rowcol_to_cell(layout.H_ROW, layout.VALUE_COL, True, True))
    first, last = layout.table_row(0), layout.table_row(n - 1)
    small = book.workbook.add_format({"num_format": "0.0E+00"})

    def column(col: int) -> str:
        return f"{xl_rowcol_to_cell(first, col)}:{xl_rowcol_to_cell(last, col)}"

    ws.write(layout.H_ROW + 1, 0, "largest relative difference", f.label)
    ws.write_formula(layout.H_ROW + 1, layout.VALUE_COL, f"=MAX({column(layout.RELATIVE_COL)})", small,
                     float(relative.max()))
    ws.write(layout.SUMMARY_ROW, 0, "verdict", f.label)
    ws.write_formula(layout.SUMMARY_ROW, layout.VALUE_COL, gradcheck.summary_formula(column(layout.VERDICT_COL), n),
                     f.label, gradcheck.summary(verdicts))
    book.write_row(ws, layout.TABLE_HEADER_ROW, 0, list(layout.TABLE_COLUMNS), f.header)
    ws.set_row(layout.TABLE_HEADER_ROW, 48)
    for i, p in enumerate(net.params):
        r = layout.table_row(i)
        c = [xl_rowcol_to_cell(r, col) for col in range(len(layout.TABLE_COLUMNS))]
        ws.write(r, 0, p.label(net), f.label)
        ws.write_formula(r, layout.BACKPROP_COL, "=" + layout.backpropagated(p), f.number, _cached(float(grads[i])))
        ws.write_formula(r, layout.PLUS_COL, f"={layout.energy(i, 1)}", f.number, _cached(float(energy[2 * i])))
        ws.write_formula(r, layout.MINUS_COL, f"={layout.energy(i, -1)}", f.number, _cached(float(energy[2 * i + 1])))
        ws.write_formula(r, layout.CENTRAL_COL, f"=({c[layout.PLUS_COL]}-{c[layout.MINUS_COL]})/(2*{GRADIENT_STEP_NAME})",
                         f.number, _cached(float(central[i])))
        ws.write_formula(r, layout.RELATIVE_COL, f"=ABS({c[layout.CENTRAL_COL]}-{c[layout.BACKPROP_COL]})/MAX(ABS("
                         f"{c[layout.CENTRAL_COL]}),ABS({c[layout.BACKPROP_COL]}),1E-300)", small, _cached(float(relative[i])))
        ws.write_formula(r, layout.LEVEL_COL, gradcheck.level_formula(
            c[layout.PLUS_COL], c[layout.MINUS_COL], c[layout.CENTRAL_COL], c[layout.BACKPROP_COL], GRADIENT_STEP_NAME),
            small, _cached(float(rounding[i])))
        ws.write_formula(r, layout.KINKS_COL, gradcheck.kinks_formula(layout.kink_pairs(i)), None, float(kinks[i]))
        ws.write_formula(r, layout.VERDICT_COL, gradcheck.verdict_formula(
            c[layout.RELATIVE_COL], c[layout.LEVEL_COL], c[layout.KINKS_COL]), f.label, verdicts[i])
    for title, qs in layout.groups:
        a, b = layout.col(qs[0]), layout.col(qs[-1])
        if a == b:
            ws.write(layout.header_row - 1, a, title, f.group)
        else:
            ws.merge_range(layout.header_row - 1, a, layout.header_row - 1, b, title, f.group)
    ws.write(layout.header_row, 0, "moved", f.header)
    for q in layout.columns:
        ws.write(layout.header_row, layout.col(q), q.label(net), f.header)
    values = np.column_stack([passes.values(q) for q in layout.columns])
    for i, p in enumerate(net.params):
        for sign in (1, -1):
            r = layout.pass_row(i, sign)
            ws.write(r, 0, f"{p.label(net)} {'+' if sign > 0 else '−'} h")
            for c, q in enumerate(layout.columns):
                ws.write_formula(r, layout.col(q), layout.formula(q, r, i, sign), f.number,
                                 _cached(float(values[2 * i + (sign < 0), c])))


# -- training sheets --------------------------------------------------------------------------
def _training_sheet(book: Book, layout: TrainingLayout, start: Trace,
                    exercise: Exercise | None = None) -> Callable[[Trace], None]:
    """Write a training sheet's head and return the writer of its rows, block by block (``start`` and the
    blocks: the trace of the sheet's optimizer); an exercise's rows are written at once."""
    f, net, slot = book.formats, layout.network, layout.lr_slot
    ws = book.add_sheet(layout.sheet, FormulaRowsWorksheet)
    lr = float(start.learning_rates[slot])
    # the title is the η cell shown through a number format, so it follows an edit of η
    title = book.labelled(f"{OPTIMIZERS[layout.optimizer].title} with η = ", "General", f" ({net.name} network)",
                      {"bold": True, "font_size": 16, "font_color": "#1F3864", "align": "left"})
    ws.merge_range(layout.TITLE_ROW, 0, layout.TITLE_ROW, 11, "", title)  # a number does not overflow: room
    ws.write_formula(layout.TITLE_ROW, 0, f"={layout.lr_cell}", title, lr)
    ws.write(layout.LR_ROW, 0, "η", f.label)
    ws.write_formula(layout.LR_ROW, layout.LR_COL, f"={lr_name(slot)}", f.number, lr)
    ws.write(layout.LR_ROW, layout.LR_COL + 1, f"from {lr_name(slot)} on the Network sheet", f.note)
    if exercise is not None:  # the count of right cells (constant memory: every row in order)
        count = f'=COUNTIF({exercise.check_range},"{RIGHT}")&" of {exercise.cells:,} cells right so far"'
        ws.write_formula(layout.LR_ROW, layout.LR_COL + 4, count, f.label, f"0 of {exercise.cells:,} cells right so far")
    ws.set_column(0, 0, 9)
    ws.set_column(1, len(layout.columns), 12)
    if exercise is not None:
        centred = book.workbook.add_format({"align": "center"})
        ws.set_column(exercise.check_col(exercise.blanks[0]), exercise.check_col(exercise.blanks[-1]), 5, centred)
    ws.freeze_panes(layout.FIRST_ROW, 1)
    ws.repeat_rows(layout.GROUP_ROW, layout.HEADER_ROW)
    for title, qs in layout.groups:
        first, last = layout.col(qs[0]), layout.col(qs[-1])
        if first == last:
            ws.write(layout.GROUP_ROW, first, title, f.group)
        else:
            ws.merge_range(layout.GROUP_ROW, first, layout.GROUP_ROW, last, title, f.group)
    if exercise is not None:
        first, last = exercise.check_col(exercise.blanks[0]), exercise.check_col(exercise.blanks[-1])
        ws.merge_range(layout.GROUP_ROW, first, layout.GROUP_ROW, last, "Checks of the cells you write: ✓ right, "
                       "✗ not right yet", f.group)
    ws.write(layout.HEADER_ROW, layout.ITERATION_COL, "iteration", f.header)
    for q in layout.columns:
        ws.write(layout.HEADER_ROW, layout.col(q), q.label(net), f.header)
    for q in exercise.blanks if exercise is not None else ():
        ws.write(layout.HEADER_ROW, exercise.check_col(q), q.label(net), f.header)

    if exercise is not None:
        _exercise_rows(book, ws, exercise)
        return lambda block: None
    r = layout.row(0)  # iteration 0 takes the parameters from the Network sheet
    ws.write_number(r, layout.ITERATION_COL, 0)
    for q in layout.columns:
        formula = layout.first_row_templates[q].format(r + 1, r)
        ws.write_formula(r, layout.col(q), formula, f.number, _cached(float(start.values(q)[slot, 0])))
    cells = [(layout.col(q), layout.row_templates[q], f.number) for q in layout.columns]
    rows = ws.formula_rows(layout.row(1), layout.ITERATION_COL, layout.iterations, cells)

    def write(block: Trace) -> None:
        values = np.column_stack([block.values(q)[slot] for q in layout.columns])  # (block's rows, columns)
        skip = 1 if block.first == 0 else 0  # row 0 is written above
        rows(range(block.first + skip, block.first + len(values)), values[skip:])

    return write


# -- an exercise's rows and answers -----------------------------------------------------------
def _exercise_rows(book: Book, ws, exercise: Exercise) -> None:
    """Every row of an exercise's training sheet: the student's cells blank (input-coloured), the rest the
    usual formulas over them, and beside the table a check per blank cell with the count of right ones."""
    f, layout = book.formats, exercise.layout
    shown, _ = exercise.simulation
    blanks = exercise.blanks
    right = book.workbook.add_format({"bg_color": "#C6EFCE", "font_color": "#006100"})
    wrong = book.workbook.add_format({"bg_color": "#FFC7CE", "font_color": "#9C0006"})
    checks = book.workbook.add_format({"align": "center"})
    for k in range(layout.iterations + 1):
        r = layout.row(k)
        ws.write_number(r, layout.ITERATION_COL, k)
        for i, q in enumerate(layout.columns):
            if exercise.blank(q, k):
                ws.write_blank(r, layout.col(q), None, f.input)
                continue
            template = (layout.first_row_templates if k == 0 else layout.row_templates)[q]
            ws.write_formula(r, layout.col(q), template.format(r + 1, r), f.number, _cached(float(shown[k, i])))
        for q in blanks:
            if exercise.blank(q, k):
                ws.write_formula(r, exercise.check_col(q), exercise.check_formula(q, k), checks, "")
    for q in blanks:  # the cell itself turns green or red with its check
        first = layout.row(0) + (q in layout.network.param_index)
        cells = f"{xl_rowcol_to_cell(first, layout.col(q))}:{xl_rowcol_to_cell(layout.last_row, layout.col(q))}"
        check = xl_rowcol_to_cell(first, exercise.check_col(q), col_abs=True)
        for mark, style in ((RIGHT, right), (WRONG, wrong)):
            ws.conditional_format(cells, {"type": "formula", "criteria": f'={check}="{mark}"', "format": style})


def _answers_sheet(book: Book, exercise: Exercise) -> None:
    """The very hidden sheet of one training sheet's answers: each blank cell's correct formula over the
    student's own cells, where the checks read it."""
    layout = exercise.layout
    ws = book.add_sheet(answers_sheet(layout.sheet))
    _, answers = exercise.simulation
    ws.write(0, 0, f"The answers to {layout.sheet}: each blank cell's formula over the cells the student wrote")
    for k in range(layout.iterations + 1):
        for i, q in enumerate(layout.columns):
            if exercise.blank(q, k):
                ws.write_formula(layout.row(k), layout.col(q), exercise.answer_formula(q, k), None,
                                 _cached(float(answers[k, i])))
    ws.very_hidden()


def _exercise_summary(exercise: Exercise, summary: Summary) -> Summary:
    """A summary line as an exercise shows it before the student writes anything."""
    shown, _ = exercise.simulation
    total = np.nan_to_num(shown[:, exercise.layout.columns.index(Total())], nan=0.0)
    below = np.flatnonzero(total < DEFAULT_ERROR_TARGET)
    return dataclasses.replace(summary, start=float(total[0]), end=float(total[-1]),
                               first_below=int(below[0]) if below.size else None, diverged=None)


# -- Compare sheet ----------------------------------------------------------------------------
def _compare_sheet(book: Book, ws, plan: Plan, summaries: list[Summary]) -> None:
    f, layouts, net = book.formats, plan.training, plan.network
    several = len(net.optimizers) > 1
    cl = CompareLayout(len(layouts))
    n = plan.iterations
    ws.set_column(0, 0, 24 if several else 14)
    ws.set_column(1, 4, 20)
    ws.write(0, 0, f"How the {'optimizer and the ' if several else ''}learning rate change{'' if several else 's'} "
                   "training", f.title)
    ws.write(1, 0, "Every number here is a formula over the training sheets; the charts read their ranges.", f.note)
    ws.write(cl.TARGET_ROW, 0, "Error target", f.label)
    ws.write_number(cl.TARGET_ROW, cl.VALUE_COL, DEFAULT_ERROR_TARGET, f.input)
    book.define_name(ERROR_TARGET_NAME, COMPARE_SHEET, xl_rowcol_to_cell(cl.TARGET_ROW, cl.VALUE_COL, True, True))
    headers = ["Optimizer, learning rate η" if several else "Learning rate η", "Training sheet",
               "E_total at iteration 0", f"E_total at iteration {n}", "First iteration with E_total < target"]
    book.write_row(ws, cl.TABLE_HEADER_ROW, 0, headers, f.header)
    ws.set_row(cl.TABLE_HEADER_ROW, 32)
    centred = book.workbook.add_format({"align": "center", "num_format": "0"})
    link = book.workbook.add_format({"align": "center", "font_color": "blue", "underline": 1})
    for slot, (layout, s) in enumerate(zip(layouts, summaries)):
        r = cl.table_row(slot)
        rate = book.labelled(f"{OPTIMIZERS[layout.optimizer].title}, η = " if several else "η = ", "General")
        ws.write_formula(r, cl.RATE_COL, f"={lr_name(layout.lr_slot)}", rate, s.lr)
        ws.write_url(r, 1, f"internal:{quote_sheetname(layout.sheet)}!A1", link, string=layout.sheet)
        ws.write_formula(r, 2, "=" + layout.qualified(Total(), 0), f.number, _cached(s.start))
        ws.write_formula(r, 3, "=" + layout.qualified(Total(), n), f.number, _cached(s.end))
        first = f"INDEX({layout.column_range(None)},MATCH(TRUE,{layout.column_range(Total())}<{ERROR_TARGET_NAME},0))"
        ws.write_array_formula(r, 4, r, 4, f'{{=IFERROR({first},"never")}}', centred,
                               "never" if s.first_below is None else s.first_below)

    def series(slot: int) -> dict:
        layout = layouts[slot]
        return {"name": cl.label(slot),
                "categories": "=" + layout.column_range(None), "values": "=" + layout.column_range(Total())}

    top = cl.chart_row
    if several:
        _optimizer_charts(book, ws, plan, series, top)
        return
    all_series = [series(slot) for slot in range(len(layouts))]
    big = book.chart("E_total vs iteration, every learning rate", all_series, "iteration", "E_total", x_max=n)
    big.set_size({"width": 700, "height": 400})
    ws.insert_chart(top, 0, big)
    log = book.chart("The same on a log scale", all_series, "iteration", "E_total (log)", y_log=True, x_max=n)
    log.set_size({"width": 700, "height": 400})
    ws.insert_chart(top, 0, log, {"x_offset": 710})
    small = [book.chart(None, [series(slot)], "iteration", "E_total", x_max=n, legend="top")
             for slot in range(len(layouts))]
    _grid(ws, top + 21, small, width=465, height=260)


def _optimizer_charts(book: Book, ws, plan: Plan, series, top: int) -> None:
    """A chart per learning rate across the optimizers, then one per optimizer across its learning rates (log
    scales: the optimizers' losses differ by orders of magnitude)."""
    f, n, layouts = book.formats, plan.iterations, plan.training
    per_rate = [book.chart(None, [series(i) for i, layout in enumerate(layouts) if layout.lr_slot == slot],
                           "iteration", "E_total (log)", y_log=True, x_max=n, legend="top")
                for slot in range(len(plan.learning_rates))]
    ws.write(top - 1, 0, "Each learning rate with every optimizer", f.subtitle)
    rows = _grid(ws, top, per_rate, width=600, height=420, per_row=2)
    per_optimizer = [book.chart(f"{OPTIMIZERS[o].title}: E_total vs iteration",
                                [series(i) for i, layout in enumerate(layouts) if layout.optimizer == o],
                                "iteration", "E_total (log)", y_log=True, x_max=n) for o in plan.network.optimizers]
    below = top + rows + 2
    ws.write(below - 1, 0, "Each optimizer at every learning rate", f.subtitle)
    _grid(ws, below, per_optimizer, width=400, height=300)


def _grid(ws, top: int, charts: list, width: int, height: int, per_row: int = 3) -> int:
    """Charts ``per_row`` to a row from row ``top``; returns the rows they cover (at the default 20 pixels a row)."""
    for i, chart in enumerate(charts):
        chart.set_size({"width": width, "height": height})
        ws.insert_chart(top, 0, chart, {"x_offset": (width + 8) * (i % per_row), "y_offset": (height + 10) * (i // per_row)})
    lines = -(-len(charts) // per_row)
    return -(-(height + 10) * lines // 20)
