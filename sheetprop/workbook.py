"""Write the live backpropagation workbook: Network, Equations, one training sheet per η, Compare.

A :class:`Plan` lays out every sheet and checks it against Excel's limits before anything is
written; the sheet writers then fill it in, each formula carrying the reference's value.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
from xlsxwriter.utility import quote_sheetname, xl_rowcol_to_cell

from sheetprop import diagram, limits, template
from sheetprop.book import Book, check_target
from sheetprop.chainrule import Expansion
from sheetprop.formulas import TEXT
from sheetprop.layout import (
    COMPARE_SHEET,
    EQUATIONS_SHEET,
    ERROR_TARGET_NAME,
    NETWORK_SHEET,
    CompareLayout,
    Meta,
    EquationsLayout,
    TrainingLayout,
    lr_name,
    training_sheet_name,
)
from sheetprop.network import Network
from sheetprop.quantities import Grad, Input, LossTerm, Param, Quantity, Target, Total, Z
from sheetprop.reference import Trace, chunks
from sheetprop.rows import ERROR_VALUE, FormulaRowsWorksheet, RowOrdered
from sheetprop.update import RULE

META_SHEET = Meta.SHEET
DEFAULT_ERROR_TARGET = 0.01
_CHUNK = 30_000  # characters per cell of the description (Excel holds 32,767)


@dataclass(frozen=True)
class Summary:
    """One line of the summary table: how training went for one learning rate."""

    lr: float
    start: float
    end: float  # NaN or inf for a run that diverged
    first_below: int | None
    diverged: int | None = None  # the first iteration whose parameters or E_total are not finite


class Tally:
    """The summary of each learning rate, gathered from consecutive blocks of a trace as they stream past."""

    def __init__(self, threshold: float = DEFAULT_ERROR_TARGET) -> None:
        self.threshold = threshold
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
        return [Summary(*row) for row in zip(self._lrs, self._start, self._end, self._below, self._diverged)]


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

    @cached_property
    def training(self) -> list[TrainingLayout]:
        return [TrainingLayout(self.network, self.iterations, training_sheet_name(slot))
                for slot in range(len(self.learning_rates))]

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

    def update_formula(self, p: Param) -> str:
        """One step of gradient descent from the initial value, with the first learning rate."""
        return "=" + RULE.formula(p.defined_name(self.network), lr_name(0), self.equations.ref(Grad(p)))

    def check(self) -> None:
        """Raise :class:`~sheetprop.limits.LimitError` for anything Excel could not hold."""
        net = self.network
        limits.check_text(net.description, "the template's description")
        self.training[0].check()  # every training sheet has the same shape and formulas
        limits.check_extent(self.equations.last_row + 1, EquationsLayout.VALUE_COL + 1, "the Equations sheet")
        for line in self.equation_lines:
            what = f"{line.name} on the Equations sheet"
            limits.check_formula(line.formula, what)
            limits.check_text(line.equation, what)


def build(net: Network, learning_rates: list[float], iterations: int, out: str | Path,
          force: bool = False) -> list[Summary]:
    """Check that the workbook fits in Excel, compute the reference trace and write it to ``out`` atomically."""
    check_target(Path(out), force)
    plan = Plan(net, tuple(learning_rates), iterations)
    plan.check()
    blocks = chunks(net, learning_rates, iterations)  # the reference streams: memory stays flat in N
    start = next(blocks)
    tally = Tally()
    with Book(out, force=force, constant_memory=True) as book:
        _network_sheet(book, plan, start)
        _equations_sheet(book, plan, start)
        compare = book.add_sheet(COMPARE_SHEET)
        sheets = [_training_sheet(book, layout, slot, start) for slot, layout in enumerate(plan.training)]
        for block in itertools.chain([start], blocks):
            tally.add(block)
            for write in sheets:
                write(block)
        _compare_sheet(book, compare, plan, tally.summaries())
        _meta_sheet(book, plan)
    return tally.summaries()


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
    ws.hide()


# -- Network sheet ----------------------------------------------------------------------------
def _network_sheet(book: Book, plan: Plan, trace: Trace) -> None:
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
    row = _rates_block(book, ws, plan.learning_rates, row + 1)
    _structure_block(book, ws, plan, row + 1)
    diagram.write(book, ws, diagram.Diagram(tuple(plan.training)), trace, top=4, left=4, data_col=20)
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


def _rates_block(book: Book, ws, lrs: tuple[float, ...], row: int) -> int:
    f = book.formats
    ws.write(row, 0, "Learning rates η", f.subtitle)
    book.write_row(ws, row + 1, 0, ["Name", "η", "Training sheet"], f.header)
    row += 2
    for slot, lr in enumerate(lrs):
        ws.write(row, 0, lr_name(slot))
        ws.write_number(row, 1, lr, f.input)
        sheet = training_sheet_name(slot)
        ws.write_url(row, 2, f"internal:{quote_sheetname(sheet)}!A1", string=sheet)
        ws.data_validation(xl_rowcol_to_cell(row, 1), {
            "validate": "decimal", "criteria": ">", "value": 0,
            "input_title": "Learning rate", "input_message": "A positive number",
            "error_title": "Learning rate", "error_message": "The learning rate must be a positive number.",
        })
        book.define_name(lr_name(slot), NETWORK_SHEET, xl_rowcol_to_cell(row, 1, True, True))
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
def _equations_sheet(book: Book, plan: Plan, trace: Trace) -> None:
    f, net, eq = book.formats, plan.network, plan.equations
    ws = RowOrdered(book.add_sheet(EQUATIONS_SHEET))
    ws.set_column(eq.NAME_COL, eq.NAME_COL, 14)
    ws.set_column(eq.CHAIN_COL, eq.CHAIN_COL, 34)
    ws.set_column(eq.EQUATION_COL, eq.EQUATION_COL, 90)
    ws.set_column(eq.VALUE_COL, eq.VALUE_COL, 20)
    ws.write(0, 0, "The equations, and their values at iteration 0", f.title)
    ws.write(1, 0, "Each value is a live formula over the inputs on the Network sheet; the training sheets "
                   "repeat the same one-step formulas (each δ from the next layer's δ) row after row.", f.note)
    book.write_row(ws, eq.FIRST_ROW - 1, 0, ["Quantity", "Chain rule", "Equation", "Value at iteration 0"], f.header)
    for title, qs in eq.sections:
        ws.write(eq.rows[qs[0]] - 1, 0, title, f.subtitle)
    for line in plan.equation_lines:
        r = eq.rows[line.quantity]
        ws.write(r, eq.NAME_COL, line.name, f.label)
        if line.chain:
            ws.write_string(r, eq.CHAIN_COL, line.chain)
        ws.write_string(r, eq.EQUATION_COL, line.equation)
        ws.write_formula(r, eq.VALUE_COL, line.formula, f.number, _cached(float(trace.values(line.quantity)[0, 0])))
    row = eq.update_row
    ws.write(row - 1, 0, "Update: one step of gradient descent (with η = lr_1)", f.subtitle)
    for p in net.params:
        label = p.label(net)
        ws.write(row, eq.NAME_COL, label + " ←", f.label)
        ws.write_string(row, eq.EQUATION_COL, "= " + RULE.formula(label, "η", f"∂E_total/∂{label}", TEXT))
        value = RULE.step(net.initial(p), float(trace.learning_rates[0]), float(trace.values(Grad(p))[0, 0]))
        ws.write_formula(row, eq.VALUE_COL, plan.update_formula(p), f.number, _cached(value))
        row += 1
    ws.flush()


# -- training sheets --------------------------------------------------------------------------
def _training_sheet(book: Book, layout: TrainingLayout, slot: int, start: Trace) -> Callable[[Trace], None]:
    """Write a training sheet's head and return the writer of its rows, block by block."""
    f, net = book.formats, layout.network
    ws = book.add_sheet(layout.sheet, FormulaRowsWorksheet)
    lr = float(start.learning_rates[slot])
    # the title is the η cell shown through a number format, so it follows an edit of η
    title = book.labelled("Gradient descent with η = ", "General", f" ({net.name} network)",
                      {"bold": True, "font_size": 16, "font_color": "#1F3864", "align": "left"})
    ws.merge_range(layout.TITLE_ROW, 0, layout.TITLE_ROW, 11, "", title)  # a number does not overflow: room
    ws.write_formula(layout.TITLE_ROW, 0, f"={layout.lr_cell}", title, lr)
    ws.write(layout.LR_ROW, 0, "η", f.label)
    ws.write_formula(layout.LR_ROW, layout.LR_COL, f"={lr_name(slot)}", f.number, lr)
    ws.write(layout.LR_ROW, layout.LR_COL + 1, f"from {lr_name(slot)} on the Network sheet", f.note)
    ws.set_column(0, 0, 9)
    ws.set_column(1, len(layout.columns), 12)
    ws.freeze_panes(layout.FIRST_ROW, 1)
    ws.repeat_rows(layout.GROUP_ROW, layout.HEADER_ROW)
    for title, qs in layout.groups:
        first, last = layout.col(qs[0]), layout.col(qs[-1])
        if first == last:
            ws.write(layout.GROUP_ROW, first, title, f.group)
        else:
            ws.merge_range(layout.GROUP_ROW, first, layout.GROUP_ROW, last, title, f.group)
    ws.write(layout.HEADER_ROW, layout.ITERATION_COL, "iteration", f.header)
    for q in layout.columns:
        ws.write(layout.HEADER_ROW, layout.col(q), q.label(net), f.header)

    r = layout.row(0)  # iteration 0 takes the parameters from the Network sheet
    ws.write_number(r, layout.ITERATION_COL, 0)
    for q in layout.columns:
        formula = layout.first_row_formula(q) if isinstance(q, Param) else layout.row_templates[q].format(r + 1, r)
        ws.write_formula(r, layout.col(q), formula, f.number, _cached(float(start.values(q)[slot, 0])))
    cells = [(layout.col(q), layout.row_templates[q], f.number) for q in layout.columns]
    rows = ws.formula_rows(layout.row(1), layout.ITERATION_COL, layout.iterations, cells)

    def write(block: Trace) -> None:
        values = np.column_stack([block.values(q)[slot] for q in layout.columns])  # (block's rows, columns)
        skip = 1 if block.first == 0 else 0  # row 0 is written above
        rows(range(block.first + skip, block.first + len(values)), values[skip:])

    return write


# -- Compare sheet ----------------------------------------------------------------------------
def _compare_sheet(book: Book, ws, plan: Plan, summaries: list[Summary]) -> None:
    f, layouts = book.formats, plan.training
    cl = CompareLayout(len(layouts))
    n = plan.iterations
    ws.set_column(0, 0, 14)
    ws.set_column(1, 4, 20)
    ws.write(0, 0, "How the learning rate changes training", f.title)
    ws.write(1, 0, "Every number here is a formula over the training sheets; the charts read their ranges.", f.note)
    ws.write(cl.TARGET_ROW, 0, "Error target", f.label)
    ws.write_number(cl.TARGET_ROW, cl.VALUE_COL, DEFAULT_ERROR_TARGET, f.input)
    book.define_name(ERROR_TARGET_NAME, COMPARE_SHEET, xl_rowcol_to_cell(cl.TARGET_ROW, cl.VALUE_COL, True, True))
    headers = ["Learning rate η", "Training sheet", "E_total at iteration 0", f"E_total at iteration {n}",
               "First iteration with E_total < target"]
    book.write_row(ws, cl.TABLE_HEADER_ROW, 0, headers, f.header)
    ws.set_row(cl.TABLE_HEADER_ROW, 32)
    rate = book.labelled("η = ", "General")
    centred = book.workbook.add_format({"align": "center", "num_format": "0"})
    link = book.workbook.add_format({"align": "center", "font_color": "blue", "underline": 1})
    for slot, (layout, s) in enumerate(zip(layouts, summaries)):
        r = cl.table_row(slot)
        ws.write_formula(r, cl.RATE_COL, f"={lr_name(slot)}", rate, s.lr)
        ws.write_url(r, 1, f"internal:{quote_sheetname(layout.sheet)}!A1", link, string=layout.sheet)
        ws.write_formula(r, 2, "=" + layout.qualified(Total(), 0), f.number, _cached(s.start))
        ws.write_formula(r, 3, "=" + layout.qualified(Total(), n), f.number, _cached(s.end))
        first = f"INDEX({layout.column_range(None)},MATCH(TRUE,{layout.column_range(Total())}<{ERROR_TARGET_NAME},0))"
        ws.write_array_formula(r, 4, r, 4, f'{{=IFERROR({first},"never")}}', centred,
                               "never" if s.first_below is None else s.first_below)

    def series(layout: TrainingLayout, slot: int) -> dict:
        return {"name": cl.label(slot),
                "categories": "=" + layout.column_range(None), "values": "=" + layout.column_range(Total())}

    all_series = [series(layout, slot) for slot, layout in enumerate(layouts)]
    top = cl.chart_row
    big = book.chart("E_total vs iteration, every learning rate", all_series, "iteration", "E_total", x_max=n)
    big.set_size({"width": 700, "height": 400})
    ws.insert_chart(top, 0, big)
    log = book.chart("The same on a log scale", all_series, "iteration", "E_total (log)", y_log=True, x_max=n)
    log.set_size({"width": 700, "height": 400})
    ws.insert_chart(top, 0, log, {"x_offset": 710})
    per_row, width, height = 3, 465, 260
    for slot, layout in enumerate(layouts):
        chart = book.chart(None, [series(layout, slot)], "iteration", "E_total", x_max=n, legend="top")
        chart.set_size({"width": width, "height": height})
        ws.insert_chart(top + 21, 0, chart, {"x_offset": (width + 8) * (slot % per_row),
                                             "y_offset": (height + 10) * (slot // per_row)})
