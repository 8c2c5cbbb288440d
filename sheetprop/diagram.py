"""The network diagram on the Network sheet: a native XY chart drawn from cells.

Units are markers, connections line segments (one series per layer of connections, broken by blank
rows), and every label is a series name that refers to a cell holding a live number shown through a
number format ("h1 = 0.593"), so an edit shows in the picture after recalculation. The cells read the
row a student picks: iteration k of training sheet s (two validated inputs), through INDEX and CHOOSE
(nested: LibreOffice's CHOOSE takes 30 values). Weights are labelled on their lines up to
:data:`MAX_WEIGHT_LABELLED` units per layer (beyond, their labels would overlap), each where it meets no other
label (as :meth:`Diagram.label_box` estimates them); beyond :data:`MAX_LABELLED` units in a layer (or Excel's 255
series per chart) the diagram is drawn compact: units and connections without labels, the values still in the
data block.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

from xlsxwriter.utility import quote_sheetname, xl_range_abs, xl_rowcol_to_cell

from sheetprop import limits
from sheetprop.book import Book
from sheetprop.formulas import choose
from sheetprop.layout import DIAGRAM_ITERATION, DIAGRAM_SHEET, NETWORK_SHEET, TrainingLayout, lr_name
from sheetprop.quantities import A, Delta, Input, Param, Quantity, Target, Total
from sheetprop.reference import Trace
from sheetprop.update import OPTIMIZERS

MAX_LABELLED = 12  # units per layer up to which every unit is labelled
MAX_WEIGHT_LABELLED = 3  # ... and up to which every connection carries its weight's label too
MAX_SERIES = 255  # Excel's limit per chart
# where on a connection its weight's label may sit (0: the source, 1: the unit it feeds): the first that is free,
# from 0.62 outwards
_ALONG = tuple(sorted((round(0.2 + 0.03 * i, 2) for i in range(23)), key=lambda t: abs(t - 0.62)))
_MARKER = 16  # a unit's marker, in points
_PLOT = (0.02, 0.02, 0.96, 0.96)  # the plot area in the chart (x, y, width, height), set so that labels can be placed
_PIXELS_PER_POINT = 4 / 3


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
        return self.tallest <= MAX_WEIGHT_LABELLED

    def shows(self, p: Point) -> bool:
        """Whether the chart labels this point (every point has its row in the data block)."""
        return self.labelled and (self.weights_labelled or not isinstance(p.quantity, Param) or p.quantity.k is None)

    @cached_property
    def labelled(self) -> bool:
        net = self.network
        weights = 0 if self.weights_labelled else sum(isinstance(p.quantity, Param) and p.quantity.k is not None
                                                      for p in self.points)
        return self.tallest <= MAX_LABELLED and len(self.points) - weights + net.depth <= MAX_SERIES

    @cached_property
    def size(self) -> tuple[int, int]:
        """The chart's width and height in pixels."""
        per_layer = 260 if self.weights_labelled and self.tallest > 2 else 230  # room for a 3 × 3 layer's weights
        return per_layer * (self.network.depth + 1) + 180, max(320, 70 * self.tallest + 150)

    @cached_property
    def tallest(self) -> int:
        net = self.network
        return max(net.size(l) for l in range(net.depth + 1))

    @cached_property
    def x_axis(self) -> tuple[float, float]:
        return -0.5, self.network.depth + 1.3

    @cached_property
    def y_axis(self) -> tuple[float, float]:
        return -(self.tallest - 1) / 2 - 1.0, (self.tallest - 1) / 2 + 0.6

    def pixels(self, dx: float, dy: float) -> tuple[float, float]:
        """``dx`` and ``dy`` pixels in chart units (the plot area is :data:`_PLOT` of the chart)."""
        (x0, x1), (y0, y1), (width, height) = self.x_axis, self.y_axis, self.size
        return dx * (x1 - x0) / (width * _PLOT[2]), dy * (y1 - y0) / (height * _PLOT[3])

    def label_box(self, p: Point) -> tuple[float, float, float, float]:
        """Where a point's label is drawn, estimated from its length and font (left, bottom, right, top in chart
        units): each engine places a label beyond its point's marker, a few pixels apart."""
        unit = isinstance(p.quantity, (Input, A))
        em = (9 if unit else 8) * _PIXELS_PER_POINT
        chars = len(p.text) + len(p.number_format) + 1  # a minus sign, or one more digit before the point
        width, height = self.pixels(chars * em * (0.53 if unit else 0.5), 1.2 * em)
        gap_x, gap_y = self.pixels(*[(_MARKER / 2 if unit else 0) * _PIXELS_PER_POINT + 3] * 2)
        x, y = p.x, p.y
        if p.position == "above":
            return x - width / 2, y + gap_y, x + width / 2, y + gap_y + height
        if p.position == "below":
            return x - width / 2, y - gap_y - height, x + width / 2, y - gap_y
        if p.position == "right":
            return x + gap_x, y - height / 2, x + gap_x + width, y + height / 2
        return x - width / 2, y - height / 2, x + width / 2, y + height / 2

    @cached_property
    def points(self) -> tuple[Point, ...]:
        """Every labelled point: the units first, layer by layer (activation above), then each unit's δ (below
        its marker), weights on their connections, biases right of their unit's marker, targets and E_total
        right of the outputs."""
        net = self.network
        layers = range(1, net.depth + 1)
        rx, ry = self.pixels(*[_MARKER / 2 * _PIXELS_PER_POINT] * 2)  # a marker's radius
        units = [Point(f"{Input(k).label(net)} = ", *self.xy(0, k), Input(k)) for k in range(net.size(0))]
        units += [Point(f"{A(l, j).label(net)} = ", *self.xy(l, j), A(l, j))
                  for l in layers for j in range(net.size(l))]
        deltas = [Point("δ = ", self.xy(l, j)[0], self.xy(l, j)[1] - ry, Delta(l, j), "0.00E+00", "below")
                  for l in layers for j in range(net.size(l))]
        biases = [Point(f"{p.label(net)} = ", self.xy(l, j)[0] + rx, self.xy(l, j)[1], p, position="right")
                  for l in layers for j in range(net.size(l)) for p in net.incoming(l, j) if p.k is None]
        right = net.depth + 0.6
        outputs = [Point(f"{Target(j).label(net)} = ", right, self.xy(net.depth, j)[1], Target(j), position="right")
                   for j in range(net.size(net.depth))]
        low = min(self.xy(l, net.size(l) - 1)[1] for l in range(net.depth + 1))
        outputs.append(Point("E_total = ", right, low - 0.7, Total(), "0.00000", "right"))
        # each weight's label at the first spot along its connection that overlaps no label placed before it
        placed = [self.label_box(p) for p in units + deltas + biases + outputs] if self.weights_labelled else None
        by_param = {b.quantity: b for b in biases}
        for l in layers:
            for (sx, sy), (x, y), p in self.segments(l):
                spots = [Point(f"{p.label(net)} = ", sx + t * (x - sx), sy + t * (y - sy), p, position="center")
                         for t in (_ALONG if placed is not None else _ALONG[:1])]
                if placed is None:  # weights are not labelled
                    by_param[p] = spots[0]
                    continue
                by_param[p] = next((s for s in spots if not any(_overlap(self.label_box(s), box) for box in placed)),
                                   spots[0])
                placed.append(self.label_box(by_param[p]))
        params = [by_param[p] for l in layers for j in range(net.size(l)) for p in net.incoming(l, j)]
        return tuple(units + deltas + params + outputs)

    def segments(self, l: int) -> list[tuple[tuple[float, float], tuple[float, float], Param]]:
        """The connections into layer l: (source, unit, weight)."""
        net = self.network
        return [(self.xy(l - 1, p.k), self.xy(l, j), p) for j in range(net.size(l)) for p in net.incoming(l, j)
                if p.k is not None]

    def check(self) -> None:
        """Refuse a formula the diagram needs that an engine could not compute (the longest pick stands for all:
        they differ only in their columns)."""
        picks = [self.pick(p.quantity) for p in self.points if not p.quantity.editable]
        if picks:
            limits.check_formula(max(picks, key=len), "the network diagram")

    def pick(self, q: Quantity) -> str:
        """A formula for q at the picked iteration of the picked training sheet (inputs and targets by name)."""
        net = self.network
        if q.editable:
            return "=" + q.defined_name(net)
        return "=" + choose(DIAGRAM_SHEET, [f"INDEX({s.column_range(q)},{DIAGRAM_ITERATION}+1)" for s in self.sheets])


def write(book: Book, ws, diagram: Diagram, start: Trace, top: int, left: int, data_col: int,
          shown: Callable[[Quantity], float] | None = None) -> None:
    """The picker at (top, left), the chart below it, and the cells it reads from column ``data_col``; ``shown``
    gives the value a training sheet's first row shows where it is not the reference's (an exercise's)."""
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
    # the picked sheet's η, live, after its optimizer's name where there are several ("Adam, η = 0.5": two cells,
    # as each engine turns a number into text its own way)
    col = left + 2
    if len(net.optimizers) > 1:
        titles = [f"{OPTIMIZERS[s.optimizer].title}," for s in diagram.sheets]
        ws.set_column(col, col, max(map(len, titles)) + 1)
        ws.write_formula(top + 2, col, "=" + choose(DIAGRAM_SHEET, [f'"{t}"' for t in titles]),
                         book.workbook.add_format({"align": "right"}), titles[0])
        col += 1
    ws.write_formula(top + 2, col, "=" + choose(DIAGRAM_SHEET, [lr_name(s.lr_slot) for s in diagram.sheets]),
                     book.labelled("η = ", "General", style={"align": "left", "indent": 1}),
                     float(start.learning_rates[0]))

    ws.set_column(data_col, data_col, 30)
    ws.set_column(data_col + 3, data_col + 3, 18)
    ws.write(top, data_col, "What the diagram reads (the picked row; x and y place it in the chart)", f.subtitle)
    book.write_row(ws, top + 1, data_col, ["label", "x", "y", "value"], f.header)
    row = top + 2
    series = []
    for l in range(1, net.depth + 1):  # the connections: one line series per layer, a blank row between segments
        first = row
        for (sx, sy), (x, y), _ in diagram.segments(l):
            ws.write(row, data_col, f"into layer {l}")
            ws.write_row(row, data_col + 1, [sx, sy])
            ws.write_row(row + 1, data_col + 1, [x, y])
            row += 3
        series.append({"categories": _range(first, row - 2, data_col + 1),
                       "values": _range(first, row - 2, data_col + 2),
                       "line": {"color": "#A6A6A6", "width": 1.25}, "marker": {"type": "none"}})
    units = []
    for p in diagram.points:
        value = float(p.quantity.values(start)[0, 0]) if shown is None else shown(p.quantity)
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
    axis = {"visible": False, "major_gridlines": {"visible": False}}
    chart.set_x_axis({**axis, "min": diagram.x_axis[0], "max": diagram.x_axis[1]})
    chart.set_y_axis({**axis, "min": diagram.y_axis[0], "max": diagram.y_axis[1]})
    chart.set_size(dict(zip(("width", "height"), diagram.size)))
    chart.set_plotarea({"layout": dict(zip(("x", "y", "width", "height"), _PLOT))})
    chart.set_chartarea({"border": {"none": True}})
    ws.insert_chart(top + 4, left, chart)


_UNIT = {"type": "circle", "size": 16, "fill": {"color": "#DDEBF7"}, "border": {"color": "#2F5597", "width": 1.5}}


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """Whether two boxes (left, bottom, right, top) overlap."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _range(first: int, last: int, col: int) -> str:
    return f"={quote_sheetname(NETWORK_SHEET)}!{xl_range_abs(first, col, last, col)}"
