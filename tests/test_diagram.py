"""The network diagram: a native chart whose every label is a cell, reading the iteration and training
sheet a student picks. LibreOffice recalculates after the picks are changed; the numpy reference (itself
held against torch autograd) is the oracle for the values shown."""

import itertools

import openpyxl
import pytest
from click.testing import CliRunner

from sheetprop import api, diagram, limits, recalc, reference, template
from sheetprop.cli import main
from sheetprop.diagram import MAX_WEIGHT_LABELLED, Diagram
from sheetprop.layout import DIAGRAM_ITERATION, DIAGRAM_SHEET, NETWORK_SHEET
from sheetprop.quantities import A, Input, Param, Target
from sheetprop.readback import SavedBook
from sheetprop.update import OPTIMIZERS
from sheetprop.verification import scan_errors
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


def small_networks():
    """Every network of 1 to 3 units per layer (its weights labelled too) and 1 to 3 layers, with 1 and 4
    samples (their labels are wider), and a few with up to 12 units a layer (units labelled): name → network."""
    shapes = [(sizes, samples) for samples, depth in itertools.product((1, 4), (1, 2, 3))
              for sizes in itertools.product((1, 2, 3), repeat=depth + 1)]
    shapes += [((2, 12, 1), 4), ((12, 12), 1), ((4, 7, 12, 1), 1)]
    out = {}
    for sizes, samples in shapes:
        sample = {"inputs": [0.5] * sizes[0], "targets": [0.5] * sizes[-1]}
        out[f"{'-'.join(map(str, sizes))}x{samples}"] = template.from_dict({
            "name": "n", "loss": "l2", "samples": [sample] * samples, "init": {"seed": 1},
            "layers": [{"size": n, "activation": "tanh"} for n in sizes[1:]]})
    return out


def overlapping(diagram: Diagram) -> list[tuple[str, str]]:
    """Every pair of shown labels whose boxes overlap, and every label that leaves the plot area."""
    boxes = [(p.text, diagram.label_box(p)) for p in diagram.points if diagram.shows(p)]
    out = [(a, b) for (a, (l1, b1, r1, t1)), (b, (l2, b2, r2, t2)) in itertools.combinations(boxes, 2)
           if l1 < r2 and l2 < r1 and b1 < t2 and b2 < t1]
    (x0, x1), (y0, y1) = diagram.x_axis, diagram.y_axis
    return out + [(a, "the edge") for a, (left, bottom, right, top) in boxes
                  if left < x0 or right > x1 or bottom < y0 or top > y1]


SMALL = small_networks()


@pytest.mark.parametrize("name", list(template.shipped()) + list(SMALL))
def test_no_two_labels_of_the_diagram_overlap(name):
    net = SMALL[name] if name in SMALL else template.load(name)
    diagram = Diagram(tuple(Plan(net, (0.5,), 1).training))
    assert diagram.labelled
    assert overlapping(diagram) == []


def test_label_boxes_are_estimated_in_chart_units_from_the_text_and_font():
    """The estimate the overlap test relies on: xor's unit label, 16 characters of bold 9 pt, is about 85
    pixels wide in LibreOffice's drawing, a weight's 8 pt label about 70; the chart is 870 pixels wide."""
    diagram = Diagram(tuple(Plan(template.load("xor"), (0.5,), 1).training))
    per_pixel = diagram.pixels(1, 1)
    unit = next(p for p in diagram.points if p.text.startswith("a[2]_1"))
    weight = next(p for p in diagram.points if p.text.startswith("w[2]_11"))
    for point, drawn in ((unit, 85), (weight, 70)):
        left, _, right, _ = diagram.label_box(point)
        assert 1.0 <= (right - left) / per_pixel[0] / drawn <= 1.5  # never narrower than drawn, not much wider


def picker(ws) -> list:
    """The cells beside the training-sheet picker: the optimizer's name (where there are several), then η."""
    return [c.value for c in ws[7][6:8] if c.value is not None]


def test_the_picker_names_the_optimizer_beside_the_picked_sheets_learning_rate(tmp_path):
    api.build("classic", [0.5, 2.0], 2, tmp_path / "two.xlsx", optimizers=["sgd", "adam"])
    ws = openpyxl.load_workbook(tmp_path / "two.xlsx")[NETWORK_SHEET]
    name, rate = ws["G7"], ws["H7"]
    assert name.value == f'=CHOOSE({DIAGRAM_SHEET},"Gradient descent,","Gradient descent,","Adam,","Adam,")'
    assert rate.value == f"=CHOOSE({DIAGRAM_SHEET},lr_1,lr_2,lr_1,lr_2)" and '"η = "' in rate.number_format
    cached = openpyxl.load_workbook(tmp_path / "two.xlsx", data_only=True)[NETWORK_SHEET]
    assert picker(cached) == ["Gradient descent,", 0.5]
    api.build("classic", [0.5, 2.0], 2, tmp_path / "one.xlsx")
    assert picker(openpyxl.load_workbook(tmp_path / "one.xlsx", data_only=True)[NETWORK_SHEET]) == [0.5]


def test_a_build_refuses_a_diagram_formula_no_engine_could_compute(tmp_path, monkeypatch):
    """Were the picks written as one CHOOSE of a value per training sheet (as they once were), the build would
    refuse them before writing anything."""
    monkeypatch.setattr(diagram, "choose", lambda index, values: f"CHOOSE({index},{','.join(values)})")
    words = "the network diagram needs a CHOOSE of 36 values; LibreOffice allows 30"
    with pytest.raises(limits.LimitError, match=words):
        api.build("classic", [0.1, 0.2, 0.5, 0.8, 1.0, 2.0], 1, tmp_path / "b.xlsx", optimizers=SIX)
    assert list(tmp_path.iterdir()) == []


SIX = ["sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"]
MANY = {"sheets31": ([round(0.05 * (i + 1), 2) for i in range(31)], ["sgd"]),
        "sheets36": ([0.1, 0.2, 0.5, 0.8, 1.0, 2.0], SIX)}


@pytest.fixture(scope="module")
def many_sheets(soffice, tmp_path_factory) -> dict:
    """Workbooks of 31 and 36 training sheets (the six optimizers at six η) with the diagram set to iteration 2
    of the last sheet, and the 36 as built, recalculated by one start of LibreOffice: name → (built workbook,
    network, learning rates, recalculated workbook). (tests/test_engines.py recalculates the most a build
    allows.)"""
    folder = tmp_path_factory.mktemp("many")
    (folder / "built").mkdir()
    built, picked = {}, []
    for name, (lrs, optimizers) in MANY.items():
        book = api.build("classic", lrs, 3, folder / "built" / f"{name}.xlsx", optimizers=optimizers)
        built[name] = (book.path, book.network, lrs)
        edits = {DIAGRAM_ITERATION: 2, DIAGRAM_SHEET: len(lrs) * len(optimizers)}
        picked.append(with_inputs(book.path, edits, folder / f"{name}-picked.xlsx"))
    fresh = recalc.recalculate_all(picked + [built["sheets36"][0]], folder / "out")
    out = {name: (*built[name], result) for name, result in zip(MANY, fresh)}
    out["sheets36 as built"] = (*built["sheets36"], fresh[-1])
    return out


@pytest.mark.libreoffice
@pytest.mark.parametrize("name", list(MANY))
def test_more_training_sheets_than_a_libreoffice_choose_takes_show_the_picked_one(many_sheets, name):
    book, net, lrs, recalculated = many_sheets[name]
    assert scan_errors(SavedBook(recalculated)) == []
    diagram = Diagram(tuple(Plan(net, tuple(lrs), 3).training))
    last = diagram.sheets[-1]
    trace = reference.train(net, lrs, 3, optimizer=last.optimizer)
    ws = openpyxl.load_workbook(recalculated, data_only=True)[NETWORK_SHEET]
    for point, cell in shown(ws, net, diagram):
        want = float(point.quantity.values(trace)[last.lr_slot, 2])
        assert cell.value == pytest.approx(want, rel=1e-9, abs=1e-12), (point.text, cell.value, want)
    several = [f"{OPTIMIZERS[last.optimizer].title},"] if len(net.optimizers) > 1 else []
    assert picker(ws) == several + [lrs[-1]]


@pytest.mark.libreoffice
def test_36_training_sheets_recalculate_to_their_cached_labels_and_verify(many_sheets):
    book, _, _, recalculated = many_sheets["sheets36 as built"]
    formulas = openpyxl.load_workbook(book)[NETWORK_SHEET]
    cached = openpyxl.load_workbook(book, data_only=True)[NETWORK_SHEET]
    fresh = openpyxl.load_workbook(recalculated, data_only=True)[NETWORK_SHEET]
    cells = [c.coordinate for row in formulas.iter_rows() for c in row if c.data_type == "f"]
    assert len(cells) > 20
    for cell in cells:
        want, got = cached[cell].value, fresh[cell].value
        assert got == (want if isinstance(want, str) else pytest.approx(want, rel=1e-9, abs=1e-12)), (cell, got, want)
    result = CliRunner().invoke(main, ["verify", str(book)])
    assert result.exit_code == 0, result.output
    assert "OK: within 1e-09" in result.output
