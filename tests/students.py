"""Workbooks written the way students write them by hand, correct or with one of the usual mistakes: the
corpus `sheetprop grade` is tested on. Nothing here comes from sheetprop's writer: each layout places its
own cells and writes its own formulas, as a student would type and fill them down.

A layout is a :class:`Student`: where the table starts, which columns it has and how it spells them, where
the inputs, targets and η live, rows or columns per iteration, the loss with or without ½. A mistake is a
name from :data:`MISTAKES`, applied while the formulas are written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
from openpyxl.utils import get_column_letter

CLASSIC = {"i1": 0.05, "i2": 0.10, "t1": 0.01, "t2": 0.99,
           "w": [0.15, 0.20, 0.25, 0.30, 0.40, 0.45, 0.50, 0.55]}
OTHER = {"i1": 0.05, "i2": 0.10, "t1": 0.5, "t2": 0.5, "w": [0.3, 0.5, -0.2, 0.7, 0.1, -0.6, 0.3, -0.9]}

MISTAKES = {
    "correct": "",
    "a_h1 for a_h2": "∂E/∂w3 and ∂E/∂w4 use a_h1·(1−a_h1) where a_h2·(1−a_h2) belongs",
    "parentheses": "the hidden gradients miss a pair of parentheses",
    "w6 w7 swapped": "w6 and w7 swapped in the hidden-layer gradients",
    "w2 from a_h2": "∂E/∂w2 built from a_h2",
    "w3 w4 with w1 w2 gradients": "w3 and w4 updated with the w1 and w2 gradients",
    "drifting η": "η read through a relative reference that drifts down the rows",
    "constants": "h1 overwritten with constants after the first row",
    "pasted values": "values pasted instead of formulas",
    "mislabelled η": "a sheet labelled with one η and computed with another",
    "updated weights": "the hidden δ computed with w5..w8 after their update",
}


@dataclass
class Student:
    """One way of laying out the table (every field a choice students make)."""

    name: str
    spell: dict[str, str]  # key → header as written; the keys present are the table's columns
    across: bool = False  # an iteration per column
    inputs: str = "fixed"  # "fixed" (labelled cells) or "repeated" (columns in every row)
    rate: str = "cell"  # "cell" (a labelled cell), "typed" (a number in the formulas)
    half: bool = True  # E = ½(t − a)²
    biases: tuple[float, float] | None = None
    values: dict = field(default_factory=lambda: dict(CLASSIC))
    expanded: bool = False  # gradients written out in full instead of from δ columns
    tables: int = 1  # tables side by side on one sheet (one η each)
    origin: tuple[int, int] = (8, 1)  # the table's first header cell (row, column), from 1

    @property
    def keys(self) -> list[str]:
        return list(self.spell)


def _spell(*groups: tuple[str, list[str]]) -> dict[str, str]:
    out = {}
    for fmt, keys in groups:
        for k in keys:
            out[k] = fmt.format(k=k, n=k[-1], u=k.split("_")[-1])
    return out


W = [f"w{n}" for n in range(1, 9)]
G = [f"∂E/∂w{n}" for n in range(1, 9)]
FWD = ["h1", "a_h1", "h2", "a_h2", "o1", "a_o1", "o2", "a_o2"]

LAYOUTS = {
    # a sheet per η, everything labelled above the table, gradients written out in full
    "mazur rows": Student("mazur rows", {"iteration": "Iteration", **{w: w for w in W},
                                         "h1": "net_h1", "a_h1": "out_h1", "h2": "net_h2", "a_h2": "out_h2",
                                         "o1": "net_o1", "a_o1": "out_o1", "o2": "net_o2", "a_o2": "out_o2",
                                         "E1": "E_o1", "E2": "E_o2", "E_total": "E_total",
                                         **{g: f"∂E_total/∂w{g[-1]}" for g in G}}, expanded=True),
    # inputs and targets repeated in every row, factor and δ columns, the updated weights in the same row
    "repeated with factors": Student(
        "repeated with factors",
        {"i1": "i1", "i2": "i2", "t1": "t1", "t2": "t2", **{w: w for w in W}, "h1": "h1", "a_h1": "a_h1",
         "h2": "h2", "a_h2": "a_h2", "o1": "o1", "a_o1": "a_o1", "o2": "o2", "a_o2": "a_o2", "E1": "E1", "E2": "E2",
         "E_total": "Etotal", "∂E/∂a_o1": "∂E/∂out_o1", "∂a_o1/∂o1": "∂out_o1/∂net_o1", "δ_o1": "δ_o1",
         "∂E/∂a_o2": "∂E/∂out_o2", "∂a_o2/∂o2": "∂out_o2/∂net_o2", "δ_o2": "δ_o2", "δ_h1": "δ_h1", "δ_h2": "δ_h2",
         **{g: f"dEtotal_dw{g[-1]}" for g in G}, **{f"{w}+": f"{w}_new" for w in W}},
        inputs="repeated", origin=(4, 1)),
    # three tables side by side on one sheet, each with its η above it
    "side by side": Student("side by side", {**{w: w for w in W}, "h1": "h1", "a_h1": "σ(h1)", "h2": "h2",
                                             "a_h2": "σ(h2)", "o1": "o1", "a_o1": "σ(o1)", "o2": "o2",
                                             "a_o2": "σ(o2)", "E_total": "E_tot", "δ_o1": "delta_o1",
                                             "δ_o2": "delta_o2", "δ_h1": "delta_h1", "δ_h2": "delta_h2",
                                             **{g: f"dE/dw{g[-1]}" for g in G}}, tables=3, origin=(6, 1)),
    # an iteration per column, the names down column A
    "columns": Student("columns", {"iteration": "step", **{w: w for w in W}, "h1": "h1", "a_h1": "out h1",
                                   "h2": "h2", "a_h2": "out h2", "o1": "o1", "a_o1": "out o1", "o2": "o2",
                                   "a_o2": "out o2", "E_total": "E", **{g: f"dE/dw{g[-1]}" for g in G}},
                       across=True, origin=(8, 1), expanded=True),
    # Mazur's biases, other initial values, the loss without ½, η typed into the formulas
    "biases, no half, typed η": Student(
        "biases, no half, typed η", {**{w: w for w in W}, "h1": "net h1", "a_h1": "out h1", "h2": "net h2",
                                     "a_h2": "out h2", "o1": "net o1", "a_o1": "out o1", "o2": "net o2",
                                     "a_o2": "out o2", "E1": "E1", "E2": "E2", "E_total": "E total",
                                     **{g: f"∂E/∂w{g[-1]}" for g in G}},
        rate="typed", half=False, biases=(0.35, 0.60), values=dict(OTHER), expanded=True, origin=(10, 2)),
}

RATES = {"mazur rows": [0.5, 2.0], "repeated with factors": [0.5], "side by side": [0.1, 0.5, 2.0],
         "columns": [0.5], "biases, no half, typed η": [0.5]}


class Sheetwriter:
    """Cells of one table: its formulas as a student types them, row (or column) by row."""

    def __init__(self, ws, student: Student, lr: float, mistake: str, first: tuple[int, int], fixed: dict):
        self.ws, self.s, self.lr, self.mistake, self.first, self.fixed = ws, student, lr, mistake, first, fixed
        self.pos = {k: i for i, k in enumerate(student.keys)}

    def at(self, key: str, k: int, absolute: bool = False) -> str:
        """The cell of ``key`` at iteration ``k`` (the header is at iteration −1)."""
        row0, col0 = self.first
        line, pos = row0 + 1 + k, col0 + self.pos[key]
        r, c = (pos, line) if self.s.across else (line, pos)
        return f"${get_column_letter(c)}${r}" if absolute else f"{get_column_letter(c)}{r}"

    def ref(self, key: str, k: int) -> str:
        """What a formula at iteration k reads for ``key``: its column, or the labelled cell."""
        if key in self.pos and key != "iteration":
            return self.at(key, k)
        return self.fixed[key]

    def write(self, iterations: int) -> None:
        for key in self.s.keys:
            header = self.at(key, -1)
            self.ws[header] = self.s.spell[key]
        for k in range(iterations):
            for key in self.s.keys:
                self.ws[self.at(key, k)] = self.formula(key, k)

    # the formulas ----------------------------------------------------------------------------------------
    def formula(self, key: str, k: int):
        r = lambda q: self.ref(q, k)  # noqa: E731
        v, m = self.s.values, self.mistake
        if key == "iteration":
            return k
        if key in ("i1", "i2", "t1", "t2"):
            return v[key]
        if re.fullmatch(r"w\d", key):
            n = int(key[1])
            if k == 0:
                return v["w"][n - 1]
            if f"{key}+" in self.pos:
                return f"={self.ref(key + '+', k - 1)}"
            return "=" + self.update(n, k - 1)
        if key.endswith("+"):
            return "=" + self.update(int(key[1]), k)
        b1, b2 = ("+" + self.fixed["b1"], "+" + self.fixed["b2"]) if self.s.biases else ("", "")
        if key == "h1":
            if m == "constants" and k > 0:  # the first row's value typed over the formulas below it
                return v["w"][0] * v["i1"] + v["w"][1] * v["i2"] + (self.s.biases[0] if self.s.biases else 0)
            return f"={r('w1')}*{r('i1')}+{r('w2')}*{r('i2')}{b1}"
        if key == "h2":
            return f"={r('w3')}*{r('i1')}+{r('w4')}*{r('i2')}{b1}"
        if key == "o1":
            return f"={r('w5')}*{r('a_h1')}+{r('w6')}*{r('a_h2')}{b2}"
        if key == "o2":
            return f"={r('w7')}*{r('a_h1')}+{r('w8')}*{r('a_h2')}{b2}"
        if key.startswith("a_"):
            return f"=1/(1+EXP(-{r(key[2:])}))"
        if key in ("E1", "E2"):
            j = key[1]
            return f"={'0.5*' if self.s.half else ''}({r('t' + j)}-{r('a_o' + j)})^2"
        if key == "E_total":
            if "E1" in self.pos:
                return f"={r('E1')}+{r('E2')}"
            half = "0.5*" if self.s.half else ""
            return f"={half}(({r('t1')}-{r('a_o1')})^2+({r('t2')}-{r('a_o2')})^2)"
        if key.startswith("∂E/∂a_o"):
            j = key[-1]
            return f"={'' if self.s.half else '2*'}({r('a_o' + j)}-{r('t' + j)})"
        if key.startswith("∂a_o"):
            j = key[4]
            return f"={r('a_o' + j)}*(1-{r('a_o' + j)})"
        if key in ("δ_o1", "δ_o2"):
            return "=" + self.delta_out(int(key[-1]), k)
        if key in ("δ_h1", "δ_h2"):
            return "=" + self.delta_hidden(int(key[-1]), k, for_weight=None)
        if key.startswith("∂E/∂w"):
            return "=" + self.gradient(int(key[-1]), k)
        raise KeyError(key)

    def delta_out(self, j: int, k: int) -> str:
        r = lambda q: self.ref(q, k)  # noqa: E731
        if f"δ_o{j}" in self.pos and not self.expanding:
            return r(f"δ_o{j}")
        if f"∂E/∂a_o{j}" in self.pos:
            return f"{r(f'∂E/∂a_o{j}')}*{r(f'∂a_o{j}/∂o{j}')}"
        two = "" if self.s.half else "2*"
        return f"{two}({r(f'a_o{j}')}-{r(f't{j}')})*{r(f'a_o{j}')}*(1-{r(f'a_o{j}')})"

    expanding = True  # while writing a δ column itself, its own cell is not read

    def delta_hidden(self, j: int, k: int, for_weight: int | None) -> str:
        r = lambda q: self.ref(q, k)  # noqa: E731
        m = self.mistake
        self.expanding = "δ_o1" not in self.pos or self.s.expanded
        d1, d2 = self.delta_out(1, k), self.delta_out(2, k)
        self.expanding = True
        d1 = d1 if self.ref_like(d1) else f"({d1})"
        d2 = d2 if self.ref_like(d2) else f"({d2})"
        w = {1: ("w5", "w7"), 2: ("w6", "w8")}[j]
        if m == "w6 w7 swapped":
            w = {1: ("w5", "w6"), 2: ("w7", "w8")}[j]
        if m == "updated weights":  # the output weights after their update: the w+ column, or the next row's
            after = (lambda name: self.ref(name + "+", k)) if "w5+" in self.pos else (lambda name: self.ref(name, k + 1))
            return f"({d1}*{after(w[0])}+{d2}*{after(w[1])})*{r(f'a_h{j}')}*(1-{r(f'a_h{j}')})"
        unit = f"a_h{j}"
        if (m == "a_h1 for a_h2" and for_weight in (3, 4)) or (m == "w2 from a_h2" and for_weight == 2):
            unit = "a_h1" if j == 2 else "a_h2"
        local = f"{r(unit)}*(1-{r(unit)})"
        if m == "parentheses":
            return f"{d1}*{r(w[0])}+{d2}*{r(w[1])}*{local}"
        return f"({d1}*{r(w[0])}+{d2}*{r(w[1])})*{local}"

    @staticmethod
    def ref_like(text: str) -> bool:
        return re.fullmatch(r"\$?[A-Z]+\$?\d+", text) is not None

    def gradient(self, n: int, k: int) -> str:
        r = lambda q: self.ref(q, k)  # noqa: E731
        if n >= 5:
            j, src = (1, "a_h1") if n in (5, 6) else (2, "a_h2")
            src = "a_h1" if n in (5, 7) else "a_h2"
            j = 1 if n in (5, 6) else 2
            self.expanding = "δ_o1" not in self.pos or self.s.expanded
            d = self.delta_out(j, k)
            self.expanding = True
            return f"{d if self.ref_like(d) else '(' + d + ')'}*{r(src)}"
        j, src = (1, "i1" if n == 1 else "i2") if n in (1, 2) else (2, "i1" if n == 3 else "i2")
        wrong_unit = (self.mistake == "a_h1 for a_h2" and n in (3, 4)) or (self.mistake == "w2 from a_h2" and n == 2)
        if f"δ_h{j}" in self.pos and not self.s.expanded and not wrong_unit and self.mistake != "parentheses":
            return f"{r(f'δ_h{j}')}*{r(src)}"
        body = self.delta_hidden(j, k, for_weight=n)
        if self.mistake == "parentheses":
            return f"{body}*{r(src)}"
        return f"({body})*{r(src)}"

    def update(self, n: int, k: int) -> str:
        """w_n after iteration k's step (the formula sits in iteration k + 1's row, or in w_n+ of row k)."""
        g = n
        if self.mistake == "w3 w4 with w1 w2 gradients" and n in (3, 4):
            g = n - 2
        if self.s.rate == "typed":
            lr = f"{0.1 if self.mistake == 'mislabelled η' else self.lr:g}"
        elif self.mistake == "drifting η" and k >= 1:
            lr = self.drift(k)
        elif self.mistake == "mislabelled η":
            lr = "0.1"
        else:
            lr = self.fixed["η"]
        return f"{self.ref(f'w{n}', k)}-{lr}*{self.ref(f'∂E/∂w{g}', k)}"

    def drift(self, k: int) -> str:
        """η's cell as a relative reference filled down: it moves one row (column) per iteration."""
        col, row = re.fullmatch(r"\$?([A-Z]+)\$?(\d+)", self.fixed["η"]).groups()
        if self.s.across:
            return f"{get_column_letter(openpyxl.utils.column_index_from_string(col) + k)}{row}"
        return f"{col}{int(row) + k}"


def write(path: Path, student: Student, mistake: str = "correct", iterations: int = 6) -> Path:
    """One student's workbook of ``student``'s layout with ``mistake`` (see :data:`MISTAKES`), formulas only
    (no cached values: recalculate it, or let `grade` do so)."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    rates = RATES[student.name]
    sheets = [rates] if student.tables > 1 else [[lr] for lr in rates]
    for group in sheets:
        title = f"eta={group[0]:g}" if student.tables == 1 else "Training"
        if student.rate == "typed":
            title = f"lr {group[0]:g}"
        ws = wb.create_sheet(title)
        ws["A1"] = "Backpropagation by hand: the 2-2-2 network, step by step"
        for t, lr in enumerate(group):
            row0, col0 = student.origin
            if student.tables > 1:
                col0 += t * (len(student.keys) + 2)
            fixed = {}
            place = (2, col0)  # labelled cells above the table, a label and its value to its right
            labels = []
            if student.inputs == "fixed":
                labels += [(k, student.values[k]) for k in ("i1", "i2", "t1", "t2")]
            if student.biases:
                labels += [("b1", student.biases[0]), ("b2", student.biases[1])]
            if student.rate == "cell":
                labels.append(("η", lr))
            for i, (k, value) in enumerate(labels):
                r, c = place[0] + i // 3, place[1] + 2 * (i % 3)
                ws.cell(r, c, k if k != "η" else "learning rate η")
                ws.cell(r, c + 1, value)
                fixed[k] = f"${get_column_letter(c + 1)}${r}"
            if student.inputs == "repeated":
                fixed.update({k: None for k in ("i1", "i2", "t1", "t2")})
            Sheetwriter(ws, student, lr, mistake, (row0, col0), fixed).write(iterations)
    wb.save(path)
    return path


def paste_values(formulas: Path, computed: Path, out: Path) -> Path:
    """``formulas``' table with every formula replaced by the value ``computed`` (its recalculated copy) holds:
    values pasted over formulas."""
    wb = openpyxl.load_workbook(formulas)
    values = openpyxl.load_workbook(computed, data_only=True)
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    cell.value = values[ws.title][cell.coordinate].value
    wb.save(out)
    return out
