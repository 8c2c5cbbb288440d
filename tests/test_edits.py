"""The workbook stays true when a person edits it: labels follow the inputs they show, and an edited
target keeps the gradient right. LibreOffice and Gnumeric recalculate; torch autograd is the oracle."""

import dataclasses
import zipfile

import numpy as np
import openpyxl
import pytest

from sheetprop import recalc, template
from sheetprop.layout import COMPARE_SHEET, TrainingLayout, training_sheet_name
from sheetprop.quantities import Target, Total
from sheetprop.workbook import build
from tests.torch_oracle import torch_gradients
from tests.xlsx import chart_sheets, charts, gnumeric_sheets, with_inputs

pytestmark = pytest.mark.libreoffice


def test_editing_a_learning_rate_changes_every_label_that_shows_it(soffice, classic, tmp_path):
    book = tmp_path / "classic.xlsx"
    build(classic, [0.1, 0.5], 20, book)
    # no label holds a copy of η: tabs are numbered, and the charts name their curves by reference
    assert [n for n in openpyxl.load_workbook(book, read_only=True).sheetnames if "0.1" in n or "0.5" in n] == []
    found = charts(book)
    on_compare = set(chart_sheets(book)[COMPARE_SHEET])
    names = [s["name"] for c in found if c["part"] in on_compare for s in c["series"]]
    assert names and all(n in (f"{COMPARE_SHEET}!$A$6", f"{COMPARE_SHEET}!$A$7") for n in names), names
    with zipfile.ZipFile(book) as z:
        chart_xml = "".join(z.read(c["part"]).decode() for c in found)
    assert "η =" not in chart_xml  # in no chart, the Network sheet's diagram included

    edited = with_inputs(book, {"lr_1": 0.3}, tmp_path / "edited.xlsx")
    fresh = openpyxl.load_workbook(recalc.recalculate(edited, tmp_path / "out"), data_only=True)
    shown = []  # every cell that shows η: as a label through its number format, or in its text
    for ws in fresh.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if "η" in c.number_format:
                    shown.append((ws.title, c.coordinate, c.value))
                elif isinstance(c.value, str) and "η =" in c.value:
                    assert not any(x in c.value for x in ("0.1", "0.5")), (ws.title, c.coordinate, c.value)
    first, second = training_sheet_name(0), training_sheet_name(1)
    assert (first, "A1", 0.3) in shown and (second, "A1", 0.5) in shown  # the training sheets' titles
    assert (COMPARE_SHEET, "A6", 0.3) in shown and (COMPARE_SHEET, "A7", 0.5) in shown  # what the charts read
    assert {v for _, _, v in shown} == {0.3, 0.5}
    assert fresh[first]["B2"].value == 0.3


def test_an_edited_cross_entropy_target_keeps_gradient_descent_right(soffice, ssconvert, tmp_path):
    net = template.load("deep")  # softmax + cross-entropy, 4 samples of one-hot targets
    iterations, lr = 60, 0.5
    book = tmp_path / "deep.xlsx"
    build(net, [lr], iterations, book)
    zero = next(j for j in range(net.size(net.depth)) if net.targets[0, j] == 0)
    edit = with_inputs(book, {Target(zero, 0).defined_name(net): 0.5}, tmp_path / "edited.xlsx")  # sample 1's targets now sum to 1.5

    # the oracle: torch autograd on −Σ t·log softmax(z) with the edited target, at each row's own parameters
    # (one step at a time, so that rounding amplified over the iterations is not mistaken for an error)
    targets = net.targets.copy()
    targets[0, zero] = 0.5
    oracle = dataclasses.replace(net, targets=targets)
    layout = TrainingLayout(net, iterations, training_sheet_name(0))
    params_cols = [layout.col(p) for p in net.params]
    total_col = layout.col(Total())
    sheet_index = openpyxl.load_workbook(edit, read_only=True).sheetnames.index(layout.sheet)
    libre = openpyxl.load_workbook(recalc.recalculate(edit, tmp_path / "out"), data_only=True)[layout.sheet]
    gnumeric = gnumeric_sheets(edit, ssconvert, tmp_path / "gnumeric")[sheet_index]
    for engine, value in (("LibreOffice", lambda r, c: libre.cell(r + 1, c + 1).value),
                          ("Gnumeric", lambda r, c: float(gnumeric[r][c]))):
        for k in range(iterations + 1):
            r = layout.row(k)
            params = np.array([value(r, c) for c in params_cols])
            loss, grads = torch_gradients(oracle, params)
            assert value(r, total_col) == pytest.approx(loss, rel=1e-9, abs=1e-12), (engine, k)
            if k < iterations:
                stepped = np.array([value(r + 1, c) for c in params_cols])
                np.testing.assert_allclose(stepped, params - lr * grads, rtol=1e-9, atol=1e-12, err_msg=engine)
    assert value(layout.row(iterations), total_col) < value(layout.row(0), total_col)  # and it trains
