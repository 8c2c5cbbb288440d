"""Grading one table: every quantity column held against the reference row by row (the table's network and
η are read by :mod:`sheetprop.grading.setup`), the first wrong cell of each, and why.

Each row is judged from its own weights, as the student's sheet has them (so one early mistake does not make
every later row wrong): row k's quantities against the reference at row k's weights, row k + 1's weights
against w − η·∂E/∂w of row k. A wrong cell whose value does follow, by its own formula, from the student's
other cells that are wrong already "follows from" the first of them; any other wrong cell is a mistake of
its own, diagnosed from its formula (the cells it reads, mapped back to quantities) and from its value (the
usual mistakes tried against it: another unit's activation, two weights swapped, a missing pair of
parentheses, another gradient, another η, a factor of two).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from openpyxl.formula.tokenizer import Tokenizer
from openpyxl.utils.cell import coordinate_from_string, column_index_from_string

from sheetprop import formulas
from sheetprop.formulas import Style
import sheetprop.grading.relations as relations
from sheetprop.grading.relations import LossSlope, Updated, derivations
from sheetprop.grading.tables import Fixed, Table, address
from sheetprop.grading.setup import Setup, Unrecognised, setup, truth_of
from sheetprop.quantities import Grad, Input, LearningRate, Param, Quantity, Target
from sheetprop.reference import evaluate

TOLERANCE = 1e-9  # relative, on a scale of at least FLOOR
FLOOR = 1e-6


@dataclass(frozen=True)
class Finding:
    """What one quantity column of a table holds."""

    quantity: str
    status: str  # "ok", "wrong" (its own mistake), "follows" (wrong because a cell it reads is), "not done" (blank)
    cell: str | None = None  # the first wrong cell, sheet!A1
    iteration: int | None = None
    holds: object = None
    belongs: float | None = None
    why: str = ""  # the diagnosis, or what it follows from

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def mistake(self) -> str:
        """The kind of mistake, the same words for every column and table it is found in (for counting)."""
        if self.status != "wrong":
            return ""
        why = self.why.split(";")[0]
        why = re.sub(r" \(.*?\)", "", why.removeprefix(self.quantity + " ").split(":")[0])
        return re.sub(r"is updated with η = \S+ where η = \S+ belongs", "is updated with another η", why)


@dataclass
class TableGrade:
    """One table's grade: its setup as read from its cells, and a finding per quantity column."""

    where: str
    iterations: int
    loss: str = ""
    lr: float | None = None
    notes: list[str] = field(default_factory=list)  # how the setup was read, and any assumption made
    findings: list[Finding] = field(default_factory=list)
    mistakes: list[str] = field(default_factory=list)  # the table's own, beyond its columns (a mislabelled η)
    unrecognised: str | None = None  # why it is not a network this grader knows

    @property
    def ok(self) -> bool:
        return self.unrecognised is None and not self.mistakes and all(f.ok for f in self.findings)

    @property
    def first(self) -> Finding | None:
        """The first mistake of its own (by iteration, then column order)."""
        wrong = [f for f in self.findings if f.status == "wrong"]
        return min(wrong, key=lambda f: f.iteration) if wrong else None


def close(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        scale = np.maximum(np.maximum(np.abs(got), np.abs(want)), FLOOR)
        return np.isfinite(got) & np.isfinite(want) & (np.abs(got - want) <= TOLERANCE * scale)


# -- the setup ----------------------------------------------------------------------------------------------
def _forward(q: Quantity) -> bool:
    return q.part == "forward" or isinstance(q, Param)


def _before_hidden(q: Quantity) -> bool:
    """The forward pass, the loss and the output layer's backward pass (the 2-2-2 network's layer 2)."""
    return _forward(q) or q.part == "loss" or isinstance(q, LossSlope) or (q.part == "delta" and getattr(q, "l", 1) == 2)


# How far back a student's formula may reach past the student's own columns: it may read any of them, or
# bypass the hidden layer's backward columns (a gradient written out from the output δ), or everything but
# the forward pass (a gradient written out in full).
LEVELS: tuple[Callable[[Quantity], bool], ...] = (lambda q: True, _before_hidden, _forward)


@dataclass(frozen=True)
class _After(Quantity):
    """A weight after this row's update, read where the weight before it belongs (a usual mistake)."""

    param: Param


class _NoParentheses(Style):
    def grouped_sum(self, terms):
        return self.sum(terms)


_PLAIN = _NoParentheses(text=False, mul="*", plus="+", minus="-")


@dataclass
class _Judge:
    table: Table
    setup: Setup
    found: list[Fixed]

    def __post_init__(self) -> None:
        net, table = self.setup.net, self.table
        self.columns: dict[Quantity, str] = {}
        for key in table.cells:
            q = self.setup.keyed.get(key)
            if q is not None and not isinstance(q, (Input, Target, LearningRate)):
                self.columns[q] = key
        self.student = {q: np.array([np.nan if v is None else v for v in table.values(k)]) for q, k in
                        self.columns.items()}
        rows = table.iterations  # each row's parameters: its weights, and the biases as given
        self.params = np.column_stack([self.student[p] if p in self.student else np.full(rows, net.initial(p))
                                       for p in net.params])
        self.trace = evaluate(net, self.params)
        self.notes: list[str] = []
        self._resolve_ambiguous()
        self._read_unnamed()

    def _resolve_ambiguous(self) -> None:
        """A header such as "h1" is the weighted sum or the activation: the one its first value matches (the
        weighted sum when neither does)."""
        for key, options in self.table.ambiguous.items():
            taken = self.setup.keyed[key]
            column = self.student.pop(taken)
            del self.columns[taken]
            candidates = [self.setup.keyed[o] for o in options if self.setup.keyed[o] not in self.columns]
            best = min(candidates, key=lambda q: abs(column[0] - self.truth(q)[0]))
            self.columns[best], self.student[best] = key, column

    def _read_unnamed(self) -> None:
        """A column whose header names no quantity is the one quantity its first values match, if exactly one
        does (it is then checked as that one); otherwise it is left alone."""
        candidates = [q for q in relations.quantities(self.setup.net) if q not in self.columns]
        for name, cells in self.table.unnamed.items():
            values = np.array([np.nan if v is None else v for v in (self.table.sheet.number(c) for c in cells)])
            rows = min(2, len(values))
            matches = [q for q in candidates if close(values[:rows], self.truth(q)[:rows]).all()]
            if len(matches) == 1:
                q = matches[0]
                self.table.cells[name] = cells
                self.setup.keyed[name] = q
                self.columns[q], self.student[q] = name, values
                candidates.remove(q)
                self.notes.append(f"{name!r} read as {self.setup.net.label(q)} from its values")

    # values ---------------------------------------------------------------------------------------------
    def truth(self, q: Quantity) -> np.ndarray:
        return truth_of(self.setup.net, q, self.trace, self.params, self.setup.lr)

    def inputs(self, q: Quantity) -> np.ndarray | None:
        """An input of the network (a sample's value, η, a bias), the same in every row."""
        net, rows = self.setup.net, self.table.iterations
        if isinstance(q, Input):
            return np.full(rows, net.inputs[0, q.k])
        if isinstance(q, Target):
            return np.full(rows, net.targets[0, q.j])
        if isinstance(q, LearningRate):
            return np.full(rows, self.setup.lr)
        if isinstance(q, Param) and q not in self.student:  # a bias kept as given
            return np.full(rows, net.initial(q))
        return None

    def given(self, q: Quantity, swap: dict[Quantity, Quantity] | None = None, style: Style | None = None,
              way: int = 0, root: bool = True, leaves: Callable[[Quantity], bool] = LEVELS[0]) -> np.ndarray:
        """``q`` computed by its derivation ``way`` from the student's cells where they hold what it reads
        (those ``leaves`` allows; for the others, their own formulas written in, as a student writes a formula
        out), with ``swap`` read in place of what it maps and the formulas written in ``style`` (whose sums,
        without parentheses, bind as a formula missing them does)."""
        swap = swap or {}
        fixed = self.inputs(q)
        if fixed is not None:
            return fixed
        if not root and q in self.student and leaves(q):
            return self.student[q]
        if isinstance(q, Param):  # a weight after the first row: the row before's, moved by its gradient
            prev = self.student[q]
            if way == 1 and Updated(q) in self.student:
                return np.concatenate([prev[:1], self.student[Updated(q)][:-1]])
            g = self.given(swap.get(Grad(q), Grad(q)), swap, style, root=False, leaves=leaves)
            return np.concatenate([prev[:1], prev[:-1] - self.setup.lr * g[:-1]])
        read: dict[str, np.ndarray] = {}
        wrap = "{}" if isinstance(style, _NoParentheses) else "({})"

        def text(r: Quantity, way: int = 0) -> str:
            def ref(s: Quantity) -> str:
                s = swap.get(s, s)
                if isinstance(s, _After):  # a weight after this row's update, as the student's cells have it
                    name = f"v{len(read)}"
                    read[name] = self.after(s.param)
                    return name
                if isinstance(s, Param) or self.inputs(s) is not None or (s in self.student and leaves(s)):
                    name = f"v{len(read)}"
                    read[name] = self.given(s, swap, style, root=False, leaves=leaves)
                    return name
                return wrap.format(text(s))

            ways = derivations(self.setup.net, r)
            if style is not None and way == 0:
                return r.formula(self.setup.net, ref, style)
            return ways[min(way, len(ways) - 1)](ref)

        return formulas.evaluate(text(q, way), read)

    def after(self, p: Param) -> np.ndarray:
        """The weight p after each row's update: its updated column, the next row's, or computed."""
        if Updated(p) in self.student:
            return self.student[Updated(p)]
        nxt = np.append(self.student[p][1:], np.nan)
        computed = self.student[p] - self.setup.lr * self.given(Grad(p), root=False)
        return np.where(np.isnan(nxt), computed, nxt)

    def ways(self, q: Quantity) -> int:
        return 2 if isinstance(q, Param) else len(derivations(self.setup.net, q))

    # judging -------------------------------------------------------------------------------------------
    def order(self) -> list[Quantity]:
        order = relations.quantities(self.setup.net)
        return [q for q in order if q in self.columns]

    def grade(self) -> list[Finding]:
        first_wrong: dict[Quantity, int] = {}
        # a row whose weights are not all numbers (not written yet) has no reference: it is not judged
        defined = np.isfinite(self.params).all(axis=1)
        for q in self.order():
            right = close(self.student[q], self.truth(q))
            if isinstance(q, Param):
                right[0] = True  # the initial values are the student's to choose
                right[1:] |= ~defined[:-1]
            else:
                right |= ~defined
            if not right.all():
                first_wrong[q] = int(np.argmin(right))
        findings = []
        for q in self.order():
            if q in first_wrong:
                findings.append(self._wrong(q, first_wrong[q], first_wrong))
            else:
                findings.append(self._constant_column(q) or Finding(self.columns[q], "ok"))
        return swapped(findings)

    def _cell(self, q: Quantity, k: int) -> str:
        return f"{self.table.sheet.name}!{address(self.table.cells[self.columns[q]][k])}"

    def _wrong(self, q: Quantity, k: int, first_wrong: dict[Quantity, int]) -> Finding:
        got, want = self.student[q][k], self.truth(q)[k]
        cell_at = self.table.cells[self.columns[q]][k]
        cell = self.table.sheet.cells.get(cell_at)
        holds = None if cell is None else cell.value
        base = dict(quantity=self.columns[q], cell=self._cell(q, k), iteration=k, holds=holds, belongs=float(want))
        if cell is None or holds is None or holds == "":
            blank = sum(self.table.sheet.cells.get(at) is None for at in self.table.cells[self.columns[q]][k:])
            return Finding(status="not done", why=f"not written yet ({blank} of its cells blank from here)", **base)
        if not isinstance(holds, (int, float)) or isinstance(holds, bool):
            return Finding(status="wrong", why=f"{holds!r}, not a number", **base)
        if cell.formula is None and self._has_formulas(q, k):
            return Finding(status="wrong", why="a constant where a formula belongs", **base)
        given = [self.given(q, way=w)[k] for w in range(self.ways(q))]
        follows = [g for g in given if close(np.array([got]), np.array([g]))[0]]
        if follows or all(np.isnan(given)):  # right from the cells it reads, or it reads a blank one
            upstream = self._upstream(q, k, first_wrong)
            if upstream is not None:  # a cell that reads a blank one is not done either, not wrong
                status = "not done" if upstream.endswith("not written yet)") else "follows"
                return Finding(status=status, why=f"follows from {upstream}", **base)
        return Finding(status="wrong", why=self.diagnose(q, k), **base)

    def _has_formulas(self, q: Quantity, k: int) -> bool:
        cells = [self.table.sheet.cells.get(at) for at in self.table.cells[self.columns[q]]]
        start = 1 if isinstance(q, Param) else 0
        return any(c is not None and c.formula is not None for i, c in enumerate(cells) if i >= start and i != k)

    def _constant_column(self, q: Quantity) -> Finding | None:
        """A right column of typed values where formulas belong (values pasted over the formulas)."""
        cells = [self.table.sheet.cells.get(at) for at in self.table.cells[self.columns[q]]]
        start = 1 if isinstance(q, Param) else 0
        typed = [i for i, c in enumerate(cells) if i >= start and c is not None and c.formula is None]
        if not typed or len(typed) < len(cells) - start:
            return None
        k = typed[0]
        return Finding(self.columns[q], "wrong", self._cell(q, k), k, cells[k].value, float(self.truth(q)[k]),
                       "values where formulas belong (right, but they do not recompute)")

    def _upstream(self, q: Quantity, k: int, first_wrong: dict[Quantity, int]) -> str | None:
        """The earliest wrong column that ``q`` reads, directly or through what it computes itself."""
        net, seen, stack, found = self.setup.net, set(), [q], []
        while stack:
            r = stack.pop()
            if r in seen:
                continue
            seen.add(r)
            reads = relations.reads(net, r) if not isinstance(r, Param) else {Grad(r), Updated(r)}
            for s in reads:
                if s in first_wrong and s != q:
                    found.append((first_wrong[s], self.order().index(s), s))
                elif s not in self.student or s == q:
                    stack.append(s)
            if isinstance(r, Param) and r in first_wrong and r != q and first_wrong[r] <= k:
                found.append((first_wrong[r], self.order().index(r), r))
        if isinstance(q, Param) and q in first_wrong and first_wrong[q] < k:
            found.append((first_wrong[q], self.order().index(q), q))
        found = [f for f in found if f[0] <= k]
        if not found:
            return None
        iteration, _, r = min(found, key=lambda f: (f[0], f[1]))
        blank = self.table.sheet.cells.get(self.table.cells[self.columns[r]][iteration]) is None
        return f"{self.columns[r]} (iteration {iteration}{', not written yet' if blank else ''})"

    # diagnosing -----------------------------------------------------------------------------------------
    def diagnose(self, q: Quantity, k: int) -> str:
        """Why the cell is wrong: what its formula reads that the chain rule does not, or the usual mistake its
        value matches."""
        from_formula = self._formula_diagnosis(q, k)
        from_values = self._value_diagnosis(q, k)
        if from_formula and from_values and from_formula != from_values:
            return f"{from_formula}; {from_values}"
        return from_formula or from_values or "matches none of the usual mistakes"

    def _value_diagnosis(self, q: Quantity, k: int) -> str | None:
        got = np.array([self.student[q][k]])
        name = self.columns[q]

        def explains(values: np.ndarray) -> bool:
            return bool(close(got, values[k:k + 1])[0])

        label = self.setup.net.label
        everything = relations.quantities(self.setup.net) + [Input(0), Input(1), Target(0), Target(1)]
        for leaves in LEVELS:
            visited = self._visited(q, leaves)
            for r in visited:
                for other in relations.siblings(self.setup.net, r, everything):
                    if explains(self.given(q, {r: other}, leaves=leaves)):
                        return f"{name} uses {label(other)} where {label(r)} belongs"
            for r, other in itertools.combinations(visited, 2):
                if other in relations.siblings(self.setup.net, r, visited) and explains(
                        self.given(q, {r: other, other: r}, leaves=leaves)):
                    return f"{label(r)} and {label(other)} swapped"
            if explains(self.given(q, style=_PLAIN, leaves=leaves)):
                return f"{name} is missing a pair of parentheses (a sum multiplied term by term)"
            later = {r: _After(r) for r in visited if isinstance(r, Param) and r.k is not None}
            if later and not isinstance(q, (Param, Updated)) and explains(self.given(q, later, leaves=leaves)):
                return (f"{name} uses the weights after this iteration's update "
                        f"({', '.join(label(r) for r in later)}) where the weights before it belong")
        given = self.given(q)
        for factor, words in ((2.0, "twice"), (0.5, "half"), (-1.0, "the negative of")):
            if explains(factor * given):
                return f"{name} is {words} what belongs"
        if isinstance(q, (Param, Updated)):
            p = q if isinstance(q, Param) else q.param
            g = self.given(Grad(p), root=False)
            before = self.student[p]
            at = k - 1 if isinstance(q, Param) else k
            if at >= 0 and abs(g[at]) > 0:
                used = (before[at] - got[0]) / g[at]
                if np.isfinite(used) and not math.isclose(used, self.setup.lr, rel_tol=1e-6):
                    return f"{name} is updated with η = {used + 0.0:.6g} where η = {self.setup.lr:g} belongs"
        return None

    def _visited(self, q: Quantity, leaves: Callable[[Quantity], bool]) -> list[Quantity]:
        """What the derivation of ``q`` reads, down to the student's own columns that ``leaves`` allows."""
        out: list[Quantity] = []

        def walk(r: Quantity) -> None:
            reads = [Grad(r)] if isinstance(r, Param) else sorted(relations.reads(self.setup.net, r), key=repr)
            for s in reads:
                if s in out or s == q or self.inputs(s) is not None and isinstance(s, LearningRate):
                    continue
                out.append(s)
                if not (s in self.student and leaves(s)) and self.inputs(s) is None:
                    walk(s)

        walk(q)
        return out

    def _formula_diagnosis(self, q: Quantity, k: int) -> str | None:
        """What the wrong cell's formula reads that the chain rule does not (or a reference that moved)."""
        at = self.table.cells[self.columns[q]][k]
        cell = self.table.sheet.cells.get(at)
        if cell is None or cell.formula is None:
            return None
        reads = self._reads(cell.formula, k)
        unknown = [ref for ref, key in reads if key is None]
        if unknown and isinstance(q, (Param, Updated)):
            first = self._first_formula_reads(q)
            if first is not None and first != {ref for ref, _ in reads}:
                return (f"η is read from a cell that moves down the rows: iteration {k} reads "
                        f"{', '.join(unknown)}, which {self._holds(unknown[0])}")
        keys = {key for _, key in reads if key is not None}
        if not keys:
            return None
        expected = [self._expected(q, w, leaves) for w in range(self.ways(q)) for leaves in LEVELS]
        best = min(expected, key=lambda e: len(e ^ keys))
        extra, missing = sorted(keys - best), sorted(best - keys)
        if len(extra) == 1 and len(missing) == 1:
            return f"{self.columns[q]} uses {extra[0]} where {missing[0]} belongs"
        if unknown:
            return f"{self.columns[q]} reads {', '.join(unknown)}, which {self._holds(unknown[0])}"
        return None

    def _holds(self, ref: str) -> str:
        col, row = coordinate_from_string(ref.replace("$", ""))
        cell = self.table.sheet.cells.get((row - 1, column_index_from_string(col) - 1))
        return "is empty" if cell is None or cell.value is None else f"holds {cell.value!r}"

    def _first_formula_reads(self, q: Quantity) -> set[str] | None:
        cells = self.table.cells[self.columns[q]]
        start = 1 if isinstance(q, Param) else 0
        for k in range(start, len(cells)):
            cell = self.table.sheet.cells.get(cells[k])
            if cell is not None and cell.formula is not None:
                return {ref for ref, _ in self._reads(cell.formula, k)}
        return None

    def _expected(self, q: Quantity, way: int, leaves: Callable[[Quantity], bool]) -> set[str]:
        """The keys a derivation of ``q`` reads, each as the student's sheet would hold it: the student's columns
        that ``leaves`` allows, and what the others are computed from (by their own formulas) in their place."""
        label, out = self.setup.net.label, set()

        def walk(r: Quantity, way: int = 0) -> None:
            if isinstance(r, Param):  # a weight after the first row: the row before's, and its gradient
                reads = [r, Updated(r)] if way == 1 and Updated(r) in self.student else [r, Grad(r)]
            else:
                reads = []
                ways = derivations(self.setup.net, r)
                try:
                    ways[min(way, len(ways) - 1)](lambda s: reads.append(s) or "0")
                except TypeError:  # an input: it reads nothing
                    return
            for s in reads:
                key = self.columns.get(s) or ("η" if isinstance(s, LearningRate) else label(s))
                if (s in self.student and leaves(s)) or self.inputs(s) is not None or s == r:
                    out.add(key)
                else:
                    walk(s)

        walk(q, way)
        return out

    def _reads(self, formula: str, k: int) -> list[tuple[str, str | None]]:
        """Each cell the formula reads, and the key it holds there (None: no quantity of the table)."""
        where = {}
        for key, cells in self.table.cells.items():
            for at in cells:
                where[at] = key
        fixed = {f.at: f.key for f in self.found if f.sheet == self.table.sheet.name}
        names = {f.name: f.key for f in self.found if f.name is not None}
        out = []
        for token in Tokenizer("=" + formula).items:
            if token.type != "OPERAND" or token.subtype != "RANGE":
                continue
            ref = token.value.split("!")[-1]
            if ref in names:
                out.append((ref, names[ref]))
                continue
            try:
                col, row = coordinate_from_string(ref.replace("$", ""))
            except ValueError:
                out.append((ref, None))
                continue
            at = (row - 1, column_index_from_string(col) - 1)
            key = where.get(at) or fixed.get(at)
            out.append((ref, self.setup.keyed.get(key) and key if key else None))
        return out


def swapped(findings: list[Finding]) -> list[Finding]:
    """Two weights mixed up both ways across the columns (one uses w6 where w7 belongs, another w7 where w6
    does) are named as swapped."""
    uses = re.compile(r"uses (w\d) where (w\d) belongs")
    pairs = {uses.search(f.why).groups() for f in findings if f.status == "wrong" and uses.search(f.why)}
    out = []
    for f in findings:
        found = uses.search(f.why) if f.status == "wrong" else None
        if found and found.groups()[::-1] in pairs:
            a, b = sorted(found.groups())
            f = dataclasses.replace(f, why=f"{a} and {b} swapped: {f.why}")
        out.append(f)
    return out


def grade_table(table: Table, found: list[Fixed]) -> TableGrade:
    result = TableGrade(table.where, table.iterations)
    if table.unrecognised:
        result.unrecognised = table.unrecognised
        return result
    try:
        s = setup(table, found)
    except Unrecognised as exc:
        result.unrecognised = str(exc)
        return result
    result.loss, result.lr, result.notes, result.mistakes = s.net.loss, s.lr, s.notes, s.mistakes
    judge = _Judge(table, s, found)
    result.findings = judge.grade()
    result.notes += judge.notes
    return result

