from sheetprop import formulas
from sheetprop.chainrule import Expansion
from sheetprop.layout import TrainingLayout
from sheetprop.quantities import A, Delta, Grad, Param, Z


def test_classic_w1_gradient_written_out_reads_like_the_hand_derivation(classic):
    text = Expansion(classic).gradient(Grad(Param(1, 0, 0)))
    assert text == "((a_o1 − t1)·a_o1·(1−a_o1)·w5 + (a_o2 − t2)·a_o2·(1−a_o2)·w7)·a_h1·(1−a_h1)·i1"


def test_classic_gradient_cell_is_one_delta_times_its_source(classic):
    assert Grad(Param(1, 0, 0)).formula(classic, classic.label, formulas.TEXT) == "δ_h1·i1"
    assert Delta(1, 0).formula(classic, classic.label, formulas.TEXT) == "(δ_o1·w5 + δ_o2·w7)·a_h1·(1−a_h1)"
    assert Delta(2, 1).formula(classic, classic.label, formulas.TEXT) == "(a_o2 − t2)·a_o2·(1−a_o2)"


def test_classic_forward_equations_use_the_classic_names(classic):
    assert Z(1, 0).formula(classic, classic.label, formulas.TEXT) == "w1·i1 + w2·i2"
    assert Z(2, 1).formula(classic, classic.label, formulas.TEXT) == "w7·a_h1 + w8·a_h2"
    assert [classic.label(p) for p in classic.params] == [f"w{i}" for i in range(1, 9)]


def test_sigmoid_formula_never_exponentiates_a_positive_argument(classic):
    excel = A(1, 0).formula(classic, lambda q: "Z", formulas.EXCEL)
    assert excel == "IF(Z>=0,1/(1+EXP(-Z)),EXP(Z)/(1+EXP(Z)))"


def test_training_row_templates_refer_to_this_row_and_the_previous_one(classic):
    layout = TrainingLayout(classic, 10, "Training 3")
    w1 = Param(1, 0, 0)
    assert layout.row_templates[w1].format(8, 7) == f"=B7-$B$2*{layout.cell(Grad(w1), 2)[:-1]}7"
    assert layout.first_row_templates[w1] == "=w1_init"
    assert layout.row_templates[Z(1, 0)].format(8, 7) == "=B8*input_i1+C8*input_i2"
    delta_h1 = layout.cell(Delta(1, 0), 3).rstrip("0123456789")
    assert layout.row_templates[Grad(w1)].format(8, 7) == f"={delta_h1}8*input_i1"
    assert layout.column_range(None) == "'Training 3'!$A$6:$A$16"
