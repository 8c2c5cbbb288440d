"""Excel's limits: networks that cannot fit are refused before anything is written; the others fit."""

import openpyxl
import pytest
import xlsxwriter
from click.testing import CliRunner
from xlsxwriter.utility import quote_sheetname, xl_range_abs

from sheetprop import limits, recalc, template
from sheetprop.cli import main
from sheetprop.formulas import choose
from sheetprop.layout import DIAGRAM_ITERATION, DIAGRAM_SHEET, TrainingLayout, training_sheet_name
from sheetprop.quantities import LayerMax, LayerSumExp
from sheetprop.workbook import build
from tests.xlsx import assert_recalculation_matches_cache, gnumeric_sheets


def write_template(folder, sizes, activations, loss="l2", iterations=5, name="net"):
    """A template file for a network of the given sizes (every layer with biases)."""
    layers = "".join(f'[[layers]]\nsize = {s}\nactivation = "{a}"\nbias = true\n\n' for s, a in zip(sizes[1:], activations))
    targets = [1.0] + [0.0] * (sizes[-1] - 1) if loss == "softmax_cross_entropy" else [0.5] * sizes[-1]
    path = folder / f"{name}.toml"
    path.write_text(f'name = "{name}"\nloss = "{loss}"\n[sample]\ninputs = {[0.1] * sizes[0]}\ntargets = {targets}\n'
                    f"[training]\niterations = {iterations}\n\n{layers}")
    return path


@pytest.mark.parametrize("sizes, words", [
    ([2, 200, 200, 2], "a training sheet of 2-200-200-2 needs 83,614 columns; Excel allows 16,384"),
    ([2, 90, 90, 2], "a training sheet of 2-90-90-2 needs 17,834 columns; Excel allows 16,384"),
    ([1000, 1, 1], "z[1]_1 on a training sheet needs a formula of 16,172 characters; Excel allows 8,192"),
])
def test_a_network_that_cannot_fit_is_refused_in_one_line_before_anything_is_written(tmp_path, sizes, words):
    path = write_template(tmp_path, sizes, ["tanh"] * (len(sizes) - 2) + ["sigmoid"])
    result = CliRunner().invoke(main, ["build", "--template", str(path), "--out", str(tmp_path / "b.xlsx")])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [f"Error: net cannot be written for Excel: {words}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.toml"]


def test_more_iterations_than_rows_are_refused(tmp_path):
    path = write_template(tmp_path, [2, 2, 2], ["sigmoid", "sigmoid"], iterations=1_048_571)
    result = CliRunner().invoke(main, ["build", "--template", str(path), "--out", str(tmp_path / "b.xlsx")])
    assert result.exit_code == 2 and "needs 1,048,577 rows; Excel allows 1,048,576" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.toml"]


def test_a_deep_network_writes_the_recursive_form_where_the_expansion_is_too_long(tmp_path):
    net = template.load(write_template(tmp_path, [3, 10, 10, 10, 10, 10, 10, 2], ["tanh"] * 6 + ["sigmoid"]))
    build(net, [0.1], 3, tmp_path / "deep.xlsx")
    rows = {r[0]: r for r in openpyxl.load_workbook(tmp_path / "deep.xlsx")["Equations"].iter_rows(values_only=True)
            if r[0]}
    assert rows["∂E_total/∂w[1]_1,1"][2] == ("= δ[1]_1·i1   (written out in full this passes Excel's 32,767 "
                                             "characters per cell; δ[1]_1 is in the backward pass above)")
    last_hidden = rows["∂E_total/∂w[7]_1,1"][2]
    assert "passes" not in last_hidden and "δ" not in last_hidden  # written out in full
    assert all(len(str(v)) <= limits.MAX_TEXT_CHARS for r in rows.values() for v in r if v is not None)


def test_a_softmax_wider_than_a_function_has_arguments_reads_its_layer_as_a_range(tmp_path):
    net = template.load(write_template(tmp_path, [2, 300], ["softmax"], loss="softmax_cross_entropy"))
    layout = TrainingLayout(net, 2)
    assert layout.row_templates[LayerMax(1)].format(7, 6).startswith("=MAX(") and ":" in layout.row_templates[
        LayerMax(1)]
    sum_exp = layout.row_templates[LayerSumExp(1)].format(7, 6)  # a sum of terms, which no engine reads as an array
    assert sum_exp.startswith("=EXP(") and sum_exp.count("EXP(") == 300
    layout.check()  # no function gets more than 255 arguments


@pytest.mark.libreoffice
def test_a_300_way_softmax_recalculates_in_libreoffice(soffice, tmp_path):
    net = template.load(write_template(tmp_path, [2, 300], ["softmax"], loss="softmax_cross_entropy"))
    build(net, [0.5], 2, tmp_path / "wide.xlsx")
    cells = assert_recalculation_matches_cache(tmp_path / "wide.xlsx",
                                               recalc.recalculate(tmp_path / "wide.xlsx", tmp_path / "out"), floor=1e-9)
    assert cells > 3 * len(TrainingLayout(net, 2).columns)


@pytest.mark.parametrize("formula, shape", [
    ("=B6-$B$2*AC6", (0, 0, 0)),
    ("=IF(B6>=0,1/(1+EXP(-B6)),EXP(B6)/(1+EXP(B6)))", (2, 3, 0)),
    ('=IFERROR(INDEX(\'lr=0.1\'!$A$6:$A$16,MATCH(TRUE,\'a,b(\'!$B$6:$B$16<x,0)),"never, ( ever")', (3, 3, 0)),
    ("=PI()+SUM(1)", (1, 1, 0)),
    ("=MAX(" + ",".join(["A1"] * 300) + ")", (1, 300, 0)),
    ("=" + "ABS(" * 70 + "1" + ")" * 70, (70, 1, 0)),
    ('=CHOOSE(k,"a,b",CHOOSE(k-1,x,y,z),choose(2,1,2,3,4,5))', (2, 6, 5)),
])
def test_formula_shape_counts_function_nesting_arguments_and_choose_values(formula, shape):
    assert limits.formula_shape(formula) == shape


@pytest.mark.parametrize("formula, words", [
    ("=" + "+".join(["A1"] * 3000), "a formula of 8,999 characters; Excel allows 8,192"),
    ("=" + "ABS(" * 70 + "1" + ")" * 70, "functions nested 70 deep; Excel allows 64"),
    ("=MAX(" + ",".join(["A1"] * 300) + ")", "a function of 300 arguments; Excel allows 255"),
    ("=CHOOSE(1," + ",".join(["A1"] * 31) + ")", "a CHOOSE of 31 values; LibreOffice allows 30"),
])
def test_check_formula_names_the_limit_and_by_how_much(formula, words):
    with pytest.raises(limits.LimitError, match=words.replace("(", r"\(").replace(")", r"\)")):
        limits.check_formula(formula, "x")


@pytest.mark.libreoffice
def test_verify_reports_a_formula_beyond_excels_limits(soffice, classic_book, tmp_path):
    wb = openpyxl.load_workbook(classic_book)
    wb["Compare"]["H1"] = "=" + "+".join(["B3"] * 3000)
    edited = tmp_path / "long.xlsx"
    wb.save(edited)
    result = CliRunner().invoke(main, ["verify", str(edited)])
    assert result.exit_code == 1
    assert "beyond Excel's limits at Compare!H1: this cell needs a formula of 8,999 characters" in result.output


def test_a_choose_of_30_values_passes_the_check():
    limits.check_formula("=CHOOSE(1," + ",".join(["A1"] * 30) + ")", "x")


def pick(formula: str, k: int) -> float:
    """A formula of CHOOSE, INT, numbers and k, evaluated as the engines do (CHOOSE evaluates its pick only)."""
    def CHOOSE(index, *values):  # noqa: N802 (Excel's name)
        return values[int(index) - 1] if 1 <= index <= len(values) else None

    return eval(formula.lstrip("=").replace("INT(", "int(").replace("k", str(k)), {"CHOOSE": CHOOSE})


@pytest.mark.parametrize("n", [1, 2, 30, 31, 36, 60, 61, 120, 900, 901])
def test_choose_nests_any_number_of_values_within_libreoffices_30(n):
    formula = "=" + choose("k", [str(10 * v) for v in range(1, n + 1)])
    assert limits.formula_shape(formula).choose_values <= min(n, 30)
    limits.check_formula(formula, "x")
    assert [pick(formula, k) for k in range(1, n + 1)] == [10 * k for k in range(1, n + 1)]


def test_the_diagram_formula_fits_every_limit_at_the_most_training_sheets_in_the_widest_sheet():
    most = limits.MAX_TRAINING_SHEETS
    last = xl_range_abs(TrainingLayout.FIRST_ROW, limits.MAX_COLUMNS - 1, limits.MAX_ROWS - 1, limits.MAX_COLUMNS - 1)
    widest = f"INDEX({quote_sheetname(training_sheet_name(most - 1))}!{last},{DIAGRAM_ITERATION}+1)"
    formula = "=" + choose(DIAGRAM_SHEET, [widest] * most)
    limits.check_formula(formula, "the diagram")
    assert len(formula) > 0.9 * limits.MAX_FORMULA_CHARS  # the most: not far below the limit


def test_one_training_sheet_more_than_the_most_is_refused_in_one_line_before_anything_is_written(tmp_path):
    most = limits.MAX_TRAINING_SHEETS
    rates = [str(round(0.01 * (i + 1), 2)) for i in range(most // 6 + 1)]
    out = tmp_path / "b.xlsx"
    result = CliRunner().invoke(main, ["build", "--lr", *rates, "--optimizer", "sgd", "momentum", "nesterov",
                                       "rmsprop", "adam", "adamw", "--iterations", "1", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        f"Error: classic cannot be written for Excel: 6 optimizers × {len(rates)} learning rates need "
        f"{6 * len(rates)} training sheets; a workbook holds at most {most} (the network diagram picks among them in "
        "one formula, and Excel allows 8,192 characters in a formula)"]
    assert list(tmp_path.iterdir()) == []
    result = CliRunner().invoke(main, ["build", "--lr", *[str(round(0.01 * (i + 1), 2)) for i in range(most)],
                                       "--iterations", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output  # the most itself is written


# a formula of n values, arguments or nested calls, which computes n where the engine takes it
PROBES = {
    "CHOOSE_VALUES": lambda n: f"=CHOOSE({n},{','.join(map(str, range(1, n + 1)))})",
    "ARGUMENTS": lambda n: "=SUM(" + ",".join(["1"] * n) + ")",
    "NESTING": lambda n: "=" + "ABS(" * n + str(n) + ")" * n,
}


@pytest.mark.libreoffice
def test_the_engines_limits_are_those_libreoffice_and_gnumeric_compute(soffice, ssconvert, tmp_path):
    """Each engine's value in sheetprop.limits computes, and one more is an error; None (no limit below the others')
    computes beyond every other engine's."""
    cases = []  # (engine, formula, computes)
    for name, probe in PROBES.items():
        limit = getattr(limits, name)
        most = max(limit.engines.values())
        for engine, value in (("LibreOffice", limit.libreoffice), ("Gnumeric", limit.gnumeric)):
            cases += [(engine, probe(value), value), (engine, probe(value + 1), None)] if value else [
                (engine, probe(most + 1), most + 1)]
    path = tmp_path / "probes.xlsx"
    with xlsxwriter.Workbook(path) as wb:
        ws = wb.add_worksheet("probes")
        for row, (_, formula, _) in enumerate(cases):
            ws.write_formula(row, 0, formula, None, 0)
    libreoffice = openpyxl.load_workbook(recalc.recalculate(path, tmp_path / "lo"), data_only=True)["probes"]
    [gnumeric] = gnumeric_sheets(path, ssconvert, tmp_path / "gnumeric")
    for row, (engine, formula, computes) in enumerate(cases):
        got = libreoffice.cell(row + 1, 1).value if engine == "LibreOffice" else gnumeric[row][0]
        if computes is None:
            assert isinstance(got, str) and got.startswith(("#", "Err")), (engine, formula[:40], got)
        else:
            assert float(got) == computes, (engine, formula[:40], got)
