"""Optimizers as live formulas: the reference against torch.optim (parameters and every state quantity),
the workbook recalculated by LibreOffice and Gnumeric, edits of hyperparameters and learning rates, the
gradient check against torch, and verify on every optimizer."""

import dataclasses

import numpy as np
import openpyxl
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import sheetprop
from sheetprop import recalc, reference, template
from sheetprop.cli import main
from sheetprop.layout import GRADIENT_CHECK_SHEET, GRADIENT_STEP_NAME, GradientCheckLayout, training_layouts
from sheetprop.quantities import Delta, Grad, State, Total
from sheetprop.readback import SavedBook
from sheetprop.template import TemplateError
from sheetprop.update import HYPERPARAMETERS, OPTIMIZERS
from sheetprop.verification import FLOOR, compare, read_setup
from sheetprop.workbook import DEFAULT_GRADIENT_STEP, build
from tests.networks import networks
from tests.test_properties import examples
from tests.torch_oracle import torch_loss, torch_steps, torch_training
from tests.xlsx import assert_gnumeric_matches_cache, assert_recalculation_matches_cache, charts, with_inputs

ALL = tuple(OPTIMIZERS)
EDITED = {"momentum": 0.5, "dampening": 0.3, "alpha": 0.9, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6,
          "weight_decay": 0.1}


def learning_rate(net, optimizer: str) -> float:
    """A rate at which each optimizer trains the network without diverging."""
    return net.learning_rates[0] if optimizer in ("sgd", "momentum", "nesterov") else 0.01


def assert_matches_torch(net, optimizer: str, lr: float, iterations: int, tolerance: float = 1e-12) -> None:
    trace = reference.train(net, [lr], iterations, optimizer=optimizer)
    params, states = torch_training(net, optimizer, lr, iterations)
    scale = max(1.0, np.abs(params).max())
    np.testing.assert_allclose(trace.params[0], params, rtol=0, atol=tolerance * scale)
    assert sorted(states) == sorted(trace.states) == sorted(OPTIMIZERS[optimizer].states)
    for kind, want in states.items():
        np.testing.assert_allclose(trace.states[kind][0], want, rtol=tolerance, atol=tolerance * np.abs(want).max())


@pytest.mark.parametrize("optimizer", ALL)
@pytest.mark.parametrize("name", list(template.shipped()))
def test_every_optimizer_matches_torch_optim_on_every_template(name, optimizer):
    net = template.load(name)
    assert_matches_torch(net, optimizer, learning_rate(net, optimizer), 150)


@pytest.mark.parametrize("optimizer", ALL)
def test_every_optimizer_matches_torch_optim_with_other_hyperparameters(classic, optimizer):
    net = classic.with_values(hyperparameters=EDITED)
    assert_matches_torch(net, optimizer, learning_rate(net, optimizer), 150)


@examples(40)
@given(networks(), st.sampled_from(ALL), st.sampled_from([0.01, 0.05, 0.5]), st.booleans())
def test_every_optimizer_matches_torch_optim_step_by_step_on_random_networks(net, optimizer, lr, edited):
    net = net.with_values(hyperparameters=EDITED) if edited else net
    trace = reference.train(net, [lr], 30, optimizer=optimizer)
    moved, states = torch_steps(net, optimizer, lr, trace)
    assert sorted(states) == sorted(trace.states)
    assert_rows_close(trace.params[0, 1:], moved)
    for kind, want in states.items():
        assert_rows_close(trace.states[kind][0], want)


def assert_rows_close(got: np.ndarray, want: np.ndarray, tolerance: float = 1e-12) -> None:
    """Row by row (one step each) to ``tolerance`` of the row's largest value: a state that sums terms of both
    signs keeps only an absolute accuracy. Rows where a run has overflowed are left out."""
    finite = np.isfinite(want).all(axis=1) & np.isfinite(got).all(axis=1)
    assert finite[0]
    scale = np.abs(want[finite]).max(axis=1, keepdims=True)
    assert (np.abs(got[finite] - want[finite]) <= tolerance * scale).all()


def test_templates_choose_optimizers_and_hyperparameters():
    data = template.to_dict(template.load("classic"))
    data["training"].update(optimizers=["adam", "momentum"], beta1=0.8, momentum=0.5)
    net = template.from_dict(data)
    assert net.optimizers == ("adam", "momentum")
    assert net.hyperparameters["beta1"] == 0.8 and net.hyperparameters["momentum"] == 0.5
    assert net.hyperparameters["beta2"] == HYPERPARAMETERS["beta2"].default
    again = template.from_dict(template.to_dict(net))
    assert again.optimizers == net.optimizers and again.hyperparameters == net.hyperparameters
    data["training"].pop("optimizers")
    data["training"]["optimizer"] = "rmsprop"
    with pytest.raises(TemplateError, match="momentum is read by momentum, nesterov, not by rmsprop"):
        template.from_dict(data)  # a hyperparameter the optimizer would not read is not dropped in silence
    for name in ("beta1", "momentum"):
        data["training"].pop(name)
    assert template.from_dict(data).optimizers == ("rmsprop",)


@pytest.mark.parametrize("training, message", [
    ({"optimizer": "adma"}, "field 'optimizer' must be a non-empty list of distinct optimizers"),
    ({"optimizers": ["adam", "adam"]}, "field 'optimizers' must be a non-empty list of distinct"),
    ({"optimizers": []}, "field 'optimizers' must be a non-empty list"),
    ({"optimizer": "adam", "optimizers": ["sgd"]}, "give optimizer or optimizers, not both"),
    ({"beta1": 1.0}, "field 'beta1' must be a number at least 0 and less than 1"),
    ({"eps": 0}, "field 'eps' must be a number more than 0"),
    ({"weight_decay": -0.1}, "field 'weight_decay' must be a number at least 0"),
    ({"betas": [0.9, 0.99]}, "unknown key 'betas'; did you mean 'beta2'?"),
    # what torch.optim.SGD refuses: nesterov with dampening or without momentum
    ({"optimizer": "nesterov", "momentum": 0}, "field 'momentum' must be a number more than 0 and less than 1 "
                                               "(torch.optim.SGD refuses nesterov=True without momentum"),
    ({"optimizers": ["momentum", "nesterov"], "dampening": 0.1}, "field 'dampening' must be a number equal to 0 "
                                                                 "(torch.optim.SGD refuses nesterov=True"),
    ({"optimizer": "nesterov", "dampening": 0.5}, "field 'dampening' must be a number equal to 0"),
    # a hyperparameter no optimizer of the template reads
    ({"optimizer": "sgd", "momentum": 0.5}, "momentum is read by momentum, nesterov, not by sgd: drop it"),
    ({"optimizers": ["adam", "rmsprop"], "weight_decay": 0.1}, "weight_decay is read by adamw, not by adam, rmsprop"),
])
def test_a_template_with_wrong_optimizer_settings_is_refused_in_one_line(training, message):
    data = template.to_dict(template.load("classic"))
    data["training"] = {"learning_rates": [0.5], **training}
    with pytest.raises(TemplateError, match="^template classic: training: " + message.replace("(", r"\(")
                       .replace("?", r"\?")):
        template.from_dict(data, "template classic")


def test_the_command_line_takes_several_optimizers_and_refuses_unknown_ones(tmp_path):
    out = tmp_path / "o.xlsx"
    result = CliRunner().invoke(main, ["build", "--lr", "0.1", "0.5", "--optimizer", "sgd", "adam",
                                       "--iterations", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 optimizers × 2 learning rates" in result.output
    assert [line.split()[0] for line in result.output.splitlines()[2:]] == ["sgd", "sgd", "adam", "adam"]
    assert openpyxl.load_workbook(out, read_only=True).sheetnames[4:-1] == [f"Training {n}" for n in range(1, 5)]
    for bad in (["adamx"], ["adam", "adam"]):
        result = CliRunner().invoke(main, ["build", "--optimizer", *bad, "--out", str(tmp_path / "x.xlsx")])
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "x.xlsx").exists()


def test_each_training_sheet_holds_its_optimizers_state_as_live_formulas(tmp_path, classic):
    out = tmp_path / "o.xlsx"
    net = dataclasses.replace(classic, optimizers=ALL)
    build(net, [0.1, 0.5], 4, out)
    wb = openpyxl.load_workbook(out)
    layouts = training_layouts(net, 2, 4)
    assert [(layout.sheet, layout.optimizer, layout.lr_slot) for layout in layouts[:3]] == [
        ("Training 1", "sgd", 0), ("Training 2", "sgd", 1), ("Training 3", "momentum", 0)]
    adam = next(layout for layout in layouts if layout.optimizer == "adam" and layout.lr_slot == 1)
    ws = wb[adam.sheet]
    w1 = net.params[0]
    m, v_hat = State(w1, "m", "adam"), State(w1, "v̂", "adam")
    grad = adam.cell(Grad(w1), 0)
    assert ws[adam.cell(m, 0)].value == f"=(1-beta1)*{grad}"
    assert ws[adam.cell(m, 1)].value.startswith(f"=beta1*{adam.cell(m, 0)}+(1-beta1)*")
    t = f"($A{adam.row(3) + 1}+1)"  # β₂ᵗ, written as 0 where LibreOffice's ^ would underflow to #NUM!
    assert ws[adam.cell(v_hat, 3)].value == (f"={adam.cell(State(w1, 'v', 'adam'), 3)}/"
                                             f"(1-IF(beta2<EXP(-708/{t}),0,beta2^{t}))")
    assert "SQRT(" in ws[adam.cell(w1, 2)].value and "eps" in ws[adam.cell(w1, 2)].value
    assert ws[adam.lr_cell.replace("$", "")].value == "=lr_2"
    names = wb.defined_names
    for name in ("momentum", "dampening", "alpha", "beta1", "beta2", "eps", "weight_decay", GRADIENT_STEP_NAME):
        assert name in names
    sgd_only = tmp_path / "sgd.xlsx"
    build(classic, [0.1], 2, sgd_only)
    assert "beta1" not in openpyxl.load_workbook(sgd_only).defined_names


def test_compare_has_a_chart_per_optimizer_and_per_learning_rate_named_by_cells(tmp_path, classic):
    out = tmp_path / "o.xlsx"
    build(dataclasses.replace(classic, optimizers=ALL), [0.1, 0.5, 2.0], 5, out)
    found = charts(out)
    per_optimizer = [c for c in found if c["title"] and c["title"].endswith(": E_total vs iteration")]
    assert sorted(c["title"].split(":")[0] for c in per_optimizer) == sorted(o.title for o in OPTIMIZERS.values())
    assert all(len(c["series"]) == 3 for c in per_optimizer)
    per_rate = [c for c in found if not c["title"] and len(c["series"]) == len(ALL)]
    assert len(per_rate) == 3
    for chart in per_optimizer + per_rate:
        assert all(s["name"].startswith("Compare!$A$") for s in chart["series"]), chart


@pytest.fixture(scope="module")
def every_template_every_optimizer(soffice, tmp_path_factory):
    """Every shipped template with all six optimizers (and an edited copy of classic), recalculated by one
    start of LibreOffice: name → (network, workbook, recalculated)."""
    folder = tmp_path_factory.mktemp("optimizers")
    books = {}
    for name in template.shipped():
        # wide's 283 parameters make it the slow one to read back: Adam, whose state is the largest, stands for all
        net = dataclasses.replace(template.load(name), optimizers=("adam",) if name == "wide" else ALL)
        books[name] = (net, folder / f"{name}.xlsx")
        build(net, [0.01, 0.1] if name == "classic" else [0.05], 8, books[name][1])
    edits = {**EDITED, "lr_1": 0.3, "lr_2": 0.05}
    books["edited"] = (books["classic"][0], with_inputs(books["classic"][1], edits, folder / "edited.xlsx"))
    fresh = recalc.recalculate_all([book for _, book in books.values()], folder / "out")
    return {name: (net, book, result) for (name, (net, book)), result in zip(books.items(), fresh)}


@pytest.mark.libreoffice
@pytest.mark.parametrize("name", list(template.shipped()))
def test_every_optimizer_recalculates_to_its_cached_values_in_libreoffice_and_gnumeric(
        every_template_every_optimizer, ssconvert, name, tmp_path):
    net, book, fresh = every_template_every_optimizer[name]
    # LibreOffice returns 0 for a difference of numbers within 2^-48 of each other (δs summed over units that
    # cancel after RMSprop's large first step): values below 1e-6 are compared on that scale, as verify does
    cells = assert_recalculation_matches_cache(book, fresh, floor=FLOOR)
    states = sum(len(OPTIMIZERS[o].states) for o in net.optimizers) * len(net.params) * 9
    assert cells > states
    assert assert_gnumeric_matches_cache(book, ssconvert, tmp_path / "gnumeric", floor=FLOOR) == cells
    setup = read_setup(SavedBook(book), SavedBook(fresh), str(book))
    report = compare(SavedBook(fresh), *setup)
    assert report.ok() and report.max_difference <= 1e-9, report.mismatches[:3]


@pytest.mark.libreoffice
def test_edited_hyperparameters_and_learning_rates_recompute_as_the_reference_does(every_template_every_optimizer):
    net, book, fresh = every_template_every_optimizer["edited"]
    edited = net.with_values(hyperparameters=EDITED)
    values = SavedBook(fresh)
    for layout in training_layouts(net, 2, 8):
        lr = (0.3, 0.05)[layout.lr_slot]
        trace = reference.train(edited, [lr], 8, optimizer=layout.optimizer)
        sheet = values.sheet(layout.sheet)
        got = [sheet.value(layout.row(it), layout.col(Total())) for it in range(9)]
        np.testing.assert_allclose(got, trace.total[0], rtol=1e-9, err_msg=layout.sheet)
        for q in layout.columns:
            if isinstance(q, State) and q.param == net.params[-1]:
                got = [sheet.value(layout.row(it), layout.col(q)) for it in range(9)]
                np.testing.assert_allclose(got, q.values(trace)[0], rtol=1e-9, atol=1e-300, err_msg=q.label(net))
    # what the unedited workbook computed differs: the edits reached every optimizer
    original = reference.train(net, [0.01], 8, optimizer="adam").total[0, -1]
    assert abs(reference.train(edited, [0.3], 8, optimizer="adam").total[0, -1] - original) > 1e-3


@pytest.mark.libreoffice
@pytest.mark.parametrize("name", list(template.shipped()))
def test_the_gradient_check_agrees_with_torch_central_differences_and_autograd(every_template_every_optimizer, name):
    net, book, fresh = every_template_every_optimizer[name]
    layout = GradientCheckLayout(net, training_layouts(net, 1, 8)[0])
    if not layout.fits:
        assert GRADIENT_CHECK_SHEET not in openpyxl.load_workbook(book, read_only=True).sheetnames
        return
    sheet = SavedBook(fresh).sheet(GRADIENT_CHECK_SHEET)
    h = DEFAULT_GRADIENT_STEP
    p0 = np.array([net.initial(p) for p in net.params])

    def loss(p):
        return torch_loss(net, torch.tensor(p, dtype=torch.float64)).item()

    point = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
    torch_loss(net, point).backward()
    autograd = point.grad.numpy()
    energy_scale = abs(loss(p0))
    for i in range(len(net.params)):
        r = layout.table_row(i)
        plus, minus = loss(p0 + h * np.eye(len(p0))[i]), loss(p0 - h * np.eye(len(p0))[i])
        assert sheet.value(r, 2) == pytest.approx(plus, rel=1e-12) and sheet.value(r, 3) == pytest.approx(minus, rel=1e-12)
        central = sheet.value(r, 4)
        # the same central difference from torch, up to the rounding of E magnified by 1/h
        assert abs(central - (plus - minus) / (2 * h)) <= 1e-15 * energy_scale / h + 1e-12
        # the derivative itself, up to the central difference's error at this h
        assert abs(central - autograd[i]) <= 1e-6 * max(1.0, abs(autograd[i]))
        assert sheet.value(r, 1) == pytest.approx(autograd[i], rel=1e-9, abs=1e-15)


@pytest.mark.libreoffice
def test_a_broken_backpropagation_formula_fails_the_gradient_check_and_a_broken_state_fails_verify(soffice, classic,
                                                                                                 tmp_path):
    net = dataclasses.replace(classic, optimizers=("adam",))
    book = tmp_path / "o.xlsx"
    build(net, [0.1], 6, book)
    layout = training_layouts(net, 1, 6)[0]
    wb = openpyxl.load_workbook(book)
    ws = wb[layout.sheet]
    delta = Delta(2, 0)  # δ of o1 at iteration 0: doubled, as a slip of a student's edit would
    ws[layout.cell(delta, 0)] = ws[layout.cell(delta, 0)].value + "*2"
    m = State(net.params[3], "m", "adam")
    ws[layout.cell(m, 4)] = ws[layout.cell(m, 4)].value.replace("(1-beta1)", "(1-beta2)")
    wb.save(tmp_path / "broken.xlsx")
    fresh = recalc.recalculate(tmp_path / "broken.xlsx", tmp_path / "out")
    check = SavedBook(fresh).sheet(GRADIENT_CHECK_SHEET)
    relative = [check.value(GradientCheckLayout(net, layout).table_row(i), 5) for i in range(len(net.params))]
    assert min(relative[4:6]) > 0.1  # w5 and w6 feed o1: their gradients carry its δ
    assert max(relative[6:]) < 1e-6  # w7 and w8 feed o2
    report = compare(SavedBook(fresh), *read_setup(SavedBook(book), SavedBook(fresh), str(book)))
    assert not report.ok()
    found = {(mismatch.iteration, mismatch.quantity) for mismatch in report.mismatches}
    assert (4, m.label(net)) in found and (0, delta.label(net)) in found


@pytest.mark.parametrize("optimizers, hyperparameters, message", [
    (["nesterov"], {"momentum": 0.0}, "momentum must be a number more than 0"),
    (["momentum", "nesterov"], {"dampening": 0.2}, "dampening must be a number equal to 0"),
])
def test_the_api_refuses_what_torch_refuses_for_the_optimizers_it_is_given(optimizers, hyperparameters, message,
                                                                            tmp_path):
    """The optimizers of a build replace the template's, so its settings are checked again against them."""
    net = template.load("classic").with_values(hyperparameters=hyperparameters)
    with pytest.raises(sheetprop.api.BuildError, match=message):
        sheetprop.build(net, optimizers=optimizers, iterations=2, out=tmp_path / "x.xlsx")
    assert not (tmp_path / "x.xlsx").exists()
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero dampening"):  # the oracle
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, nesterov=True, momentum=0.9 if
                        "dampening" in hyperparameters else 0.0, dampening=hyperparameters.get("dampening", 0.0))
