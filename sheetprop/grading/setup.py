"""A hand-built table's setup read from its own cells: the 2-2-2 network (initial weights, inputs, targets,
biases, the loss with or without ½) and η, and the reference's value of every quantity at each row's
weights."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sheetprop import template
import sheetprop.grading.relations as relations
from sheetprop.grading.relations import Updated, compute, derivations
from sheetprop.grading.tables import Fixed, Table, address, labelled_rate
from sheetprop.network import Network
from sheetprop.quantities import Grad, Input, LearningRate, Param, Quantity, Target
from sheetprop.reference import evaluate

CLASSIC = {"i1": 0.05, "i2": 0.10, "t1": 0.01, "t2": 0.99}
LOSSES = {"l2": "½·(t − a)², with the ½", "sse": "(t − a)², without the ½"}


@dataclass
class Setup:
    net: Network
    lr: float
    keyed: dict[str, Quantity]  # a table key → its quantity
    notes: list[str]
    mistakes: list[str]


def _nearest(found: list[Fixed], key: str, table: Table) -> Fixed | None:
    """The labelled value of ``key`` nearest the table's header: on its sheet, else on any other."""
    anchor = min(table.header.values())
    candidates = [f for f in found if f.key == key]
    return min(candidates, key=lambda f: (f.sheet != table.sheet.name, f.name is None, abs(f.at[0] - anchor[0]) +
                                          abs(f.at[1] - anchor[1])), default=None)


def _first(table: Table, key: str) -> float | None:
    if key not in table.cells:
        return None
    values = table.values(key)
    return values[0]


def setup(table: Table, found: list[Fixed]) -> Setup:
    """The network, η and key → quantity map of a table, from its own cells (and labels around it)."""
    notes, mistakes = [], []
    weights = [_first(table, f"w{n}") for n in range(1, 9)]
    if any(w is None for w in weights):
        missing = [f"w{n}" for n, w in enumerate(weights, start=1) if w is None]
        raise Unrecognised(f"no column of {', '.join(missing)}: not the 2-2-2 network w1..w8")

    def value(key: str) -> tuple[float | None, str]:
        column = _first(table, key)
        if column is not None:
            return column, "its column"
        near = _nearest(found, key, table)
        return (near.value, f"{near.sheet}!{address(near.at)}") if near else (None, "")

    given = {k: value(k) for k in ("i1", "i2", "t1", "t2", "b1", "b2")}
    inputs = [given["i1"][0], given["i2"][0]]
    units = [_first(table, f"b_{u}") for u in ("h1", "h2", "o1", "o2")]
    if all(b is not None for b in units):  # a bias per unit, trained with the weights
        bias = [units[:2], units[2:]]
    else:  # a bias per layer, shared by its units and kept as given (Mazur's b1 and b2), or none
        bias = [None if b is None else [b, b] for b in (given["b1"][0], given["b2"][0])]
    if inputs[0] is None or inputs[1] is None:
        solved = _solve_inputs(table, weights, bias)
        if solved is not None:
            inputs = solved
            notes.append(f"inputs i1 = {inputs[0]:.6g}, i2 = {inputs[1]:.6g} solved from h1 and h2 (no labelled cell)")
    targets = [given["t1"][0], given["t2"][0]]
    for key, default in CLASSIC.items():
        i = int(key[1]) - 1
        holder = inputs if key[0] == "i" else targets
        if holder[i] is None:
            holder[i] = default
            notes.append(f"{key} not found: the classic {default:g} assumed")
    loss = _loss(table, weights, inputs, targets, bias)
    net = network(weights, inputs, targets, bias, loss)
    lr, lr_notes, lr_mistakes = _rate(table, found, net)
    notes += lr_notes
    mistakes += lr_mistakes
    keyed = {net.label(q): q for q in relations.quantities(net)}
    keyed.update({"η": LearningRate(), "i1": Input(0), "i2": Input(1), "t1": Target(0), "t2": Target(1)})
    return Setup(net, lr, keyed, [f"loss {LOSSES[loss]}"] + notes, mistakes)


class Unrecognised(ValueError):
    """A table of a network the grader does not know."""


def network(weights, inputs, targets, bias, loss: str) -> Network:
    """The 2-2-2 sigmoid network of these values (``bias``: per layer, its units' biases or None)."""
    def layer(name: str, w: list[float], b: list[float] | None) -> dict:
        out = {"name": name, "size": 2, "activation": "sigmoid", "bias": b is not None,
               "weights": [w[:2], w[2:]]}
        if b is not None:
            out["biases"] = list(b)
        return out

    return template.from_dict({
        "name": "hand-built", "naming": "classic", "loss": loss, "inputs": ["i1", "i2"], "targets": ["t1", "t2"],
        "sample": {"inputs": list(inputs), "targets": list(targets)},
        "layers": [layer("h", list(weights[:4]), bias[0]), layer("o", list(weights[4:]), bias[1])]}, "table")


def _solve_inputs(table: Table, weights, bias) -> list[float] | None:
    h = [_first(table, "h1"), _first(table, "h2")]
    if None in h or "h1" in table.ambiguous:
        return None
    b = np.zeros(2) if bias[0] is None else np.array(bias[0])
    try:
        return [float(x) for x in np.linalg.solve(np.array([weights[:2], weights[2:4]]), np.array(h) - b)]
    except np.linalg.LinAlgError:
        return None


def _loss(table: Table, weights, inputs, targets, bias) -> str:
    """l2 (with the ½) or sse (without), whichever the table's loss or gradients match."""
    for key in ("E_total", "E1", "E2", "∂E/∂w5", "∂E/∂w8", "∂E/∂w1", "δ_o1"):
        got = _first(table, key)
        if got is None:
            continue
        off = {}
        for loss in LOSSES:
            net = network(weights, inputs, targets, bias, loss)
            q = {net.label(q): q for q in relations.quantities(net)}.get(key)
            trace = evaluate(net, np.array([[net.initial(p) for p in net.params]]))
            want = truth_of(net, q, trace, None)[0] if q is not None else np.nan
            off[loss] = abs(got - want) / max(abs(want), 1e-300)
        return min(off, key=off.get)
    return "l2"


def _rate(table: Table, found: list[Fixed], net: Network) -> tuple[float, list[str], list[str]]:
    """η: a column, a labelled cell, the sheet's name or title, or what the weights' updates used."""
    notes, mistakes = [], []
    column = _first(table, "η")
    near = _nearest(found, "η", table)
    named = labelled_rate(table.sheet.name)
    used = _used_rate(table, net)
    if column is not None:
        lr, source = column, "its η column"
    elif near is not None:
        lr, source = near.value, f"{near.sheet}!{address(near.at)}"
    elif named is not None:
        lr, source = named, f"the sheet's name {table.sheet.name!r}"
    elif used is not None:
        lr, source = used, "the weights' first update (no η cell found)"
    else:
        raise Unrecognised("no η found: no labelled cell, and the weights never change")
    notes.append(f"η = {lr:g} from {source}")
    given = [(lr, source)] if source != "its η column" else []
    if named is not None and source != f"the sheet's name {table.sheet.name!r}":
        given.append((named, f"the sheet's name {table.sheet.name!r}"))
    for value, where in given:
        computed = used if used is not None else lr
        if not math.isclose(value, computed, rel_tol=1e-6):
            mistakes.append(f"η = {value:g} is given ({where}), but the weights are updated with η = {computed:g}")
            break
    return lr, notes, mistakes


def _used_rate(table: Table, net: Network) -> float | None:
    """The η of the first update: (w − w after it) / ∂E/∂w over the weights (the median), each gradient from
    its column or, without one, the reference's at the first row."""
    trace = evaluate(net, np.array([[net.initial(p) for p in net.params]]))
    rates = []
    weights = [p for p in net.params if p.k is not None]
    for n, p in enumerate(weights, start=1):
        w = table.values(f"w{n}")[:2]
        if f"w{n}+" in table.cells:  # the weight after the update, in the same row
            w = [w[0], table.values(f"w{n}+")[0]]
        if len(w) < 2 or w[0] is None or w[1] is None:
            continue
        g = _first(table, f"∂E/∂w{n}")
        g = float(trace.values(Grad(p))[0]) if g is None else g
        if abs(g) > 1e-12:
            rates.append((w[0] - w[1]) / g)
    if not rates:
        return None
    rate = float(np.median(rates))
    return rate if rate != 0 else None


# -- judging ------------------------------------------------------------------------------------------------
def truth_of(net: Network, q: Quantity, trace, student_params: np.ndarray | None, lr: float = 0.0) -> np.ndarray:
    """The reference's value of ``q`` at each row's weights (a weight after the first row: the row before's
    weight moved by the reference's gradient)."""
    if isinstance(q, Param):
        if student_params is None:
            return trace.values(q)
        i = net.param_index[q]
        g = trace.values(Grad(q))
        return np.concatenate([student_params[:1, i], student_params[:-1, i] - lr * g[:-1]])
    if isinstance(q, Updated):
        return trace.values(q.param) - lr * trace.values(Grad(q.param))
    try:
        return trace.values(q)
    except NotImplementedError:  # a factor of the chain rule: from the reference's values of what it reads
        return compute(derivations(net, q)[0], lambda r: truth_of(net, r, trace, None, lr))
