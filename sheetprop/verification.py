"""Check a workbook: recalculate it in LibreOffice and judge every row of every training sheet.

Row k is held against one step of the reference from row k's own parameters, as LibreOffice
computed them, and row k+1's parameters against p_k − η·g_k of row k. A wrong formula shows up in
its own row; rounding that gradient descent amplifies over many iterations (a chaotic run ends far
from a reference restarted 1e-15 away) is not mistaken for one, nor is the rounding of one step
(see ROUNDING). Values that overflow in the workbook where the reference at the same parameters
overflows too are a diverged run, not an error of the workbook. The inputs are read from the
file itself, after any edits."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from openpyxl.formula.translate import Translator
from xlsxwriter.utility import quote_sheetname, xl_rowcol_to_cell

from sheetprop import limits, template
from sheetprop.layout import Meta, TrainingLayout, lr_label, lr_name, state_quantities, training_layouts
from sheetprop.network import Network
from sheetprop.quantities import Grad, Input, State, Target
from sheetprop.readback import SavedBook, Sheet
from sheetprop.recalc import recalculated_copy
from sheetprop.reference import evaluate
from sheetprop.update import OPTIMIZERS
from sheetprop.workbook import META_SHEET

TOLERANCE = 1e-9
# LibreOffice returns exactly 0 for the difference of two nearly equal numbers, where numpy
# keeps a residue of ~1e-17; below this magnitude values are compared on this scale instead.
FLOOR = 1e-6
# LibreOffice rounds as numpy does, but not always alike, and its + and − return exactly 0 for
# operands within 2^-48 of each other. One step is therefore known only up to its sensitivity to
# relative changes of that size in every value it computes with, which is large where it subtracts
# nearly equal numbers (1 − a² of a saturated tanh, a − t of a confident softmax, a gradient summed
# over samples that cancel); differences within that slack are rounding, not a wrong formula.
ROUNDING = 2.0**-48
RANDOM_DRAWS = 2  # random perturbations of the step, besides one per layer and one of the parameters
SHOWN = 100  # mismatches kept per sheet for the report


class VerifyError(ValueError):
    """The file is not a sheetprop workbook, or cannot be read."""


@dataclass(frozen=True)
class Mismatch:
    """A training cell beyond the tolerance: the reference at its row's parameters against the workbook."""

    sheet: str
    cell: str
    iteration: int
    quantity: str
    reference: float
    workbook: float
    difference: float


def run_label(optimizer: str, lr: float) -> str:
    """How a report names what a training sheet trains with: "Adam, lr=0.5"."""
    return f"{OPTIMIZERS[optimizer].title}, lr={lr_label(lr)}"


@dataclass(frozen=True)
class Divergence:
    """A training sheet whose values overflow from ``iteration`` on, as the reference's do."""

    sheet: str
    lr: float
    iteration: int
    optimizer: str = "sgd"

    def __str__(self) -> str:
        return f"{run_label(self.optimizer, self.lr)} (sheet {self.sheet}): diverged from iteration {self.iteration}"


@dataclass
class Report:
    tolerance: float = TOLERANCE
    cells: int = 0  # training cells judged
    max_difference: float = 0.0  # relative, beyond rounding, over the cells where both are finite
    worst: tuple[str, str, float, float] | None = None  # sheet, cell, reference, workbook
    beyond: dict[str, int] = field(default_factory=dict)  # training sheet → cells beyond the tolerance
    runs: dict[str, str] = field(default_factory=dict)  # training sheet → its optimizer and lr (run_label)
    mismatches: list[Mismatch] = field(default_factory=list)  # the first SHOWN of them per sheet
    diverged: list[Divergence] = field(default_factory=list)
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # sheet, cell, value: not a divergence
    over_limits: list[tuple[str, str, str]] = field(default_factory=list)  # sheet, cell, which limit

    def ok(self) -> bool:
        """The workbook computes what the reference does (a diverged run included)."""
        return self.cells > 0 and not (self.mismatches or self.errors or self.over_limits)


def update_step(optimizer: str, h: dict[str, float], lr: float, params: np.ndarray, grads: np.ndarray,
                held: dict[str, np.ndarray]):
    """The optimizer's step judged row by row from the workbook's own values (rows × parameters): the
    parameters of rows 1..N from row 0..N−1's parameters, gradients and state, and the state of every row
    from its gradients and the row before's state, each with its rounding slack: what the result moves
    when one of its inputs moves relatively by ROUNDING, summed over the inputs, plus its own rounding."""
    rule = OPTIMIZERS[optimizer]
    t = np.arange(1, len(params) + 1, dtype=float)[:, None]

    def advance(grads, held):
        first = rule.advance(None, grads[:1], 1, h)
        rest = rule.advance({k: v[:-1] for k, v in held.items()}, grads[1:], t[1:], h) if len(grads) > 1 else {}
        return {k: np.vstack([first[k], rest[k]]) if rest else first[k] for k in rule.states}

    def apply(params, grads, held):
        return rule.apply(params[:-1], lr, grads[:-1], {k: v[:-1] for k, v in held.items()}, h)

    def slack_of(f, want, args):
        total = ROUNDING * np.abs(want) if not isinstance(want, dict) else {k: ROUNDING * np.abs(v) for k, v in want.items()}
        for i in range(len(args)):
            for key in (list(args[i]) if isinstance(args[i], dict) else [None]):
                moved = list(args)
                if key is None:
                    moved[i] = args[i] * (1 + ROUNDING)
                else:
                    moved[i] = {**args[i], key: args[i][key] * (1 + ROUNDING)}
                out = f(*moved)
                if isinstance(want, dict):
                    total = {k: total[k] + np.abs(out[k] - want[k]) for k in want}
                else:
                    total = total + np.abs(out - want)
        return total

    new_state = advance(grads, held) if rule.states else {}
    new_params = apply(params, grads, held)
    return (new_params, slack_of(apply, new_params, (params, grads, held)), new_state,
            slack_of(advance, new_state, (grads, held)) if rule.states else {})


def relative_difference(got: float, want: float, floor: float = 0.0) -> float:
    """|got − want| relative to the larger magnitude, or to ``floor`` if that is larger (0 when both are 0)."""
    scale = max(abs(got), abs(want), floor)
    return 0.0 if scale == 0 else abs(got - want) / scale


def read_setup(book: SavedBook, values: SavedBook, source: str) -> tuple[Network, list[float], int, list[str]]:
    """The network, learning rates, iterations and training sheets as the workbook holds them now:
    the meta sheet and defined names from ``book``, the inputs' values from its recalculated copy."""
    if META_SHEET not in book.sheetnames:
        raise VerifyError(f"{source} was not written by sheetprop (no {META_SHEET} sheet)")
    meta = book.sheet(META_SHEET)
    iterations = meta.value(Meta.ITERATIONS_ROW, 0)
    columns = range(meta.numbers.shape[1])
    text = "".join(str(meta.value(Meta.NETWORK_ROW, c)) for c in columns if meta.value(Meta.NETWORK_ROW, c) is not None)
    sheets = [str(meta.value(Meta.SHEETS_ROW, c)) for c in columns if meta.value(Meta.SHEETS_ROW, c) is not None]
    blank = [str(meta.value(Meta.EXERCISE_ROW, c)) for c in columns
             if meta.numbers.shape[0] > Meta.EXERCISE_ROW and meta.value(Meta.EXERCISE_ROW, c) is not None]
    if blank:
        raise VerifyError(f"{source} is an exercise (its {', '.join(blank)} cells are the student's to write): "
                          f"check it with `sheetprop grade`")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(iterations, float) or not iterations.is_integer() or not isinstance(data, dict):
        raise VerifyError(f"{source}: the {META_SHEET} sheet has been changed; it cannot be read")
    net = template.from_dict(data, source)
    missing = [s for s in sheets if s not in values.sheetnames]
    if missing:
        raise VerifyError(f"{source}: training sheet {missing[0]!r} is missing")
    read: dict[str, Sheet] = {}

    def value(name: str) -> float:
        if name not in book.names or book.names[name][0] not in values.sheetnames:
            raise VerifyError(f"defined name {name!r} is missing")
        sheet, row, col = book.names[name]
        if sheet not in read:
            read[sheet] = values.sheet(sheet)
        v = read[sheet].value(row, col)
        if not isinstance(v, float):
            raise VerifyError(f"{name} ({sheet}!{xl_rowcol_to_cell(row, col)}) holds {v!r}, not a number")
        return v

    inputs = [[value(Input(k, s).defined_name(net)) for k in range(net.size(0))] for s in range(net.samples)]
    targets = [[value(Target(j, s).defined_name(net)) for j in range(net.size(net.depth))]
               for s in range(net.samples)]
    initial = {p: value(p.defined_name(net)) for p in net.params}
    hyperparameters = {name: value(name) for name in net.hyperparameters_used}
    rates, leftover = divmod(len(sheets), len(net.optimizers))
    if leftover or not rates:
        raise VerifyError(f"{source}: the {META_SHEET} sheet has been changed; it cannot be read")
    lrs = [value(lr_name(slot)) for slot in range(rates)]
    return net.with_values(inputs, targets, initial, hyperparameters), lrs, int(iterations), sheets


def _window(numbers: np.ndarray, rows: range, cols: np.ndarray) -> np.ndarray:
    """numbers[rows, cols], NaN where the sheet ends before them."""
    out = np.full((len(rows), len(cols)), np.nan)
    have_rows = range(rows.start, min(rows.stop, numbers.shape[0]))
    inside = cols < numbers.shape[1]
    out[: len(have_rows), inside] = numbers[have_rows.start : have_rows.stop][:, cols[inside]]
    return out


class _Perturbed:
    """``net`` whose activations, their derivatives and (at the output) its loss and its gradient in
    ``layers`` move relatively by ROUNDING × ``draw(shape)`` each time they are computed."""

    def __init__(self, net: Network, draw, layers: range) -> None:
        self._net, self._draw, self._layers = net, draw, layers

    def __getattr__(self, name: str):
        return getattr(self._net, name)

    def _moved(self, f):
        def moved(*args):
            x = f(*args)
            return x * (1.0 + ROUNDING * self._draw(np.shape(x)))

        return moved

    def activation_of(self, l: int):
        act = self._net.activation_of(l)
        if l not in self._layers:
            return act
        return dataclasses.replace(act, value=self._moved(act.value), derivative=self._moved(act.derivative))

    @property
    def loss_fn(self):
        loss = self._net.loss_fn
        if self._net.depth not in self._layers:
            return loss
        return dataclasses.replace(loss, value=self._moved(loss.value), gradient=self._moved(loss.gradient))


def rounding_slack(net: Network, params: np.ndarray, columns: tuple, want: np.ndarray) -> np.ndarray:
    """Per cell, the most the reference step moves when its parameters, or the values it computes in one
    layer, move up relatively by ROUNDING, or all of them at random by up to ROUNDING (RANDOM_DRAWS
    times). Moving one kind at a time keeps the changes from cancelling each other."""
    rng = np.random.default_rng(0)
    every = range(1, net.depth + 1)

    def up(shape):
        return np.ones(shape)

    def random(shape):
        return rng.uniform(-1.0, 1.0, shape)

    draws = [(up, None, range(0))] + [(None, up, range(l, l + 1)) for l in every]
    draws += [(random, random, every)] * RANDOM_DRAWS
    slack = np.zeros_like(want)
    for on_params, on_values, layers in draws:
        moved = params if on_params is None else params * (1.0 + ROUNDING * on_params(params.shape))
        step = evaluate(_Perturbed(net, on_values, layers), moved)
        with np.errstate(all="ignore"):
            slack = np.fmax(slack, np.abs(np.column_stack([q.values(step) for q in columns]) - want))
    return slack


def judge(report: Report, sheet: Sheet, layout: TrainingLayout, lr: float, initial: np.ndarray,
          floor: float = FLOOR) -> None:
    """Hold each row of one training sheet against one reference step from that row's parameters."""
    net, name = layout.network, layout.sheet
    report.runs[name] = run_label(layout.optimizer, lr)
    cols = np.array([layout.col(q) for q in layout.columns])
    index = {q: i for i, q in enumerate(layout.columns)}
    rows = range(layout.FIRST_ROW, layout.last_row + 1)
    got = _window(sheet.numbers, rows, cols)
    p_at = [index[p] for p in net.params]
    params, grads = got[:, p_at], got[:, [index[Grad(p)] for p in net.params]]
    states = state_quantities(net, layout.optimizer)
    kinds = OPTIMIZERS[layout.optimizer].states
    state_at = {kind: [index[q] for q in states if q.kind == kind] for kind in kinds}
    held = {kind: got[:, at] for kind, at in state_at.items()}  # the workbook's state, row by row
    evaluated = [q for q in layout.columns if not isinstance(q, State)]
    at = [index[q] for q in evaluated]
    step = evaluate(net, params)
    want = np.full(got.shape, np.nan)
    slack = np.zeros(got.shape)
    want[:, at] = np.column_stack([q.values(step) for q in evaluated])
    slack[:, at] = rounding_slack(net, params, tuple(evaluated), want[:, at])
    with np.errstate(all="ignore"):
        new_params, params_slack, new_state, state_slack = update_step(layout.optimizer, net.hyperparameters, lr,
                                                                       params, grads, held)
        want[:, p_at] = np.vstack([initial, new_params])
        slack[:, p_at] = np.vstack([np.zeros(len(p_at)), params_slack])
        for kind in kinds:
            want[:, state_at[kind]], slack[:, state_at[kind]] = new_state[kind], state_slack[kind]
    # Where a row's parameters are not all numbers the reference is undefined there, and so is a
    # parameter whose value, gradient or state in the row before is not a number (and a state whose
    # gradient or state before is not): such cells follow an error or an overflow already judged, and
    # are not judged again.
    defined = np.repeat(np.isfinite(params).all(axis=1)[:, None], len(cols), axis=1)
    before = np.isfinite(params[:-1]) & np.isfinite(grads[:-1])
    for kind in kinds:
        before &= np.isfinite(held[kind][:-1])
        state_before = np.vstack([np.ones(len(net.params), bool), np.isfinite(held[kind][:-1])])
        defined[:, state_at[kind]] &= np.isfinite(grads) & state_before
    defined[:, p_at] = np.vstack([np.ones(len(p_at), bool), before])

    finite_got, finite_want = np.isfinite(got), np.isfinite(want)
    both = finite_got & finite_want
    with np.errstate(all="ignore"):
        scale = np.maximum(np.maximum(np.abs(got), np.abs(want)), floor)
        # each engine may be that far off, LibreOffice and numpy: twice the slack
        difference = np.where(both, np.maximum(np.abs(got - want) - 2 * slack, 0.0) / scale, 0.0)
    difference[finite_got & ~finite_want & defined] = np.inf  # the reference overflows, the workbook does not
    report.cells += got.size

    def cell(r: int, c: int) -> str:
        return xl_rowcol_to_cell(rows[r], cols[c])

    if difference.size and difference.max() > report.max_difference:
        r, c = np.unravel_index(np.argmax(difference), difference.shape)
        report.max_difference = float(difference[r, c])
        report.worst = (name, cell(r, c), float(want[r, c]), float(got[r, c]))
    beyond = np.nonzero(difference > report.tolerance)
    if len(beyond[0]):
        report.beyond[name] = len(beyond[0])
    for r, c in list(zip(*beyond))[:SHOWN]:
        report.mismatches.append(Mismatch(name, cell(r, c), int(r), layout.columns[c].label(net), float(want[r, c]),
                                          float(got[r, c]), float(difference[r, c])))
    for r, c in zip(*np.nonzero(~finite_got & finite_want & defined)):
        v = sheet.value(rows[r], cols[c])
        report.errors.append((name, cell(r, c), v if (rows[r], cols[c]) in sheet.errors else repr(v)))
    overflowed = np.nonzero((~finite_got & ~finite_want & defined).any(axis=1))[0]
    if overflowed.size:
        report.diverged.append(Divergence(name, lr, int(overflowed[0]), layout.optimizer))
    judged_rows, judged_cols = set(rows), set(cols.tolist())
    report.errors += [(name, xl_rowcol_to_cell(r, c), v) for (r, c), v in sheet.errors.items()
                      if r not in judged_rows or c not in judged_cols]


def compare(values: SavedBook, net: Network, lrs: list[float], iterations: int, sheets: list[str],
            tolerance: float = TOLERANCE, floor: float = FLOOR) -> Report:
    """Judge every training sheet of the recalculated workbook ``values``, row by row."""
    report = Report(tolerance)
    initial = np.array([net.initial(p) for p in net.params])
    layouts = training_layouts(net, len(lrs), iterations)
    if [layout.sheet for layout in layouts] != list(sheets):
        raise VerifyError(f"the training sheets {', '.join(sheets)} are not those of {len(net.optimizers)} "
                          f"optimizers × {len(lrs)} learning rates")
    for layout in layouts:
        judge(report, values.sheet(layout.sheet), layout, lrs[layout.lr_slot], initial, floor)
    return report


def scan_errors(values: SavedBook, skip: tuple[str, ...] = ()) -> list[tuple[str, str, str]]:
    """Every cell that holds an error value, outside the sheets in ``skip``."""
    return [(name, xl_rowcol_to_cell(r, c), v) for name in values.sheetnames if name not in skip
            for (r, c), v in values.sheet(name).errors.items()]


def _follows_divergence(book: SavedBook, errors: list[tuple[str, str, str]],
                        diverged: list[str]) -> set[tuple[str, str]]:
    """The error cells whose formula reads a diverged training sheet (a summary of its last row)."""
    wanted = {(s, c) for s, c, _ in errors}
    marks = tuple(f"{quote_sheetname(d)}!" for d in diverged)
    return {(s, xl_rowcol_to_cell(w.row, w.col)) for s in {s for s, _ in wanted} for w in book.written(s)
            if w.formula and (s, xl_rowcol_to_cell(w.row, w.col)) in wanted and any(m in w.text for m in marks)}


def scan_limits(book: SavedBook) -> list[tuple[str, str, str]]:
    """Every formula or text beyond Excel's limits (length, nesting, arguments). Formulas of one shape
    are checked once; a filled-down formula is checked as its first cell, unless its references'
    longer row numbers further down might take it past the length limit."""
    found, seen = [], set()

    def check(sheet: str, row: int, col: int, text: str, formula: bool, shared: str | None = None) -> None:
        cell = xl_rowcol_to_cell(row, col)
        try:
            if not formula:
                return limits.check_text(text, "this cell")
            if shared and _longer_below(text, shared):
                text = Translator("=" + text, cell).translate_formula(shared.split(":")[-1])[1:]
            shape = text.translate(_ZERO_DIGITS)  # which digits a formula holds changes none of its limits
            if shape not in seen:
                seen.add(shape)
                limits.check_formula(text, "this cell")
        except limits.LimitError as exc:
            found.append((sheet, cell, str(exc)))

    long_shared = any(len(s) > limits.MAX_TEXT_CHARS for s in book.strings)
    for name in book.sheetnames:
        for w in book.written(name, texts_longer_than=limits.MAX_TEXT_CHARS):
            check(name, *w)
        if long_shared:  # rare enough to read the whole sheet for
            for (r, c), text in book.sheet(name).text.items():
                check(name, r, c, text, False)
    return found


_ZERO_DIGITS = str.maketrans("123456789", "000000000")


def _longer_below(formula: str, shared: str) -> bool:
    """Whether a shared formula, filled down ``shared``, might pass Excel's length limit further down."""
    rows = [int("".join(ch for ch in end if ch.isdigit())) for end in shared.split(":")]
    growth = len(str(rows[-1])) - len(str(rows[0]))
    return growth > 0 and len(formula) + growth * len(re.findall(r"[0-9]+", formula)) > limits.MAX_FORMULA_CHARS


def verify(path: str | Path, tolerance: float = TOLERANCE) -> Report:
    """Recalculate ``path`` in LibreOffice and judge it against the reference for its own inputs."""
    path = Path(path)
    if not path.is_file():
        raise VerifyError(f"{path} does not exist")
    try:
        book = SavedBook(path)
    except Exception as exc:  # zipfile and ElementTree raise many kinds for a file that is not a workbook
        raise VerifyError(f"{path} is not a readable .xlsx workbook ({type(exc).__name__})") from None
    with book:
        if META_SHEET not in book.sheetnames:
            raise VerifyError(f"{path} was not written by sheetprop (no {META_SHEET} sheet)")
        recalculated, tmp = recalculated_copy(path)
        with tmp, SavedBook(recalculated) as values:
            net, lrs, iterations, sheets = read_setup(book, values, str(path))
            report = compare(values, net, lrs, iterations, sheets, tolerance)
            others = scan_errors(values, skip=tuple(sheets))
        if others and report.diverged:
            explained = _follows_divergence(book, others, [d.sheet for d in report.diverged])
            others = [e for e in others if (e[0], e[1]) not in explained]
        report.errors += others
        report.over_limits = scan_limits(book)
    return report
