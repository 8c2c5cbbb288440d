"""Names are checked as Excel checks them, and templates with unknown keys or contradictory fields are
refused, in one line and before anything is written."""

import copy
import dataclasses
import warnings

import openpyxl
import pytest
import tomli_w
import xlsxwriter
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import sheetprop
from sheetprop import template
from sheetprop.cli import main
from sheetprop.naming import defined_name_problem
from sheetprop.template import TemplateError

# mazur: classic naming with biases, so layer names reach the defined names (b_h1_init)
MAZUR = template.to_dict(template.load("mazur"))


def changed(change) -> dict:
    data = copy.deepcopy(MAZUR)
    change(data)
    return data


def layer_names(*names: str):
    def change(data: dict) -> None:
        for layer, name in zip(data["layers"], names):
            layer["name"] = name
    return change


def without_biases(data: dict) -> None:
    for layer in data["layers"]:
        layer["bias"] = False
        del layer["biases"]


CASES = {
    "inputs differing by case": (lambda d: d.update(inputs=["x", "X"]), "field 'inputs': input names 'x' and 'X' "
                                 "are the same name to Excel (case-insensitive"),
    "inputs repeated": (lambda d: d.update(inputs=["x", "x"]), "field 'inputs': input name 'x' is given twice"),
    "targets differing by case": (lambda d: d.update(targets=["t", "T"]),
                                  "field 'targets': target names 't' and 'T' are the same name to Excel"),
    "layers h1 and h1_": (layer_names("h1", "h1_"),
                          "layers[2]: field 'name': layer names 'h1' and 'h1_' both name the unit h1_1"),
    "layers h1 and h1_ without biases": (lambda d: (layer_names("h1", "h1_")(d), without_biases(d)),
                                         "layers[2]: field 'name': layer names 'h1' and 'h1_' both name the unit"),
    "layers that lose their letters in ASCII": (layer_names("ħ", "ø"),
                                                "layers[2]: field 'name': layer names 'ħ' and 'ø' both give the "
                                                "defined name b_1_init"),
    "layers differing by case": (layer_names("h", "H"),
                                 "layers[2]: field 'name': layer names 'h' and 'H' are the same name to Excel"),
    "an input name too long for Excel": (lambda d: d.update(inputs=["x" * 250, "y"]),
                                         "field 'inputs': input name 'xxx"),
    "a misspelt top-level key": (lambda d: d.update(reducton="sum"),
                                 "unknown key 'reducton'; did you mean 'reduction'?"),
    "a training key at the top level": (lambda d: d.update(iteration=5),
                                        "unknown key 'iteration'; did you mean 'iterations' in [training]?"),
    "a misspelt layer key": (lambda d: d["layers"][0].update(biasses=[0.1, 0.2]),
                             "layers[1]: unknown key 'biasses'; did you mean 'biases'?"),
    "a misspelt sample key": (lambda d: d["samples"][0].update(input=[1, 2]),
                              "samples[1]: unknown key 'input'; did you mean 'inputs'?"),
    "a misspelt training key": (lambda d: d["training"].update(learning_rate=[1]),
                                "training: unknown key 'learning_rate'; did you mean 'learning_rates'?"),
    "a misspelt init key": (lambda d: d.update(init={"sede": 1}), "init: unknown key 'sede'; did you mean 'seed'?"),
    "biases with bias = false": (lambda d: d["layers"][1].update(bias=False),
                                 "layers[2]: fields 'biases' and 'bias = false' contradict each other"),
    "[sample] and [[samples]]": (lambda d: d.update(sample=d["samples"][0]),
                                 "give one [sample] or a list of [[samples]], not both"),
    "an [init] no layer uses": (lambda d: d.update(init={"seed": 1}), "[init] is never used"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_template_is_one_line_naming_the_field_and_writes_nothing(tmp_path, case):
    change, words = CASES[case]
    path, out = tmp_path / "net.toml", tmp_path / "b.xlsx"
    path.write_text(tomli_w.dumps(changed(change)), encoding="utf-8")
    result = CliRunner().invoke(main, ["build", "--template", str(path), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1 and result.output.startswith(f"Error: {path}: "), result.output
    assert words in result.output
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("case", ["inputs differing by case", "layers that lose their letters in ASCII",
                                  "a misspelt layer key", "biases with bias = false"])
def test_the_api_raises_template_error_and_writes_nothing(tmp_path, case):
    change, words = CASES[case]
    with pytest.raises(TemplateError, match="^template 'mazur': ") as err:
        sheetprop.build(changed(change), out=tmp_path / "b.xlsx")
    assert words in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_a_network_built_in_code_is_checked_too(tmp_path):
    net = dataclasses.replace(template.load("mazur"), input_names=("i1", "I1"))
    with pytest.raises(TemplateError, match="network 'mazur': field 'inputs': input names 'i1' and 'I1'"):
        sheetprop.build(net, out=tmp_path / "b.xlsx")
    assert list(tmp_path.iterdir()) == []


def test_biases_alone_mean_bias_true():
    data = changed(lambda d: [layer.pop("bias") for layer in d["layers"]])
    assert all(layer.bias for layer in template.from_dict(data).layers)


def test_a_defined_name_of_exactly_255_characters_is_written(tmp_path):
    name = "x" * (255 - len("input_"))
    out = tmp_path / "b.xlsx"
    sheetprop.build(changed(lambda d: d.update(inputs=[name, "y"])), learning_rates=[0.5], iterations=2, out=out)
    assert f"input_{name}" in openpyxl.load_workbook(out).defined_names


@pytest.mark.parametrize("name, problem", [
    ("A1", "cell reference"), ("xfd1048576", "cell reference"), ("R1C1", "cell reference"), ("rc", "cell reference"),
    ("R", "cell reference"), ("c", "cell reference"), ("C12", "cell reference"), ("1a", "must start with"),
    (".a", "must start with"), ("a b", "only letters"), ("a-b", "only letters"), ("x" * 256, "Excel allows 255"),
])
def test_names_excel_refuses_are_refused(name, problem):
    assert problem in defined_name_problem(name)


@pytest.mark.parametrize("name", ["input_x", "b_ħ1_init", "_x", "\\x", "a.b", "RCX", "ABCD1", "x" * 255])
def test_names_excel_takes_are_taken_and_xlsxwriter_defines_them(tmp_path, name):
    assert defined_name_problem(name) is None
    workbook = xlsxwriter.Workbook(tmp_path / "n.xlsx")
    workbook.add_worksheet()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # xlsxwriter warns and skips a name it thinks Excel refuses
        assert workbook.define_name(name, "=Sheet1!$A$1") == 0


NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(NAME.filter(lambda n: n != n.swapcase()))
def test_input_names_differing_only_by_case_are_refused(name):
    with pytest.raises(TemplateError, match="case-insensitive"):
        template.from_dict(changed(lambda d: d.update(inputs=[name, name.swapcase()])))


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.lists(st.text("hHoø_ħ1", min_size=1, max_size=3).filter(str.isidentifier), min_size=2, max_size=2))
def test_an_accepted_network_never_gives_two_parameters_one_defined_name(names):
    try:
        net = template.from_dict(changed(layer_names(*names)))
    except TemplateError as exc:
        assert "layers[2]: field 'name'" in str(exc)
        return
    defined = [p.defined_name(net) for p in net.params]
    assert len({n.casefold() for n in defined}) == len(defined)
