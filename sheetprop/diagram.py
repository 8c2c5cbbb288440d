"""The network diagram on the Network sheet: a native XY chart drawn from cells.

Units are markers, connections line segments (one series per layer of connections, broken by blank
rows), and every label is a series name that refers to a cell holding a live number shown through a
number format ("h1 = 0.593"), so an edit shows in the picture after recalculation. The cells read the
row a student picks: iteration k of training sheet s (two validated inputs), through INDEX and CHOOSE.
Weights are labelled on their lines up to :data:`MAX_WEIGHT_LABELLED` units per layer (beyond, their
labels would overlap); beyond :data:`MAX_LABELLED` units in a layer (or Excel's 255 series per chart)
the diagram is drawn compact: units and connections without labels, the values still in the data block.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from xlsxwriter.utility import quote_sheetname, xl_range_abs, xl_rowcol_to_cell

from sheetprop.book import Book
from sheetprop.layout import DIAGRAM_ITERATION, DIAGRAM_SHEET, NETWORK_SHEET, TrainingLayout, lr_name
from sheetprop.quantities import A, Delta, Input, Param, Quantity, Target, Total
from sheetprop.reference import Trace

MAX_LABELLED = 12  # units per layer up to which every unit is labelled
MAX_WEIGHT_LABELLED = 3  # ... and up to which every connection carries its weight's label too
MAX_SERIES = 255  # Excel's limit per chart
_ALONG = 0.72  # where on a connection its weight's label sits (0: the source, 1: the unit it feeds)


@dataclass(frozen=True)
class Point:
    """One row of the data block: a label's place and the quantity it shows (None: a line's end)."""

    text: str  # what the number is shown after ("h1 = "), or a description of the row
    x: float
    y: float
    quantity: Quantity | None = None
    number_format: str = "0.000"
    position: str = "above"


@dataclass(frozen=True, eq=False)
class Diagram:
    """Where each unit, connection and label of a network's diagram goes (chart coordinates)."""

    sheets: tuple[TrainingLayout, ...]

    @property
    def network(self):
        return self.sheets[0].network

    def xy(self, l: int, j: int) -> tuple[float, float]:
        """Layer l from left to right, its units from top to bottom, centred on 0."""
        return float(l), (self.network.size(l) - 1) / 2 - j

    @cached_property
    def weights_labelled(self) -> bool:
        net = self.network
        return max(net.size(l) for l in range(net.depth + 1)) <= MAX_WEIGHT_LABELLED

    def shows(self, p: Point) -> bool:
        """Whether the chart labels this point (every point has its row in the data block)."""
        return self.labelled and (self.weights_labelled or not isinstance(p.quantity, Param) or p.quantity.k is None)

    @cached_property
    def labelled(self) -> bool:
        net = self.network
        widest = max(net.size(l) for l in range(net.depth + 1))
        weights = 0 if self.weights_labelled else sum(isinstance(p.quantity, Param) and p.quantity.k is not None
                                                      for p in self.points)
        return widest <= MAX_LABELLED and len(self.points) - weights + net.depth <= MAX_SERIES

    @cached_property
    def points(self) -> tuple[Point, ...]:
        """Every labelled point: the units first, layer by layer (activation above), then each unit's δ
        (below it), weights on their connections, biases right of their unit, targets and E_total right of
        the outputs."""
        net = self.network
        layers = range(1, net.depth + 1)
        units = [Point(f"{Input(k).label(net)} = ", *self.xy(0, k), Input(k)) for k in range(net.size(0))]
        units += [Point(f"{A(l, j).label(net)} = ", *self.xy(l, j), A(l, j))
                  for l in layers for j in range(net.size(l))]
        deltas = [Point("δ = ", *self.xy(l, j), Delta(l, j), "0.00E+00", "below") for l in layers
                  for j in range(net.size(l))]
        params = []
        for l in layers:
            for j in range(net.size(l)):
                x, y = self.xy(l, j)
                for p in net.incoming(l, j):
                    if p.k is None:
                        params.append(Point(f"{p.label(net)} = ", x, y, p, position="right"))
                    else:
                        sx, sy = self.xy(l - 1, p.k)
                        params.append(Point(f"{p.label(net)} = ", sx + _ALONG * (x - sx), sy + _ALONG * (y - sy), p,
                                            position="center"))
        outputs = [Point(f"{Target(j).label(net)} = ", self.xy(net.depth, j)[0] + 0.45, self.xy(net.depth, j)[1],
                         Target(j), position="right") for j in range(net.size(net.depth))]
        low = min(self.xy(l, net.size(l) - 1)[1] for l in range(net.depth + 1))
        outputs.append(Point("E_total = ", net.depth + 0.45, low - 0.7, Total(), "0.00000", "right"))
        return tuple(units + deltas + params + outputs)

    def segments(self, l: int) -> list[tuple[tuple[float, float], tuple[float, float]]]:
        """The connections into layer l, as (source, unit) pairs of points."""
        net = self.network
        return [(self.xy(l - 1, p.k), self.xy(l, j)) for j in range(net.size(l)) for p in net.incoming(l, j)
                if p.k is not None]

    def pick(self, q: Quantity) -> str:
        """A formula for q at the picked iteration of the picked training sheet (inputs and targets by name)."""
        net = self.network
        if q.editable:
            return "=" + q.defined_name(net)
        picks = [f"INDEX({s.column_range(q)},{DIAGRAM_ITERATION}+1)" for s in self.sheets]
        return "=" + (picks[0] if len(picks) == 1 else f"CHOOSE({DIAGRAM_SHEET},{','.join(picks)})")


def write(book: Book, ws, diagram: Diagram, start: Trace, top: int, left: int, data_col: int) -> None:
    """The picker at (top, left), the chart below it, and the cells it reads from column ``data_col``."""
    f, net, n = book.formats, diagram.network, len(diagram.sheets)
    iterations = diagram.sheets[0].iterations
    ws.write(top, left, "The network at iteration k of a training sheet", f.subtitle)
    ws.set_column(left, left, 15)
    pickers = [(DIAGRAM_ITERATION, "iteration k", 0, iterations, "An iteration from 0 to the last row"),
               (DIAGRAM_SHEET, "training sheet", 1, n, f"A training sheet from 1 to {n}")]
    for i, (name, label, low, high, message) in enumerate(pickers):
        r = top + 1 + i
        ws.write(r, left, label, f.label)
        ws.write_number(r, left + 1, low, f.integer_input)
        ws.data_validation(xl_rowcol_to_cell(r, left + 1), {
            "validate": "integer", "criteria": "between", "minimum": low, "maximum": high,
            "input_title": label.capitalize(), "input_message": message,
            "error_title": label.capitalize(), "error_message": f"{message}: a whole number."})
        book.define_name(name, NETWORK_SHEET, xl_rowcol_to_cell(r, left + 1, True, True))
    rate = ",".join(lr_name(s.lr_slot) for s in diagram.sheets)
    ws.write_formula(top + 2, left + 2, f"=CHOOSE({DIAGRAM_SHEET},{rate})" if n > 1 else f"={rate}",
                     book.labelled("η = ", "General"), float(start.learning_rates[0]))

    ws.set_column(data_col, data_col, 30)
    ws.set_column(data_col + 3, data_col + 3, 18)
    ws.write(top, data_col, "What the diagram reads (the picked row; x and y place it in the chart)", f.subtitle)
    book.write_row(ws, top + 1, data_col, ["label", "x", "y", "value"], f.header)
    row = top + 2
    series = []
    for l in range(1, net.depth + 1):  # the connections: one line series per layer, a blank row between segments
        first = row
        for (sx, sy), (x, y) in diagram.segments(l):
            ws.write(row, data_col, f"into layer {l}")
            ws.write_row(row, data_col + 1, [sx, sy])
            ws.write_row(row + 1, data_col + 1, [x, y])
            row += 3
        series.append({"categories": _range(first, row - 2, data_col + 1),
                       "values": _range(first, row - 2, data_col + 2),
                       "line": {"color": "#A6A6A6", "width": 1.25}, "marker": {"type": "none"}})
    units = []
    for p in diagram.points:
        value = float(p.quantity.values(start)[0, 0])
        ws.write(row, data_col, p.text.removesuffix(" = ") if p.text != "δ = " else "δ")
        ws.write_row(row, data_col + 1, [p.x, p.y])
        ws.write_formula(row, data_col + 3, diagram.pick(p.quantity), book.labelled(p.text, p.number_format), value)
        is_unit = isinstance(p.quantity, (Input, A))
        if is_unit:
            units.append(row)
        if diagram.shows(p):
            name = f"={quote_sheetname(NETWORK_SHEET)}!{xl_rowcol_to_cell(row, data_col + 3, True, True)}"
            series.append({"name": name, "categories": _range(row, row, data_col + 1),
                           "values": _range(row, row, data_col + 2), "marker": _UNIT if is_unit else {"type": "none"},
                           "data_labels": {"series_name": True, "position": p.position,
                                           "font": {"size": 9 if is_unit else 8, "bold": is_unit}}})
        row += 1
    if not diagram.labelled:  # compact: one marker series per layer (the units' rows come first, by layer)
        for l in range(net.depth + 1):
            before = sum(net.size(m) for m in range(l))
            rows = units[before : before + net.size(l)]
            series.append({"categories": _range(rows[0], rows[-1], data_col + 1),
                           "values": _range(rows[0], rows[-1], data_col + 2), "marker": _UNIT, "line": {"none": True}})

    chart = book.workbook.add_chart({"type": "scatter", "subtype": "straight"})
    for s in series:
        chart.add_series({"line": {"none": True}, **s})
    chart.show_blanks_as("gap")
    chart.set_legend({"none": True})
    tall = max(net.size(l) for l in range(net.depth + 1))
    axis = {"visible": False, "major_gridlines": {"visible": False}}
    chart.set_x_axis({**axis, "min": -0.5, "max": net.depth + 1.1})
    chart.set_y_axis({**axis, "min": -(tall - 1) / 2 - 1.0, "max": (tall - 1) / 2 + 0.6})
    chart.set_size({"width": 230 * (net.depth + 1) + 180, "height": max(320, 70 * tall + 150)})
    chart.set_chartarea({"border": {"none": True}})
    ws.insert_chart(top + 4, left, chart)


_UNIT = {"type": "circle", "size": 16, "fill": {"color": "#DDEBF7"}, "border": {"color": "#2F5597", "width": 1.5}}


def _range(first: int, last: int, col: int) -> str:
    return f"={quote_sheetname(NETWORK_SHEET)}!{xl_range_abs(first, col, last, col)}"
