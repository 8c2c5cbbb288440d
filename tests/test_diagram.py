"""The network diagram: a native chart whose every label is a cell, reading the iteration and training
sheet a student picks. LibreOffice recalculates after the picks are changed; the numpy reference (itself
held against torch autograd) is the oracle for the values shown."""

import openpyxl
import pytest

from sheetprop import recalc, reference, template
from sheetprop.diagram import MAX_WEIGHT_LABELLED, Diagram
from sheetprop.layout import DIAGRAM_ITERATION, DIAGRAM_SHEET, NETWORK_SHEET
from sheetprop.quantities import A, Input, Param, Target
from sheetprop.workbook import Plan, build
from tests.xlsx import chart_sheets, charts, with_inputs

DATA_COL = 20  # where the Network sheet keeps what the diagram reads (column U)


def shown(ws, net, diagram: Diagram) -> list[tuple[object, object]]:
    """(point, value cell) in the order the data block holds them: its rows after the line segments."""
    rows = [r for r in ws.iter_rows(min_col=DATA_COL + 1, max_col=DATA_COL + 4)
            if r[3].value is not None and not str(r[0].value or "").startswith("into layer") and r[0].row > 6]
    assert len(rows) == len(diagram.points)
    return list(zip(diagram.points, [r[3] for r in rows]))


@pytest.mark.parametrize("name", list(template.shipped()))
def test_every_label_of_the_diagram_is_a_cell_that_reads_the_picked_row(name, tmp_path):
    net = template.load(name)
    out = tmp_path / f"{name}.xlsx"
    build(net, [0.5, 1.0], 12, out)
    plan = Plan(net, (0.5, 1.0), 12)
    diagram = Diagram(tuple(plan.training))
    wb = openpyxl.load_workbook(out)
    assert {n for n in (DIAGRAM_ITERATION, DIAGRAM_SHEET)} <= set(wb.defined_names)
    cells = shown(wb[NETWORK_SHEET], net, diagram)
    for point, cell in cells:
        q = point.quantity
        if q.editable:  # an input or a target: the Network sheet's own cell, by name
            assert cell.value == "=" + q.defined_name(net)
        else:
            for layout in plan.training:
                assert f"INDEX({layout.column_range(q)},{DIAGRAM_ITERATION}+1)" in cell.value, (point, cell.value)
            assert cell.value.startswith(f"=CHOOSE({DIAGRAM_SHEET},")
        assert point.text.replace('"', "'") in cell.number_format  # the label is the cell's own format
    [network_chart] = chart_sheets(out)[NETWORK_SHEET]
    chart = next(c for c in charts(out) if c["part"] == network_chart)
    names = [s["name"] for s in chart["series"] if s["name"]]
    if diagram.labelled:
        assert names == [f"{NETWORK_SHEET}!${c.column_letter}${c.row}" for p, c in cells if diagram.shows(p)]
        labels = {p.text for p, _ in cells}
        widest = max(net.size(l) for l in range(net.depth + 1))
        shown_params = {p for p in net.params if p.k is None or widest <= MAX_WEIGHT_LABELLED}
        labelled = {p.text for p, _ in cells if diagram.shows(p)}
        assert {f"{p.label(net)} = " for p in shown_params} <= labelled and "E_total = " in labelled
        units = {f"{Input(k).label(net)} = " for k in range(net.size(0))}
        units |= {f"{A(l, j).label(net)} = " for l in range(1, net.depth + 1) for j in range(net.size(l))}
        assert units | {f"{Target(j).label(net)} = " for j in range(net.size(net.depth))} <= labels
    assert len(chart["series"]) <= 255


@pytest.fixture(scope="module")
def picked(soffice, tmp_path_factory) -> dict:
    """Every shipped template with the diagram set to iteration 37 of training sheet 2, whose η is edited
    (the picture follows it), recalculated by one start of LibreOffice: name → recalculated workbook."""
    folder = tmp_path_factory.mktemp("picked")
    edited = []
    for name in template.shipped():
        build(template.load(name), [0.5, 1.0], 40, folder / f"{name}-built.xlsx")
        edits = {DIAGRAM_ITERATION: 37, DIAGRAM_SHEET: 2, "lr_2": 1.5}
        edited.append(with_inputs(folder / f"{name}-built.xlsx", edits, folder / f"{name}.xlsx"))
    return dict(zip(template.shipped(), recalc.recalculate_all(edited, folder / "out")))


@pytest.mark.libreoffice
@pytest.mark.parametrize("name", list(template.shipped()))
def test_picking_an_iteration_and_a_training_sheet_shows_that_row(picked, name):
    net = template.load(name)
    fresh = openpyxl.load_workbook(picked[name], data_only=True)
    trace = reference.train(net, [0.5, 1.5], 40)
    diagram = Diagram(tuple(Plan(net, (0.5, 1.5), 40).training))
    checked = 0
    for point, cell in shown(fresh[NETWORK_SHEET], net, diagram):
        want = float(point.quantity.values(trace)[1, 37])
        assert cell.value == pytest.approx(want, rel=1e-9, abs=1e-12), (point.text, cell.value, want)
        checked += 1
    assert checked == len(diagram.points)
    moved = next(c for p, c in shown(fresh[NETWORK_SHEET], net, diagram) if isinstance(p.quantity, Param))
    assert moved.value != net.initial(moved_param(diagram))  # row 37, not the initial weights


def moved_param(diagram: Diagram) -> Param:
    return next(p.quantity for p in diagram.points if isinstance(p.quantity, Param))


def test_a_compact_diagram_draws_each_layer_from_its_own_units(tmp_path):
    net = template.from_dict({"name": "wider", "loss": "l2", "inputs": ["x1", "x2"], "targets": ["y1", "y2"],
                              "sample": {"inputs": [0.5, -0.5], "targets": [0.1, 0.9]}, "init": {"seed": 1},
                              "layers": [{"size": 14, "activation": "tanh"}, {"size": 2, "activation": "sigmoid"}]})
    out = tmp_path / "wider.xlsx"  # 14 units in a layer: drawn compact
    build(net, [0.5], 5, out)
    diagram = Diagram(tuple(Plan(net, (0.5,), 5).training))
    assert not diagram.labelled
    cells = shown(openpyxl.load_workbook(out)[NETWORK_SHEET], net, diagram)
    rows = {id(p): c.row for p, c in cells}
    [part] = chart_sheets(out)[NETWORK_SHEET]
    markers = [s for s in next(c for c in charts(out) if c["part"] == part)["series"] if s["marker"] == "circle"]
    assert len(markers) == net.depth + 1
    for l, series in enumerate(markers):  # each marker series spans exactly its layer's units, nothing else
        units = [p for p in diagram.points if isinstance(p.quantity, (Input, A)) and p.x == l]
        first, last = rows[id(units[0])], rows[id(units[-1])]
        assert series["y"].endswith(f"${first}:$W${last}") and last - first + 1 == net.size(l)
