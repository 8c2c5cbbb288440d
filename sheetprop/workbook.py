"""Write the live backpropagation workbook: Network, Equations, one training sheet per η, Compare."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xlsxwriter.utility import quote_sheetname, xl_rowcol_to_cell

from sheetprop import formulas
from sheetprop.book import Book, RowOrdered
from sheetprop.layout import (
    COMPARE_SHEET,
    EQUATIONS_SHEET,
    ERROR_TARGET_NAME,
    NETWORK_SHEET,
    CompareLayout,
    EquationsLayout,
    TrainingLayout,
    defined_name,
    lr_label,
    lr_name,
    training_sheet_name,
)
from sheetprop.network import A, Delta, Grad, Input, LossTerm, Network, Param, SampleGrad, SampleLoss, Target, Total, Z
from sheetprop.reference import Trace, train

META_SHEET = "_sheetprop"
DEFAULT_ERROR_TARGET = 0.01
_CHUNK = 30_000  # characters per cell of the description (Excel holds 32,767)


@dataclass(frozen=True)
class Summary:
    """One line of the summary table: how training went for one learning rate."""

    lr: float
    start: float
    end: float
    first_below: int | None


def summarize(trace: Trace, threshold: float = DEFAULT_ERROR_TARGET) -> list[Summary]:
    firsts = trace.first_below(threshold)
    return [Summary(float(lr), float(row[0]), float(row[-1]), first)
            for lr, row, first in zip(trace.learning_rates, trace.total, firsts)]


def build(net: Network, learning_rates: list[float], iterations: int, out: str | Path,
          force: bool = False) -> list[Summary]:
    """Compute the reference trace and write the workbook to ``out`` atomically."""
    with Book(out, force=force, constant_memory=True) as book:  # checks the target before the work starts
        trace = train(net, learning_rates, iterations)
        layouts = [TrainingLayout(net, iterations, training_sheet_name(lr)) for lr in learning_rates]
        _network_sheet(book, net, learning_rates, iterations, trace)
        _equations_sheet(book, net, trace)
        compare = book.add_sheet(COMPARE_SHEET)
        for slot, layout in enumerate(layouts):
            _training_sheet(book, layout, slot, trace)
        _compare_sheet(book, compare, net, layouts, trace)
        _meta_sheet(book, net, iterations, [layout.sheet for layout in layouts])
    return summarize(trace)


def _meta_sheet(book: Book, net: Network, iterations: int, sheets: list[str]) -> None:
    """A hidden sheet from which ``sheetprop verify`` rebuilds the network (see :mod:`sheetprop.verify`)."""
    ws = book.add_sheet(META_SHEET)
    ws.write(0, 0, "Read by `sheetprop verify`: iterations; the network as JSON (over row 3); the training sheets.")
    ws.write_number(1, 0, iterations)
    text = net.to_json()
    for i in range(0, len(text), _CHUNK):
        ws.write_string(2, i // _CHUNK, text[i : i + _CHUNK])
    for i, sheet in enumerate(sheets):
        ws.write_string(3, i, sheet)
    ws.hide()


def _network_sheet(book: Book, net: Network, lrs: list[float], iterations: int, trace: Trace) -> None:
    f = book.formats
    ws = RowOrdered(book.add_sheet(NETWORK_SHEET))
    ws.set_column(0, 0, 22)
    ws.set_column(1, 1, 12)
    ws.set_column(2, 2, 26)
    ws.write(0, 0, f"Backpropagation, live — the “{net.name}” network", f.title)
    ws.write(1, 0, net.description, f.note)
    ws.write(2, 0, "Yellow cells are inputs: change any of them and every sheet recomputes.", f.note)

    row = 4
    several = net.samples > 1
    ws.write(row, 0, f"Samples ({net.samples}, loss {net.reduction}ed over them)" if several else "Sample", f.subtitle)
    row += 1
    book.write_row(ws, row, 0, ["Name", "Value", "Defined name"], f.header)
    for s in range(net.samples):
        entries = [(Input(k, s), net.inputs[s, k]) for k in range(net.size(0))]
        entries += [(Target(j, s), net.targets[s, j]) for j in range(net.size(net.depth))]
        for q, value in entries:
            row += 1
            ws.write(row, 0, ("input " if isinstance(q, Input) else "target ") + net.label(q))
            ws.write_number(row, 1, value, f.input)
            ws.write(row, 2, defined_name(net, q), f.note)
            book.define_name(defined_name(net, q), NETWORK_SHEET, xl_rowcol_to_cell(row, 1, True, True))

    row += 2
    ws.write(row, 0, "Initial parameters", f.subtitle)
    row += 1
    book.write_row(ws, row, 0, ["Parameter", "Value", "Connects"], f.header)
    for p in net.params:
        row += 1
        src = net.source(p)
        target = net.label(Z(p.l, p.j))
        ws.write(row, 0, defined_name(net, p))
        ws.write_number(row, 1, net.initial(p), f.input)
        ws.write(row, 2, f"bias of {target}" if src is None else f"{net.label(src)} → {target}")
        book.define_name(defined_name(net, p), NETWORK_SHEET, xl_rowcol_to_cell(row, 1, True, True))

    row += 2
    ws.write(row, 0, "Learning rates η", f.subtitle)
    row += 1
    book.write_row(ws, row, 0, ["Name", "η", "Training sheet"], f.header)
    for slot, lr in enumerate(lrs):
        row += 1
        cell = xl_rowcol_to_cell(row, 1)
        ws.write(row, 0, lr_name(slot))
        ws.write_number(row, 1, lr, f.input)
        sheet = training_sheet_name(lr)
        ws.write_url(row, 2, f"internal:{quote_sheetname(sheet)}!A1", string=sheet)
        ws.data_validation(cell, {
            "validate": "decimal", "criteria": ">", "value": 0,
            "input_title": "Learning rate", "input_message": "A positive number",
            "error_title": "Learning rate", "error_message": "The learning rate must be a positive number.",
        })
        book.define_name(lr_name(slot), NETWORK_SHEET, xl_rowcol_to_cell(row, 1, True, True))

    row += 2
    ws.write(row, 0, "Structure", f.subtitle)
    row += 1
    book.write_row(ws, row, 0, ["Layer", "Units", "Activation, bias"], f.header)
    row += 1
    ws.write(row, 0, "input")
    ws.write_number(row, 1, net.size(0))
    for l, layer in enumerate(net.layers, start=1):
        row += 1
        ws.write(row, 0, f"{layer.name} (layer {l})")
        ws.write_number(row, 1, layer.size)
        ws.write(row, 2, f"{layer.activation}, {'with' if layer.bias else 'no'} bias")
    row += 1
    ws.write(row, 0, "loss")
    ws.write(row, 2, f"{net.loss}: {formulas.loss_term(net, LossTerm(0), net.label, formulas.TEXT)} per output")
    row += 1
    ws.write(row, 0, "iterations")
    ws.write_number(row, 1, iterations)

    _diagram(book, ws, net, trace, top=4, left=4)
    ws.flush()


def _diagram(book: Book, ws, net: Network, trace: Trace, top: int, left: int) -> None:
    """A cell drawing of the network: a column per layer, the incoming weights between columns."""
    f = book.formats
    eq = EquationsLayout(net)
    fan_in = max(net.size(l - 1) + net.layer(l).bias for l in range(1, net.depth + 1))
    spacing = max(3, fan_in + 1)
    ws.write(top, left, "The network (values at iteration 0" + (", sample 1)" if net.samples > 1 else ")"),
             f.subtitle)
    top += 2
    for l in range(net.depth + 1):
        col = left + 2 * l
        ws.set_column(col, col, 14)
        title = "inputs" if l == 0 else f"layer {l}: {net.layer(l).activation}"
        ws.write(top - 1, col, title, f.label)
        for j in range(net.size(l)):
            r = top + j * spacing
            if l == 0:
                q = Input(j)
                ws.write(r, col, net.label(q), f.node)
                ws.write_formula(r + 1, col, f"={defined_name(net, q)}", f.number, net.inputs[0, j])
                continue
            ws.write(r, col, net.label(Z(l, j)), f.node)
            value = float(trace.values(A(l, j))[0, 0])
            ws.write_formula(r + 1, col, f"={quote_sheetname(EQUATIONS_SHEET)}!{eq.ref(A(l, j))}", f.number, value)
            ws.write_string(r + 2, col, f"= {net.label(A(l, j))}", f.note)
            incoming = [p for p in net.params if p.l == l and p.j == j]
            ws.set_column(col - 1, col - 1, 21)
            for i, p in enumerate(incoming):
                src = net.source(p)
                text = f"{net.label(p)}: {'bias' if src is None else net.label(src)}→{net.label(Z(l, j))} = "
                ws.write_formula(r + i, col - 1, f'="{text}"&TEXT({defined_name(net, p)},"{_WEIGHT_FORMAT}")',
                                 None, text + _excel_text(net.initial(p)))
    out_col = left + 2 * net.depth + 1
    ws.set_column(out_col, out_col, 14)
    ws.write(top - 1, out_col, "targets", f.label)
    for j in range(net.size(net.depth)):
        q = Target(j)
        text = f"{net.label(q)} = "
        ws.write_formula(top + j * spacing, out_col, f'="{text}"&{defined_name(net, q)}', None,
                         text + _excel_general(net.targets[0, j]))


_WEIGHT_FORMAT = "0.00##"


def _excel_text(x: float) -> str:
    """What Excel's TEXT(x, "0.00##") shows: 2 to 4 decimals."""
    text = f"{x:.4f}".rstrip("0")
    return text + "0" * (2 - len(text.split(".")[1]))


def _excel_general(x: float) -> str:
    """How Excel's General format shows a number joined to text (up to 15 significant digits)."""
    text = f"{x:.15g}"
    return text.replace("e-0", "E-").replace("e+0", "E+").replace("e", "E")


def _equations_sheet(book: Book, net: Network, trace: Trace) -> None:
    f = book.formats
    eq = EquationsLayout(net)
    ws = RowOrdered(book.add_sheet(EQUATIONS_SHEET))
    ws.set_column(eq.NAME_COL, eq.NAME_COL, 14)
    ws.set_column(eq.CHAIN_COL, eq.CHAIN_COL, 34)
    ws.set_column(eq.EQUATION_COL, eq.EQUATION_COL, 90)
    ws.set_column(eq.VALUE_COL, eq.VALUE_COL, 20)
    ws.write(0, 0, "The equations, and their values at iteration 0", f.title)
    ws.write(1, 0, "Each value is a live formula over the inputs on the Network sheet; "
                   "the training sheets repeat the same formulas row after row.", f.note)
    book.write_row(ws, eq.FIRST_ROW - 1, 0, ["Quantity", "Chain rule", "Equation", "Value at iteration 0"], f.header)
    row = eq.FIRST_ROW
    for title, qs in eq.sections:
        ws.write(row, 0, title, f.subtitle)
        for q in qs:
            r = eq.rows[q]
            text = formulas.formula(net, q, net.label, formulas.TEXT)
            if isinstance(q, A):
                text = f"{net.activation_of(q.l).symbol}({net.label(Z(q.l, q.j, q.s))}) = {text}"
            if isinstance(q, Grad):
                name = "∂E_total/∂" + net.label(q.param)
            elif isinstance(q, SampleGrad):
                name = f"∂{net.label(SampleLoss(q.s))}/∂{net.label(q.param)}"
            else:
                name = net.label(q)
            ws.write(r, eq.NAME_COL, name, f.label)
            if isinstance(q, (Grad, SampleGrad)) and not (isinstance(q, Grad) and net.samples > 1):
                ws.write_string(r, eq.CHAIN_COL, "= " + formulas.chain(net, q))
            elif isinstance(q, Delta):
                ws.write_string(r, eq.CHAIN_COL, f"= ∂{net.label(SampleLoss(q.s)) if net.samples > 1 else 'E_total'}"
                                                 f"/∂{net.label(Z(q.l, q.j, q.s))}")
            ws.write_string(r, eq.EQUATION_COL, "= " + text)
            value = float(trace.values(q)[0, 0])
            ws.write_formula(r, eq.VALUE_COL, "=" + formulas.formula(net, q, eq.ref), f.number, value)
        row = eq.rows[qs[-1]] + 2
    row = eq.update_row
    ws.write(row - 1, 0, "Update: one step of gradient descent (with η = lr_1)", f.subtitle)
    for p in net.params:
        label = net.label(p)
        ws.write(row, eq.NAME_COL, label + " ←", f.label)
        ws.write_string(row, eq.EQUATION_COL, f"= {label} − η·∂E_total/∂{label}")
        value = float(trace.values(p)[0, 1]) if trace.params.shape[1] > 1 else \
            net.initial(p) - float(trace.learning_rates[0]) * float(trace.values(Grad(p))[0, 0])
        ws.write_formula(row, eq.VALUE_COL, f"={defined_name(net, p)}-{lr_name(0)}*{eq.ref(Grad(p))}",
                         f.number, value)
        row += 1
    ws.flush()


def _training_sheet(book: Book, layout: TrainingLayout, slot: int, trace: Trace) -> None:
    f = book.formats
    net = layout.network
    ws = book.add_sheet(layout.sheet, plain_formulas=True)
    lr = float(trace.learning_rates[slot])
    ws.write(layout.TITLE_ROW, 0, f"Gradient descent with η = {lr_label(lr)} ({net.name} network)", f.title)
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
        ws.write(layout.HEADER_ROW, layout.col(q), net.label(q), f.header)

    # The hot loop: one formula per cell, its value from the reference trace.
    columns = [(layout.col(q), layout.row_templates[q], trace.values(q)[slot].tolist()) for q in layout.columns]
    number, write_formula, write_number = f.number, ws.write_formula, ws.write_number
    r = layout.row(0)  # iteration 0 takes the parameters from the Network sheet
    write_number(r, layout.ITERATION_COL, 0)
    for q, (col, template, values) in zip(layout.columns, columns):
        formula = layout.first_row_formula(q) if isinstance(q, Param) else template.format(r + 1, r)
        write_formula(r, col, formula, number, values[0])
    for it in range(1, layout.iterations + 1):
        r = layout.row(it)
        write_number(r, layout.ITERATION_COL, it)
        for col, template, values in columns:
            write_formula(r, col, template.format(r + 1, r), number, values[it])


def _compare_sheet(book: Book, ws, net: Network, layouts: list[TrainingLayout], trace: Trace) -> None:
    f = book.formats
    cl = CompareLayout(len(layouts))
    n = layouts[0].iterations
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
    for slot, (layout, s) in enumerate(zip(layouts, summarize(trace))):
        r = cl.table_row(slot)
        ws.write_formula(r, 0, f"={lr_name(slot)}", f.general, s.lr)
        ws.write_url(r, 1, f"internal:{quote_sheetname(layout.sheet)}!A1", string=layout.sheet)
        ws.write_formula(r, 2, "=" + layout.qualified(Total(), 0), f.number, s.start)
        ws.write_formula(r, 3, "=" + layout.qualified(Total(), n), f.number, s.end)
        first = f"INDEX({layout.column_range(None)},MATCH(TRUE,{layout.column_range(Total())}<{ERROR_TARGET_NAME},0))"
        ws.write_array_formula(r, 4, r, 4, f'{{=IFERROR({first},"never")}}', f.integer,
                               "never" if s.first_below is None else s.first_below)

    def series(layout: TrainingLayout, slot: int) -> dict:
        return {"name": f"η = {lr_label(float(trace.learning_rates[slot]))}",
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
        chart = book.chart(f"η = {lr_label(float(trace.learning_rates[slot]))}", [series(layout, slot)],
                           "iteration", "E_total", x_max=n)
        chart.set_size({"width": width, "height": height})
        ws.insert_chart(top + 21, 0, chart, {"x_offset": (width + 8) * (slot % per_row),
                                             "y_offset": (height + 10) * (slot // per_row)})
