"""The quantities a hand-built table may hold, and how each follows from the others.

The writer's quantities (:mod:`sheetprop.quantities`) are joined by the chain rule's factors that students
often give columns of their own (∂E/∂a_o1, ∂a_o1/∂o1, ∂E/∂a_h1, ∂E_o1/∂a_h1) and by a weight after this
row's update (w5+). Each is computed from the quantities it reads by its own Excel formula, the same text
the writer writes, evaluated over numpy arrays (every iteration at once) with
:func:`sheetprop.formulas.evaluate`. Some quantities can be derived in more than one way (δ_o1 from a_o1 and t1, or from
∂E/∂a_o1 · ∂a_o1/∂o1): :func:`derivations` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Iterable

import numpy as np

from sheetprop.formulas import EXCEL, Style, evaluate, fill
from sheetprop.network import Network
from sheetprop.quantities import A, Delta, Grad, LearningRate, LossTerm, Param, Quantity, Ref, Target, Total, Z


@dataclass(frozen=True)
class LossSlope(Quantity):
    """∂E/∂a of output j."""

    part: ClassVar[str] = "delta"

    j: int

    def label(self, net: Network) -> str:
        return f"∂E/∂{A(net.depth, self.j).label(net)}"

    def formula(self, net: Network, ref: Ref, style: Style = EXCEL) -> str:
        out = net.depth
        return fill(style.pick(net.loss_fn.excel_gradient, net.loss_fn.text_gradient), a=ref(A(out, self.j)),
                    t=ref(Target(self.j)), n=str(net.size(out)))


@dataclass(frozen=True)
class Slope(Quantity):
    """∂a/∂z of one unit: its activation's derivative."""

    part: ClassVar[str] = "delta"

    l: int
    j: int

    def label(self, net: Network) -> str:
        return f"∂{A(self.l, self.j).label(net)}/∂{Z(self.l, self.j).label(net)}"

    def formula(self, net: Network, ref: Ref, style: Style = EXCEL) -> str:
        act = net.activation_of(self.l)
        return fill(style.pick(act.excel_derivative, act.text_derivative), z=ref(Z(self.l, self.j)),
                    a=ref(A(self.l, self.j)))


@dataclass(frozen=True)
class Upstream(Quantity):
    """∂E/∂a of a unit before the output layer: Σ over the next layer of δ · weight."""

    part: ClassVar[str] = "delta"

    l: int
    j: int

    def label(self, net: Network) -> str:
        return f"∂E/∂{A(self.l, self.j).label(net)}"

    def formula(self, net: Network, ref: Ref, style: Style = EXCEL) -> str:
        return style.sum([style.product(ref(Delta(self.l + 1, m)), ref(Param(self.l + 1, m, self.j)))
                          for m in range(net.size(self.l + 1))])


@dataclass(frozen=True)
class PartialUpstream(Quantity):
    """∂E_m/∂a_j: the part of output m's loss that reaches unit j of the last hidden layer (δ_m · weight)."""

    part: ClassVar[str] = "delta"

    m: int
    j: int

    def label(self, net: Network) -> str:
        return f"∂E{self.m + 1}/∂{A(net.depth - 1, self.j).label(net)}"

    def formula(self, net: Network, ref: Ref, style: Style = EXCEL) -> str:
        return style.product(ref(Delta(net.depth, self.m)), ref(Param(net.depth, self.m, self.j)))


@dataclass(frozen=True)
class Updated(Quantity):
    """A parameter after this row's update (a column of its own when the next row does not hold it)."""

    part: ClassVar[str] = "update"

    param: Param

    def label(self, net: Network) -> str:
        return self.param.label(net) + "+"

    def formula(self, net: Network, ref: Ref, style: Style = EXCEL) -> str:
        return f"{ref(self.param)}-{ref(LearningRate())}*{ref(Grad(self.param))}"


def quantities(net: Network) -> list[Quantity]:
    """Everything a table of this network may hold, in the order each can be computed."""
    last, hidden = net.depth, range(1, net.depth)
    out: list[Quantity] = list(net.params)
    for l in range(1, net.depth + 1):
        out += [q for j in range(net.size(l)) for q in (Z(l, j), A(l, j))]
    out += [LossTerm(j) for j in range(net.size(last))] + [Total()]
    out += [q for j in range(net.size(last)) for q in (LossSlope(j), Slope(last, j), Delta(last, j))]
    for l in reversed(hidden):
        if l == last - 1:
            out += [PartialUpstream(m, j) for m in range(net.size(last)) for j in range(net.size(l))]
        out += [q for j in range(net.size(l)) for q in (Upstream(l, j), Slope(l, j), Delta(l, j))]
    out += [Grad(p) for p in net.params] + [Updated(p) for p in net.params]
    return out


def derivations(net: Network, q: Quantity) -> list[Callable[[Ref], str]]:
    """The ways of computing ``q`` from other quantities, each an Excel formula given where each one is."""
    ways: list[Callable[[Ref], str]] = [lambda ref: q.formula(net, ref)]
    if isinstance(q, Delta):
        if q.l == net.depth:
            ways.append(lambda ref: f"{ref(LossSlope(q.j))}*{ref(Slope(q.l, q.j))}")
        else:
            ways.append(lambda ref: f"{ref(Upstream(q.l, q.j))}*{ref(Slope(q.l, q.j))}")
            if q.l == net.depth - 1:
                parts = [PartialUpstream(m, q.j) for m in range(net.size(net.depth))]
                ways.append(lambda ref: f"({'+'.join(ref(p) for p in parts)})*{ref(Slope(q.l, q.j))}")
    elif isinstance(q, Upstream) and q.l == net.depth - 1:
        ways.append(lambda ref: "+".join(ref(PartialUpstream(m, q.j)) for m in range(net.size(net.depth))))
    elif isinstance(q, Grad):
        p = q.param
        source = "1" if p.k is None else None

        def chained(ref: Ref) -> str:
            local = (f"{ref(LossSlope(p.j))}*{ref(Slope(p.l, p.j))}" if p.l == net.depth
                     else f"{ref(Upstream(p.l, p.j))}*{ref(Slope(p.l, p.j))}")
            return local + ("" if source else f"*{ref(net.source(p))}")

        ways.append(chained)
    elif isinstance(q, Total):
        ways.append(lambda ref: "+".join(LossTerm(j).formula(net, ref) for j in range(net.size(net.depth))))
    return ways


def reads(net: Network, q: Quantity) -> set[Quantity]:
    """The quantities any derivation of ``q`` reads directly."""
    found: set[Quantity] = set()

    def note(r: Quantity) -> str:
        found.add(r)
        return "0"

    if isinstance(q, Param):  # a weight after the first row: the row before's, and its gradient
        return {q, Grad(q)}
    for way in derivations(net, q):
        try:
            way(note)
        except TypeError:  # an input: it reads nothing
            return set()
    return found


def compute(formula: Callable[[Ref], str], value: Callable[[Quantity], np.ndarray]) -> np.ndarray:
    """A derivation evaluated with ``value`` giving each quantity it reads."""
    read: dict[str, np.ndarray] = {}

    def ref(q: Quantity) -> str:
        name = f"v{len(read)}"
        read[name] = np.asarray(value(q), dtype=float)
        return name

    return evaluate(formula(ref), read)


def siblings(net: Network, q: Quantity, among: Iterable[Quantity]) -> list[Quantity]:
    """The quantities of the same kind as ``q`` (another unit, weight or input), a student may mix up."""
    return [r for r in among if type(r) is type(q) and r != q and _same_layer(q, r)]


def _same_layer(q: Quantity, r: Quantity) -> bool:
    if getattr(q, "l", None) != getattr(r, "l", None):
        return False
    if isinstance(q, Grad):
        return q.param.l == r.param.l and (q.param.k is None) == (r.param.k is None)
    if isinstance(q, Param):
        return (q.k is None) == (r.k is None)
    return True

