"""The Gradient check sheet's verdicts: a correct workbook never shows a failure (rounding, kinks and tiny
gradients are named as such), a broken one always does. Oracles: torch autograd for the gradients, and the
sheet recalculated in LibreOffice and Gnumeric for the formulas."""

import numpy as np
import openpyxl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sheetprop import gradcheck, recalc, template
from sheetprop.layout import GRADIENT_CHECK_SHEET, GradientCheckLayout, training_layouts
from sheetprop.quantities import Delta
from sheetprop.readback import SavedBook
from sheetprop.workbook import build, check_gradients
from tests.networks import networks
from tests.torch_oracle import torch_loss
from tests.xlsx import gnumeric_sheets, with_inputs

L = GradientCheckLayout


def dead_unit() -> template.Network:
    """2-3-2, the middle hidden ReLU unit at z = 0 exactly (its weights all 0, no bias): torch's gradient of its
    weights is 0, while E moves on one side of the kink only."""
    return template.from_dict({
        "name": "dead", "loss": "l2",
        "layers": [{"size": 3, "activation": "relu", "weights": [[0.3, -0.2], [0.0, 0.0], [0.5, 0.4]]},
                   {"size": 2, "activation": "sigmoid", "weights": [[0.2, 0.7, -0.3], [0.6, -0.5, 0.1]]}],
        "samples": [{"inputs": [0.5, 0.9], "targets": [0.1, 0.8]}]})


def softmax_net() -> template.Network:
    """4-5-6, leaky ReLU then softmax with cross-entropy: gradients from about 1e-7 up."""
    rng = np.random.default_rng(3)
    return template.from_dict({
        "name": "softmax", "loss": "softmax_cross_entropy",
        "layers": [{"size": 5, "activation": "leaky_relu", "bias": True,
                    "weights": rng.uniform(-1, 1, (5, 4)).tolist(), "biases": rng.uniform(-1, 1, 5).tolist()},
                   {"size": 6, "activation": "softmax", "weights": (4 * rng.uniform(-1, 1, (6, 5))).tolist()}],
        "samples": [{"inputs": rng.uniform(-1, 1, 4).tolist(), "targets": np.eye(6)[2].tolist()}]})


def layout_of(net) -> GradientCheckLayout:
    return GradientCheckLayout(net, training_layouts(net, 1, 2)[0])


def autograd(net) -> np.ndarray:
    point = torch.tensor([net.initial(p) for p in net.params], dtype=torch.float64, requires_grad=True)
    torch_loss(net, point).backward()
    return point.grad.numpy()


@settings(max_examples=60, deadline=None)
@given(networks(max_layers=3, max_units=5, max_samples=3), st.sampled_from([1e-4, 1e-5, 1e-7, 1e-9]))
def test_a_correct_network_never_disagrees_at_any_step(net, h):
    check = check_gradients(layout_of(net), h)
    assert gradcheck.DISAGREES not in check.verdicts, list(zip(check.verdicts, check.relative, check.rounding))
    np.testing.assert_allclose(check.backprop, autograd(net), rtol=1e-9, atol=1e-15)  # what is checked is right


@settings(max_examples=60, deadline=None)
@given(networks(max_layers=3, max_units=5, max_samples=3), st.floats(1.5, 3.0))
def test_a_gradient_off_by_a_factor_is_flagged_wherever_it_stands_above_rounding(net, factor):
    check = check_gradients(layout_of(net), 1e-5)
    for g, c, level, kinks in zip(check.backprop * factor, check.central, check.rounding, check.kinks):
        scale = max(abs(c), abs(g), 1e-300)
        relative = abs(c - g) / scale
        rounding = min(1.0, level * max(abs(c), abs(g / factor), 1e-300) / scale)
        if rounding < 1e-3 and abs(g) > 1e-300 and not kinks:
            assert gradcheck.verdict(relative, rounding, kinks) == gradcheck.DISAGREES


def test_a_unit_at_its_kink_is_named_not_failed_and_the_rest_agree():
    net = dead_unit()
    layout = layout_of(net)
    check = check_gradients(layout, 1e-5)
    into_dead = [i for i, p in enumerate(net.params) if p.l == 1 and p.j == 1]
    assert np.all(autograd(net)[into_dead] == 0) and np.all(check.backprop[into_dead] == 0)  # torch: relu'(0) = 0
    assert [check.verdicts[i] for i in into_dead] == [gradcheck.AT_A_KINK] * 2
    assert all(check.relative[i] == pytest.approx(1.0) for i in into_dead)  # what looked broken before
    others = [v for i, v in enumerate(check.verdicts) if i not in into_dead]
    assert set(others) == {gradcheck.AGREES}


def test_small_gradients_of_a_softmax_network_agree_or_are_named_below_rounding():
    net = softmax_net()
    for h in (1e-5, 1e-9):
        check = check_gradients(layout_of(net), h)
        assert min(abs(check.backprop[check.backprop != 0])) < 1e-5  # there are small ones
        assert gradcheck.DISAGREES not in check.verdicts
    assert gradcheck.BELOW_ROUNDING in check.verdicts  # at h = 1e-9 the smallest cannot be told apart


def verdicts(sheet, net) -> list[str]:
    return [sheet.value(L.TABLE_HEADER_ROW + 1 + i, L.VERDICT_COL) for i in range(len(net.params))]


@pytest.mark.libreoffice
@pytest.mark.parametrize("make", [dead_unit, softmax_net])
def test_the_verdicts_recalculate_alike_in_libreoffice_and_gnumeric(soffice, ssconvert, tmp_path, make):
    net = make()
    book = tmp_path / "g.xlsx"
    build(net, [0.5], 2, book)
    cached = verdicts(SavedBook(book).sheet(GRADIENT_CHECK_SHEET), net)
    fresh = recalc.recalculate(book, tmp_path / "lo")
    assert verdicts(SavedBook(fresh).sheet(GRADIENT_CHECK_SHEET), net) == cached
    index = openpyxl.load_workbook(book, read_only=True).sheetnames.index(GRADIENT_CHECK_SHEET)
    gnumeric = gnumeric_sheets(book, ssconvert, tmp_path / "gn")[index]
    assert [gnumeric[L.TABLE_HEADER_ROW + 1 + i][L.VERDICT_COL] for i in range(len(net.params))] == cached
    assert gradcheck.DISAGREES not in cached
    summary = SavedBook(fresh).sheet(GRADIENT_CHECK_SHEET).value(L.SUMMARY_ROW, L.VALUE_COL)
    assert "disagree" not in summary and summary == SavedBook(book).sheet(GRADIENT_CHECK_SHEET).value(
        L.SUMMARY_ROW, L.VALUE_COL)


@pytest.mark.libreoffice
def test_a_doubled_delta_disagrees_after_recalculation_and_editing_h_keeps_a_correct_sheet_correct(soffice, classic,
                                                                                                  tmp_path):
    book = tmp_path / "c.xlsx"
    build(classic, [0.5], 2, book)
    layout = training_layouts(classic, 1, 2)[0]
    wb = openpyxl.load_workbook(book)
    ws = wb[layout.sheet]
    cell = layout.cell(Delta(2, 0), 0)  # δ of o1 at iteration 0
    ws[cell] = ws[cell].value + "*2"
    wb.save(tmp_path / "broken.xlsx")
    edited_h = with_inputs(book, {"gradient_check_h": 1e-9}, tmp_path / "h.xlsx")
    out = recalc.recalculate_all([tmp_path / "broken.xlsx", edited_h], tmp_path / "lo")
    broken = SavedBook(out[0]).sheet(GRADIENT_CHECK_SHEET)
    assert verdicts(broken, classic)[4:6] == [gradcheck.DISAGREES] * 2  # w5, w6 feed o1
    assert verdicts(broken, classic)[6:] == [gradcheck.AGREES] * 2
    wrong = verdicts(broken, classic).count(gradcheck.DISAGREES)
    assert broken.value(L.SUMMARY_ROW, L.VALUE_COL) == f"{wrong} of 8 disagree: backpropagation is wrong there"
    assert gradcheck.DISAGREES not in verdicts(SavedBook(out[1]).sheet(GRADIENT_CHECK_SHEET), classic)
