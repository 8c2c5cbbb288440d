"""A third engine with Excel's semantics, and every engine at the workbook's limits.

The `formulas` package (Excel's function semantics written in Python; slow, so for small workbooks only)
recalculates every shipped template: no error cell, and every formula cell equal to its cached value to the
tolerances the LibreOffice and Gnumeric tests use. These workbooks hold everything the builder writes into cells:
INDEX, CHOOSE, MATCH, IFERROR, the array formula {=IFERROR(INDEX(…,MATCH(TRUE,range<target,0)),"never")}, MAX,
MIN, ABS, EXP, LN, SQRT, TANH, IF, COUNTIF, ^, defined names and shared formulas (the filled-down training
columns); the workbooks of 31 and more training sheets below add INT (CHOOSE nested by thirties). `formulas`
evaluates all of them, with two limits of its own:
- CHOOSE takes at most 63 values (it calls numpy.choose, which takes at most 64 arrays; 32 in numpy 1.x) and
  answers #VALUE! beyond, as LibreOffice does beyond 30: the test of the most training sheets holds it too.
- It reads a typed number rounded to 15 decimal places (``round(value, 15)`` in
  ``formulas.excel.ExcelModel.compile_cell``), so an input below 5e-16 would read as 0; no workbook here has one.
It reports a value by the cell's name, "'[book.xlsx]SHEET'!B7" (the sheet's name upper-cased), and an error
value as an ``XlError`` (a str: "#NUM!", "#VALUE!"); tests/xlsx.py reads both.

Then LibreOffice, Gnumeric and `formulas` recalculate workbooks at the limits (hypothesis, one example each, a
few workbooks per start of LibreOffice): 1, 30, 31 and the most training sheets the build allows (the diagram's
CHOOSE lists one value per training sheet), and networks whose gradients underflow (their squares, in RMSprop's
and Adam's state, fall below the smallest double: LibreOffice's ``^`` answers #NUM! there) or whose values
overflow. No engine may show an error value where torch (tests/torch_oracle.py) is finite. Gnumeric computes
in long double, so it shows none even where doubles overflow.
"""

import dataclasses

import numpy as np
import openpyxl
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from xlsxwriter.utility import quote_sheetname

import sheetprop
from sheetprop import diagram, limits, recalc, template
from sheetprop.layout import COMPARE_SHEET, training_layouts
from sheetprop.readback import SavedBook
from sheetprop.update import OPTIMIZERS
from sheetprop.verification import scan_errors
from sheetprop.workbook import build
from tests.networks import ELEMENTWISE, networks
from tests.torch_oracle import torch_gradients, torch_training
from tests.xlsx import assert_formulas_matches_cache, formulas_errors, formulas_values, gnumeric_errors

# -- A: the formulas package recalculates every shipped template ---------------------------------------------

# Per template: (optimizers, learning rates, iterations). Every optimizer appears; classic has four training
# sheets, so its diagram CHOOSEs between them. deep's Gradient check sheet alone holds about 14,000 formulas
# (46 parameters × 2 forward passes of 4 samples) and wide's training sheet 1,600 per row: one sheet, one
# iteration each, so that `formulas` takes seconds. A template added later gets the first setting.
FORMULAS_BOOKS = {
    "classic": (("sgd", "momentum"), 2, 2),
    "mazur": (("nesterov", "rmsprop"), 2, 2),
    "xor": (("adam", "adamw"), 2, 2),
}


# The small shipped workbooks: deep (about 30 s in `formulas` on two cores) and wide (15 s) are recalculated in
# LibreOffice and Gnumeric (tests/test_libreoffice.py), not here, to keep the suite within its time.
SMALL = ("classic", "mazur", "xor")


@pytest.mark.parametrize("name", SMALL)
def test_formulas_engine_recalculates_every_template_to_its_cached_values(formulas_engine, name, tmp_path):
    optimizers, rates, iterations = FORMULAS_BOOKS.get(name, FORMULAS_BOOKS["classic"])
    net = dataclasses.replace(template.load(name), optimizers=optimizers)
    book = tmp_path / f"{name}.xlsx"
    build(net, list(net.learning_rates[:rates]), iterations, book)
    cells = assert_formulas_matches_cache(book)
    training = sum(len(layout.columns) for layout in training_layouts(net, rates, iterations)) * (iterations + 1)
    assert cells > training


# -- B: every engine at the limits --------------------------------------------------------------------------


def examples(n: int) -> settings:
    """n examples, the same on every run (CI must be deterministic), not shrunk (each recalculates several
    workbooks in three engines), without a time limit per example."""
    return settings(max_examples=n, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow])


def most_training_sheets() -> int:
    """The most training sheets a build allows: sheetprop.limits.MAX_TRAINING_SHEETS (or, before it moves
    there, sheetprop.diagram's)."""
    most = getattr(limits, "MAX_TRAINING_SHEETS", None) or getattr(diagram, "MAX_TRAINING_SHEETS", None)
    if most is None:
        pytest.fail("sheetprop.limits.MAX_TRAINING_SHEETS (the most training sheets a workbook may have, which "
                    "every engine computes) is missing")
    return most


def first_nonfinite_row(net, optimizer: str, lr: float, iterations: int) -> int | None:
    """The first row (iteration) of a training sheet where torch is not finite: its parameters, E_total, the
    gradient or the optimizer's state after the row's step; None when every row is finite."""
    params, states = torch_training(net, optimizer, lr, iterations)
    for k in range(iterations + 1):
        loss, grads = torch_gradients(net, params[k])
        values = [params[k], grads, np.array([loss]), *(s[k] for s in states.values())]
        if not all(np.isfinite(v).all() for v in values):
            return k
    return None


def smallest_gradient(net, optimizer: str, lr: float, iterations: int) -> float:
    """The smallest nonzero |∂E/∂p| of any row, as torch computes it."""
    params, _ = torch_training(net, optimizer, lr, iterations)
    grads = np.abs(np.concatenate([torch_gradients(net, p)[1] for p in params]))
    return float(grads[grads > 0].min())


@dataclasses.dataclass
class Book:
    """A workbook to build: the network, its learning rates and iterations, and a name for reports."""

    name: str
    net: object
    learning_rates: list[float]
    iterations: int

    def excused(self, book) -> set[tuple[str, str]]:
        """The cells that may hold an error value: those of a training sheet's rows from the first where torch
        is not finite, and the Compare sheet's cells whose formula reads such a sheet (E_total at its last
        row). Every other cell must be free of them."""
        rates = len(self.learning_rates)
        diverged = {}
        for layout in training_layouts(self.net, rates, self.iterations):
            row = first_nonfinite_row(self.net, layout.optimizer, self.learning_rates[layout.lr_slot], self.iterations)
            if row is not None:
                diverged[layout.sheet] = layout.row(row)
        if not diverged:
            return set()
        wb = openpyxl.load_workbook(book)
        out = {(sheet, c.coordinate) for sheet, first in diverged.items()
               for row in wb[sheet].iter_rows(min_row=first + 1) for c in row}
        marks = [f"{quote_sheetname(sheet)}!" for sheet in diverged]
        out |= {(COMPARE_SHEET, c.coordinate) for row in wb[COMPARE_SHEET].iter_rows() for c in row
                if any(m in str(getattr(c.value, "text", c.value)) for m in marks)}
        return out


def assert_no_error_cells_where_torch_is_finite(books: list[Book], ssconvert: str, folder) -> None:
    """Build ``books``, recalculate them in LibreOffice (one start), Gnumeric and `formulas`; fail with every
    engine's error cells outside those excused (see :meth:`Book.excused`), the first five per workbook."""
    paths = [folder / f"{b.name}.xlsx" for b in books]
    for b, path in zip(books, paths):
        build(b.net, b.learning_rates, b.iterations, path)
    recalculated = recalc.recalculate_all(paths, folder / "libreoffice")
    found = {}
    for b, path, fresh in zip(books, paths, recalculated):
        excused = b.excused(path)
        engines = {"LibreOffice": scan_errors(SavedBook(fresh)),
                   "Gnumeric": gnumeric_errors(path, ssconvert, folder / f"gnumeric-{b.name}"),
                   "formulas": formulas_errors(formulas_values(path))}
        for engine, errors in engines.items():
            wrong = [e for e in errors if (e[0], e[1]) not in excused]
            if wrong:
                found[f"{engine}, {b.name}"] = f"{len(wrong)} error cells, the first {wrong[:5]}"
    assert not found, "error values where torch is finite:\n" + "\n".join(f"{k}: {v}" for k, v in found.items())


def sheet_counts(most: int) -> list[int]:
    return [1, 30, 31, most]


@st.composite
def one_to_one(draw):
    """A 1-1 network: any elementwise activation, L2 or MSE loss, with or without a bias, one sample."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bias = draw(st.booleans())
    layer = {"size": 1, "activation": draw(st.sampled_from(ELEMENTWISE)), "bias": bias,
             "weights": [[rng.uniform(-1, 1)]], **({"biases": [rng.uniform(-1, 1)]} if bias else {})}
    return template.from_dict({"name": "one-to-one", "loss": draw(st.sampled_from(["l2", "mse"])), "layers": [layer],
                               "samples": [{"inputs": [rng.uniform(-1, 1)], "targets": [rng.uniform(0, 1)]}]})


@st.composite
def many_sheets(draw, most: int) -> list[Book]:
    """A workbook for each count of training sheets: random small networks (the one with the most sheets is
    a 1-1 network, one iteration, so that `formulas` reads it in seconds), the sheets split between a divisor
    of the count of optimizers and distinct learning rates."""
    books = []
    for n in sheet_counts(most):
        small = n <= 31
        net = draw(networks(max_layers=2, max_units=3, max_samples=2) if small else one_to_one())
        k = draw(st.sampled_from([d for d in range(1, len(OPTIMIZERS) + 1) if n % d == 0]))
        optimizers = tuple(draw(st.permutations(sorted(OPTIMIZERS)))[:k])
        lr0 = draw(st.sampled_from([0.1, 0.5, 1.0]))
        lrs = [round(lr0 + 0.01 * i, 2) for i in range(n // k)]
        books.append(Book(f"sheets{n}", dataclasses.replace(net, optimizers=optimizers), lrs,
                          draw(st.integers(1, 3 if small else 1))))
    return books


@pytest.mark.libreoffice
@pytest.mark.slow
@examples(1)
@given(st.data())
def test_engines_compute_1_30_31_and_the_most_training_sheets_without_error_cells(soffice, ssconvert,
                                                                                  formulas_engine,
                                                                                  tmp_path_factory, data):
    most = most_training_sheets()
    folder = tmp_path_factory.mktemp("sheets")
    books = data.draw(many_sheets(most))
    assert [len(b.learning_rates) * len(b.net.optimizers) for b in books] == sheet_counts(most)
    assert_no_error_cells_where_torch_is_finite(books, ssconvert, folder)
    beyond = folder / "beyond.xlsx"  # the most: one sheet more is refused, before anything is written
    with pytest.raises(limits.LimitError):
        sheetprop.build(books[-1].net, [round(0.01 * (i + 1), 2) for i in range(most + 1)], 1, beyond,
                        optimizers=["sgd"], progress=False)
    assert not beyond.exists()


def softmax_233():
    """2-3-3: leaky ReLU, then softmax with cross-entropy, one one-hot sample. RMSprop's first steps move every
    parameter by about 10·η, so at η = 0.5 the softmax saturates: a gradient of 3.5e-171 at iteration 2,
    whose square (in RMSprop's v, and Adam's) underflows to 0."""
    rng = np.random.default_rng(11)
    layers = [{"size": 3, "activation": "leaky_relu", "bias": True,
               "weights": rng.uniform(-1, 1, (3, 2)).tolist(), "biases": rng.uniform(-1, 1, 3).tolist()},
              {"size": 3, "activation": "softmax", "bias": True,
               "weights": rng.uniform(-1, 1, (3, 3)).tolist(), "biases": rng.uniform(-1, 1, 3).tolist()}]
    sample = {"inputs": rng.uniform(-1, 1, 2).tolist(), "targets": np.eye(3)[rng.integers(3)].tolist()}
    return template.from_dict({"name": "softmax-2-3-3", "loss": "softmax_cross_entropy", "layers": layers,
                               "samples": [sample]})


def identity_11():
    """1-1, identity, L2: with SGD at η = 1e100 the weight grows by 1e100 per step, and E_total passes the
    float range at iteration 2 (in torch too): error values from that row on are the run's, not an engine's."""
    return template.from_dict({"name": "identity-1-1", "loss": "l2", "samples": [{"inputs": [1.0], "targets": [0.2]}],
                               "layers": [{"size": 1, "activation": "identity", "bias": False, "weights": [[0.5]]}]})


# (name, network, optimizer, η, the first iteration that shows it)
STRESSED = [
    ("underflow-softmax-rmsprop", softmax_233, "rmsprop", 0.5, 2),  # |g| = 3.5e-171: g² underflows in v
    ("underflow-xor-adam", lambda: template.load("xor"), "adam", 100.0, 2),  # |g| ≈ 1e-286 once the sigmoids saturate
    ("overflow-identity-sgd", identity_11, "sgd", 1e100, 2),  # E_total = inf from iteration 2, in torch too
]


@st.composite
def stressed(draw) -> list[Book]:
    """Each stressed network with its optimizer and η, for 2-5 iterations (at least one past the row that shows
    the underflow or overflow)."""
    return [Book(name, dataclasses.replace(make(), optimizers=(optimizer,)), [lr],
                 draw(st.integers(max(2, shows + 1), 5))) for name, make, optimizer, lr, shows in STRESSED]


@pytest.mark.libreoffice
@pytest.mark.slow
@examples(1)
@given(st.data())
def test_engines_show_no_error_where_torch_is_finite_when_gradients_underflow_or_values_overflow(
        soffice, ssconvert, formulas_engine, tmp_path_factory, data):
    books = data.draw(stressed())
    for (name, _, optimizer, lr, shows), b in zip(STRESSED, books):  # each case still is what it says
        if name.startswith("underflow"):
            assert first_nonfinite_row(b.net, optimizer, lr, b.iterations) is None, name
            assert smallest_gradient(b.net, optimizer, lr, shows) < 1e-160, name  # its square < 1e-320
        else:
            assert first_nonfinite_row(b.net, optimizer, lr, b.iterations) == shows, name
    assert_no_error_cells_where_torch_is_finite(books, ssconvert, tmp_path_factory.mktemp("stressed"))
