"""Formulas for every quantity of a network, as Excel formulas or as readable equations.

One builder serves both: it asks ``ref`` where a quantity lives (a cell such as ``B7``, a
defined name such as ``w1_init``, or a label such as ``a_h1`` for text) and joins the pieces
with the operators of the chosen :class:`Style`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sheetprop.network import (A, Delta, Grad, LearningRate, LossTerm, Network, Param, Quantity, SampleGrad,
                               SampleLoss, Target, Total, Z)

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


def _layer_parts(net: Network, l: int, s: int, ref: Ref, style: Style) -> dict[str, str]:
    """The whole-layer pieces a softmax needs: the largest z and Σ EXP(z_k − max)."""
    zs = [ref(Z(l, k, s)) for k in range(net.size(l))]
    biggest = f"MAX({','.join(zs)})"
    return {"max": biggest, "sum_exp": "+".join(f"EXP({z}-{biggest})" for z in zs),
            "zs": ", ".join(zs) if style.text else ",".join(zs)}


def z(net: Network, q: Z, ref: Ref, style: Style = EXCEL) -> str:
    """z_j = Σ_k w_jk·a_k (+ b_j)."""
    terms = [_product(ref(p), ref(net.source(p, q.s)), style=style)
             for p in net.params if p.l == q.l and p.j == q.j and p.k is not None]
    if net.layer(q.l).bias:
        terms.append(ref(Param(q.l, q.j, None)))
    return style.plus.join(terms)


def activation(net: Network, q: A, ref: Ref, style: Style = EXCEL) -> str:
    act = net.activation_of(q.l)
    parts = _layer_parts(net, q.l, q.s, ref, style) if act.vector else {}
    return _fill(act.text if style.text else act.excel, z=ref(Z(q.l, q.j, q.s)), **parts)


def activation_derivative(net: Network, l: int, j: int, s: int, ref: Ref, style: Style = EXCEL) -> str:
    act = net.activation_of(l)
    return _fill(act.text_derivative if style.text else act.excel_derivative,
                 z=ref(Z(l, j, s)), a=ref(A(l, j, s)))


def loss_term(net: Network, q: LossTerm, ref: Ref, style: Style = EXCEL) -> str:
    loss, out = net.loss_fn, net.depth
    parts = _layer_parts(net, out, q.s, ref, style) if net.activation_of(out).vector else {}
    return _fill(loss.text if style.text else loss.excel, a=ref(A(out, q.j, q.s)), t=ref(Target(q.j, q.s)),
                 z=ref(Z(out, q.j, q.s)), n=str(net.size(out)), **parts)


def sample_loss(net: Network, s: int, ref: Ref, style: Style = EXCEL) -> str:
    return style.plus.join(ref(LossTerm(j, s)) for j in range(net.size(net.depth)))


def _reduce(net: Network, terms: list[str], style: Style) -> str:
    """Combine per-sample values as the template says: their mean or their sum."""
    summed = style.plus.join(terms)
    if len(terms) == 1:
        return summed
    return f"({summed})/{len(terms)}" if net.reduction == "mean" else summed


def total(net: Network, ref: Ref, style: Style = EXCEL) -> str:
    if net.samples == 1:
        return sample_loss(net, 0, ref, style)
    return _reduce(net, [ref(SampleLoss(s)) for s in range(net.samples)], style)


def delta(net: Network, l: int, j: int, s: int, ref: Ref, style: Style = EXCEL, expand: bool = True) -> str:
    """δ = ∂E/∂z for unit j of layer l; expanded down from the loss, or one step (``expand=False``)."""
    local = activation_derivative(net, l, j, s, ref, style)
    if l == net.depth:
        loss = net.loss_fn
        upstream = _fill(loss.text_gradient if style.text else loss.excel_gradient,
                         a=ref(A(l, j, s)), t=ref(Target(j, s)), n=str(net.size(l)))
        return upstream if loss.combined else _product(upstream, local, style=style)
    inner = (lambda m: delta(net, l + 1, m, s, ref, style)) if expand else (lambda m: ref(Delta(l + 1, m, s)))
    terms = [_product(inner(m), ref(Param(l + 1, m, j)), style=style) for m in range(net.size(l + 1))]
    summed = terms[0] if len(terms) == 1 else "(" + style.plus.join(terms) + ")"
    return _product(summed, local, style=style)


def sample_gradient(net: Network, p: Param, s: int, ref: Ref, style: Style = EXCEL) -> str:
    """One sample's ∂E/∂p = δ_j · (its source), fully expanded."""
    src = net.source(p, s)
    return _product(delta(net, p.l, p.j, s, ref, style), "1" if src is None else ref(src), style=style)


def gradient(net: Network, q: Grad, ref: Ref, style: Style = EXCEL) -> str:
    """∂E_total/∂p: the expanded chain rule (one sample) or the samples' shares combined."""
    if net.samples == 1:
        return sample_gradient(net, q.param, 0, ref, style)
    return _reduce(net, [ref(SampleGrad(q.param, s)) for s in range(net.samples)], style)


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
        case Delta(l, j, s):
            return delta(net, l, j, s, ref, style, expand=False)
        case LossTerm():
            return loss_term(net, q, ref, style)
        case SampleLoss(s):
            return sample_loss(net, s, ref, style)
        case Total():
            return total(net, ref, style)
        case SampleGrad(p, s):
            return sample_gradient(net, p, s, ref, style)
        case Grad():
            return gradient(net, q, ref, style)
    raise TypeError(f"{q!r} is an input, not a computed quantity")


def chain(net: Network, q: Grad | SampleGrad) -> str:
    """The chain rule for ∂E/∂p, named step by step (∂E_total/∂a_h1 · ∂a_h1/∂h1 · ∂h1/∂w1)."""
    p = q.param
    s = q.s if isinstance(q, SampleGrad) else 0
    zname, aname = net.label(Z(p.l, p.j, s)), net.label(A(p.l, p.j, s))
    loss = "E_total" if isinstance(q, Grad) else net.label(SampleLoss(s))
    if net.depth == p.l and net.loss_fn.combined:
        steps = [f"∂{loss}/∂{zname}", f"∂{zname}/∂{net.label(p)}"]
    else:
        steps = [f"∂{loss}/∂{aname}", f"∂{aname}/∂{zname}", f"∂{zname}/∂{net.label(p)}"]
    return " · ".join(steps)
