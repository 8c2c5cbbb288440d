"""Formulas for every quantity of a network, as Excel formulas or as readable equations.

One builder serves both: it asks ``ref`` where a quantity lives (a cell such as ``B7``, a
defined name such as ``w1_init``, or a label such as ``a_h1`` for text) and joins the pieces
with the operators of the chosen :class:`Style`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sheetprop.network import A, Grad, LearningRate, LossTerm, Network, Param, Quantity, Target, Total, Z

Ref = Callable[[Quantity], str]


@dataclass(frozen=True)
class Style:
    text: bool
    mul: str
    plus: str
    minus: str


EXCEL = Style(text=False, mul="*", plus="+", minus="-")
TEXT = Style(text=True, mul="·", plus=" + ", minus=" − ")


def _fill(template: str, **parts: str) -> str:
    for key, value in parts.items():
        template = template.replace("{" + key + "}", value)
    return template


def _product(*factors: str, style: Style) -> str:
    return style.mul.join(f for f in factors if f != "1")


def z(net: Network, q: Z, ref: Ref, style: Style = EXCEL) -> str:
    """z_j = Σ_k w_jk·a_k (+ b_j)."""
    terms = [_product(ref(p), ref(net.source(p)), style=style)
             for p in net.params if p.l == q.l and p.j == q.j and p.k is not None]
    if net.layer(q.l).bias:
        terms.append(ref(Param(q.l, q.j, None)))
    return style.plus.join(terms)


def activation(net: Network, q: A, ref: Ref, style: Style = EXCEL) -> str:
    act = net.activation_of(q.l)
    return _fill(act.text if style.text else act.excel, z=ref(Z(q.l, q.j)))


def activation_derivative(net: Network, l: int, j: int, ref: Ref, style: Style = EXCEL) -> str:
    act = net.activation_of(l)
    return _fill(act.text_derivative if style.text else act.excel_derivative,
                 z=ref(Z(l, j)), a=ref(A(l, j)))


def loss_term(net: Network, q: LossTerm, ref: Ref, style: Style = EXCEL) -> str:
    loss = net.loss_fn
    return _fill(loss.text if style.text else loss.excel,
                 a=ref(A(net.depth, q.j)), t=ref(Target(q.j)), n=str(net.size(net.depth)))


def total(net: Network, ref: Ref, style: Style = EXCEL) -> str:
    return style.plus.join(ref(LossTerm(j)) for j in range(net.size(net.depth)))


def delta(net: Network, l: int, j: int, ref: Ref, style: Style = EXCEL) -> str:
    """δ = ∂E_total/∂z for unit j of layer l, fully expanded down from the loss."""
    local = activation_derivative(net, l, j, ref, style)
    if l == net.depth:
        loss = net.loss_fn
        upstream = _fill(loss.text_gradient if style.text else loss.excel_gradient,
                         a=ref(A(l, j)), t=ref(Target(j)), n=str(net.size(l)))
        return _product(upstream, local, style=style)
    terms = [_product(delta(net, l + 1, m, ref, style), ref(Param(l + 1, m, j)), style=style)
             for m in range(net.size(l + 1))]
    summed = terms[0] if len(terms) == 1 else "(" + style.plus.join(terms) + ")"
    return _product(summed, local, style=style)


def gradient(net: Network, q: Grad, ref: Ref, style: Style = EXCEL) -> str:
    """∂E_total/∂p = δ_j · (its source), fully expanded."""
    p = q.param
    src = net.source(p)
    return _product(delta(net, p.l, p.j, ref, style), "1" if src is None else ref(src), style=style)


def update(net: Network, p: Param, ref: Ref, previous: Ref, style: Style = EXCEL) -> str:
    """p ← p − η·∂E/∂p, with the right-hand side taken from the previous iteration."""
    return f"{previous(p)}{style.minus}{ref(LearningRate())}{style.mul}{previous(Grad(p))}"


def formula(net: Network, q: Quantity, ref: Ref, style: Style = EXCEL) -> str:
    """The right-hand side that computes ``q`` from the quantities ``ref`` points at."""
    match q:
        case Z():
            return z(net, q, ref, style)
        case A():
            return activation(net, q, ref, style)
        case LossTerm():
            return loss_term(net, q, ref, style)
        case Total():
            return total(net, ref, style)
        case Grad():
            return gradient(net, q, ref, style)
    raise TypeError(f"{q!r} is an input, not a computed quantity")


def chain(net: Network, q: Grad) -> str:
    """The chain rule for ∂E_total/∂p, named step by step (∂E_total/∂a_h1 · ∂a_h1/∂h1 · ∂h1/∂w1)."""
    p = q.param
    zname, aname = net.label(Z(p.l, p.j)), net.label(A(p.l, p.j))
    steps = [f"∂E_total/∂{aname}", f"∂{aname}/∂{zname}", f"∂{zname}/∂{net.label(p)}"]
    return " · ".join(steps)

