"""Every shipped template: reference values, names, workbook shape; malformed templates."""

import numpy as np
import openpyxl
import pytest

from sheetprop import formulas, reference, template
from sheetprop.chainrule import Expansion
from sheetprop.layout import TrainingLayout, defined_name, training_sheet_name
from sheetprop.quantities import A, Delta, Grad, Input, Param, SampleGrad, Total, Z
from sheetprop.template import TemplateError
from sheetprop.workbook import build

TEMPLATES = sorted(template.shipped())


def test_at_least_the_four_promised_templates_ship():
    assert {"classic", "mazur", "xor", "deep"} <= set(TEMPLATES)


def test_mazur_matches_the_published_numbers():
    net = template.load("mazur")
    trace = reference.train(net, [0.5], 1)
    assert round(float(trace.total[0, 0]), 9) == 0.298371109
    after = dict(zip((net.label(p) for p in net.params), trace.params[0, 1]))
    assert round(after["w5"], 8) == 0.35891648 and round(after["w6"], 9) == 0.408666186
    assert round(after["w1"], 9) == 0.149780716


def test_xor_is_learned_within_the_default_iterations():
    net = template.load("xor")
    trace = reference.train(net, list(net.learning_rates), net.iterations)
    outputs = trace.a[-1][:, -1, :, 0]  # (rates, samples)
    learned = [(np.round(o) == net.targets[:, 0]).all() for o in outputs]
    assert any(learned) and learned[-1]


def test_deep_template_uses_layered_names():
    net = template.load("deep")
    assert [net.size(l) for l in range(4)] == [3, 4, 4, 2]
    assert net.label(Param(1, 0, 2)) == "w[1]_13" and net.label(Param(3, 1, None)) == "b[3]_2"
    assert net.label(Z(2, 3, 1)) == "z[2]_4⁽²⁾" and net.label(A(3, 0, 0)) == "a[3]_1⁽¹⁾"
    assert defined_name(net, Param(1, 0, 2)) == "w1_13_init"
    assert defined_name(net, Input(2, 3)) == "input_x3_s4"


def test_softmax_cross_entropy_gradient_is_output_times_the_targets_sum_minus_target():
    # a − t while the targets sum to 1; written for any sum, since a student may edit them
    net = template.load("deep")
    text = "(a[3]_1⁽¹⁾·(p1⁽¹⁾ + p2⁽¹⁾) − p1⁽¹⁾)"
    assert Expansion(net).gradient(SampleGrad(Param(3, 0, 1), 0)) == text + "·a[2]_2⁽¹⁾"
    assert Delta(3, 0, 0).formula(net, net.label, formulas.TEXT) == text


def test_delta_recursion_refers_to_the_next_layer():
    net = template.load("classic")
    assert Delta(1, 0).formula(net, net.label, formulas.TEXT) == "(δ_o1·w5 + δ_o2·w7)·a_h1·(1−a_h1)"


def test_several_samples_average_delta_times_source_in_the_sheet():
    net = template.load("xor")
    layout = TrainingLayout(net, 5, training_sheet_name(0))
    w = Param(1, 0, 0)
    deltas = [layout.cell(Delta(1, 0, s), 4).rstrip("0123456789") for s in range(4)]
    grad = layout.row_templates[Grad(w)].format(9, 8)
    assert grad == "=(" + "+".join(f"{d}9*input_x1_s{s + 1}" for s, d in enumerate(deltas)) + ")/4"
    assert layout.row_templates[Total()].format(9, 8).endswith(")/4")


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_builds_with_reference_values_cached(name, tmp_path):
    net = template.load(name)
    out = tmp_path / f"{name}.xlsx"
    lrs = list(net.learning_rates[:2])
    build(net, lrs, 12, out)
    trace = reference.train(net, lrs, 12)
    wb = openpyxl.load_workbook(out, data_only=True)
    for slot, lr in enumerate(lrs):
        layout = TrainingLayout(net, 12, training_sheet_name(slot))
        ws = wb[layout.sheet]
        for q in layout.columns:
            assert ws[layout.cell(q, 12)].value == trace.values(q)[slot, 12], (name, net.label(q))


def test_every_template_stays_finite_at_a_huge_learning_rate():
    for name in TEMPLATES:
        net = template.load(name)
        trace = reference.train(net, [1000.0], 1000)
        assert np.isfinite(trace.params).all() and np.isfinite(trace.total).all(), name


BASE = '''name = "t"
loss = "{loss}"
[[samples]]
inputs = [1, 2]
targets = {targets}
[[layers]]
size = {hidden}
activation = "{act}"
[[layers]]
size = {out}
activation = "{out_act}"
'''


@pytest.mark.parametrize("changes, words", [
    ({"act": "swish"}, "layers[1]: field 'activation' must be one of"),
    ({"hidden": 0}, "layers[1]: field 'size' must be a positive integer"),
    ({"loss": "softmax_cross_entropy", "out": 1, "out_act": "softmax", "targets": "[1]"},
     "layers[2]: field 'size' must be at least 2 with softmax + cross-entropy"),
    ({"loss": "softmax_cross_entropy"}, "layers[2]: field 'activation' must be softmax"),
    ({"out_act": "softmax", "out": 2, "targets": "[0.5, 0.5]"}, "field 'loss' must be softmax_cross_entropy"),
    ({"act": "softmax"}, "layers[1]: field 'activation' must be elementwise"),
    ({"targets": "[1, 2, 3]"}, "samples[1]: field 'targets' must be a list of 2 finite numbers"),
    ({"loss": "softmax_cross_entropy", "out_act": "softmax", "targets": "[0.7, 0.7]"},
     "must be probabilities summing to 1"),
])
def test_malformed_templates_name_file_field_and_expectation(tmp_path, changes, words):
    values = {"loss": "l2", "targets": "[0, 1]", "hidden": 2, "act": "tanh", "out": 2, "out_act": "sigmoid", **changes}
    path = tmp_path / "bad.toml"
    path.write_text(BASE.format(**values))
    with pytest.raises(TemplateError) as err:
        template.load(str(path))
    assert str(path) in str(err.value) and words in str(err.value)


def test_wrong_weight_shape_is_named(tmp_path):
    path = tmp_path / "w.toml"
    path.write_text(BASE.format(loss="l2", targets="[0, 1]", hidden=2, act="tanh", out=2, out_act="sigmoid")
                    + "weights = [[1, 2, 3], [4, 5, 6]]\n")
    with pytest.raises(TemplateError, match=r"layers\[2\]: field 'weights' must be a list of 2 finite numbers"):
        template.load(str(path))


def test_seeded_initializer_is_reproducible():
    assert np.array_equal(template.load("deep").weights[0], template.load("deep").weights[0])
