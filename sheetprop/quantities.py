"""The quantities of a network, each in one place: its name, its values and its formula.

Layers count from 1 (layer 0 is the input); ``s`` is the sample. Every class answers:

- ``label(net)``: the name a person reads (w1, a_h1, δ[2]_1⁽³⁾, ∂E/∂w5);
- ``values(trace)``: its values in a reference trace, shape (rates, iterations + 1);
- ``formula(net, ref, style)``: how it is computed from the quantities ``ref`` points at, as an
  Excel formula or as readable text (inputs have none).

A new kind of quantity is one new class here, placed in a layout (:mod:`sheetprop.layout`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np

from sheetprop.formulas import EXCEL, TEXT, Style, fill
from sheetprop.naming import sample_mark
from sheetprop.update import HYPERPARAMETERS, OPTIMIZERS
from sheetprop.views import ChainView, NetworkView, TraceView

Ref = Callable[["Quantity"], str]


@dataclass(frozen=True)
class Row:
    """Where a training row's formula finds what it reads: this row's quantities (``here``) and the row
    before's (``previous``; None in the first row, where the parameters start from their initial values and
    the optimizer's state from nothing), for ``optimizer`` at its step ``t`` (a cell or a number)."""

    here: Ref
    previous: Ref | None = None
    optimizer: str = "sgd"
    t: str = "1"


class Quantity:
    """Base of every quantity."""

    #: an input the user edits on the Network sheet; formulas refer to it by its defined name
    editable: ClassVar[bool] = False
    #: what part of the derivation it is: "input", "forward", "loss", "delta", "gradient" or "update" (an
    #: exercise leaves parts of it for the student to write)
    part: ClassVar[str] = "input"

    def label(self, net: NetworkView) -> str:
        raise NotImplementedError

    def values(self, trace: TraceView) -> np.ndarray:
        raise NotImplementedError

    def formula(self, net: NetworkView, ref: Ref, style: Style = EXCEL) -> str:
        raise TypeError(f"{self!r} is an input, not a computed quantity")

    def row_formula(self, net: NetworkView, row: Row, style: Style = EXCEL) -> str:
        """Its formula in a row of a training sheet; most quantities read only their own row."""
        return self.formula(net, row.here, style)

    def equation(self, net: NetworkView, chain: ChainView) -> tuple[str, str | None, str]:
        """(name, chain rule or None, right-hand side) of this quantity's line on the Equations sheet."""
        return self.label(net), None, self.formula(net, net.label, TEXT)


# -- inputs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Input(Quantity):
    k: int
    s: int = 0
    editable: ClassVar[bool] = True

    def label(self, net: NetworkView) -> str:
        return net.names.sample(net.input_names[self.k], self.s)

    def values(self, trace: TraceView) -> np.ndarray:
        return trace.constant(trace.network.inputs[self.s, self.k])

    def defined_name(self, net: NetworkView) -> str:
        return f"input_{net.input_names[self.k]}" + ("" if net.samples == 1 else f"_s{self.s + 1}")


@dataclass(frozen=True)
class Target(Quantity):
    j: int
    s: int = 0
    editable: ClassVar[bool] = True

    def label(self, net: NetworkView) -> str:
        return net.names.sample(net.target_names[self.j], self.s)

    def values(self, trace: TraceView) -> np.ndarray:
        return trace.constant(trace.network.targets[self.s, self.j])

    def defined_name(self, net: NetworkView) -> str:
        return f"target_{net.target_names[self.j]}" + ("" if net.samples == 1 else f"_s{self.s + 1}")


@dataclass(frozen=True)
class LearningRate(Quantity):
    def label(self, net: NetworkView) -> str:
        return "η"

    def values(self, trace: TraceView) -> np.ndarray:
        return np.broadcast_to(trace.learning_rates[:, None], trace.total.shape)


@dataclass(frozen=True)
class Param(Quantity):
    """A weight (source k → unit j of layer l) or, with ``k=None``, the bias of unit j."""

    part: ClassVar[str] = "update"

    l: int
    j: int
    k: int | None

    def label(self, net: NetworkView) -> str:
        return net.names.param(self)

    def values(self, trace: TraceView) -> np.ndarray:
        return trace.params[..., trace.network.param_index[self]]

    def defined_name(self, net: NetworkView) -> str:
        """The initial value's name on the Network sheet: w1_init, w2_11_init, b3_2_init."""
        return re.sub(r"[^A-Za-z0-9_]", "", self.label(net).replace(",", "_")) + "_init"

    def row_formula(self, net: NetworkView, row: Row, style: Style = EXCEL) -> str:
        """Its initial value in the first row; after it, the optimizer's update from the row before (its
        parameter, gradient and state)."""
        if row.previous is None:
            return self.defined_name(net)
        previous, optimizer = row.previous, row.optimizer
        return OPTIMIZERS[optimizer].formula(previous(self), row.here(LearningRate()), previous(Grad(self)),
                                             lambda kind: previous(State(self, kind, optimizer)),
                                             lambda name: row.here(Hyperparameter(name)), style)


@dataclass(frozen=True)
class Hyperparameter(Quantity):
    """An optimizer's hyperparameter (β₁, ε, momentum, …): an input on the Network sheet, by its name."""

    name: str
    editable: ClassVar[bool] = True

    def label(self, net: NetworkView) -> str:
        return HYPERPARAMETERS[self.name].symbol

    def values(self, trace: TraceView) -> np.ndarray:
        return trace.constant(trace.network.hyperparameters[self.name])

    def defined_name(self, net: NetworkView) -> str:
        return self.name


@dataclass(frozen=True)
class State(Quantity):
    """One parameter's optimizer state after step t = iteration + 1 (a momentum buffer b, RMSprop's v,
    Adam's m, v, m̂ and v̂): each from the gradient of its own row and the state of the row before."""

    part: ClassVar[str] = "update"

    param: Param
    kind: str
    optimizer: str

    def label(self, net: NetworkView) -> str:
        return f"{self.kind}({self.param.label(net)})"

    def values(self, trace: TraceView) -> np.ndarray:
        return trace.states[self.kind][..., trace.network.param_index[self.param]]

    def row_formula(self, net: NetworkView, row: Row, style: Style = EXCEL) -> str:
        """Its formula at the row's step t from this row's gradient and the row before's state (none in the
        first row: the first step)."""
        p, optimizer, previous, here = self.param, self.optimizer, row.previous, row.here
        before = None if previous is None else (lambda kind: previous(State(p, kind, optimizer)))
        return OPTIMIZERS[optimizer].state_formula(self.kind, here(Grad(p)), before,
                                                   lambda kind: here(State(p, kind, optimizer)), row.t,
                                                   lambda name: here(Hyperparameter(name)), style)


# -- forward pass -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Z(Quantity):
    """A unit's weighted sum z_j = Σ_k w_jk·a_k (+ b_j)."""

    part: ClassVar[str] = "forward"

    l: int
    j: int
    s: int = 0

    def label(self, net: NetworkView) -> str:
        return net.names.sample(net.names.unit(self.l, self.j), self.s)

    def values(self, trace: TraceView) -> np.ndarray:
        return trace.z[self.l - 1][..., self.s, self.j]

    def formula(self, net: NetworkView, ref: Ref, style: Style = EXCEL) -> str:
        terms = [style.product(ref(p), ref(net.source(p, self.s)) if p.k is not None else "1")
                 for p in net.incoming(self.l, self.j)]
        return style.sum(terms)


@dataclass(frozen=True)
class LayerMax(Quantity):
    """The largest z of a softmax layer: subtracted before EXP so that nothing overflows."""

    part: ClassVar[str] = "forward"

    l: int
    s: int = 0

    def label(self, net: NetworkView) -> str:
        return net.names.sample(f"m{net.names.layer(self.l)}", self.s)

    def values(self, trace: TraceView) -> np.ndarray:
        return trace.z[self.l - 1][..., self.s, :].max(axis=-1)

    def formula(self, net: NetworkView, ref: Ref, style: Style = EXCEL) -> str:
        n = net.size(self.l)
        zs = style.span(ref(Z(self.l, 0, self.s)), ref(Z(self.l, n - 1, self.s)), n)
        return style.pick(f"MAX({zs})", f"max({zs})")


@dataclass(frozen=True)
class LayerSumExp(Quantity):
    """Σ_k e^(z_k − m) of a softmax layer, the denominator of every unit's softmax."""

    part: ClassVar[str] = "forward"

    l: int
    s: int = 0

    def label(self, net: NetworkView) -> str:
        return net.names.sample(f"Σ{net.names.layer(self.l)}", self.s)

    def values(self, trace: TraceView) -> np.ndarray:
        z = trace.z[self.l - 1][..., self.s, :]
        return np.exp(z - z.max(axis=-1, keepdims=True)).sum(axis=-1)

    def formula(self, net: NetworkView, ref: Ref, style: Style = EXCEL) -> str:
        n, m = net.size(self.l), ref(LayerMax(self.l, self.s))
        if not style.text:  # a sum of terms, not an array over a range: every engine reads it the same way
            return style.sum([f"EXP({ref(Z(self.l, k, self.s))}-{m})" for k in range(n)])
        first, last = ref(Z(self.l, 0, self.s)), ref(Z(self.l, n - 1, self.s))
        return style.span(f"e^({first} − {m})", f"e^({last} − {m})", n).replace(", ", " + ")


@dataclass(frozen=True)
class A(Quantity):
    """A unit's activation a = f(z)."""

    part: ClassVar[str] = "forward"

    l: int
    j: int
    s: int = 0

    def label(self, net: NetworkView) -> str:
        return net.names.sample(net.names.activation(self.l, self.j), self.s)

    def values(self, trace: TraceView) -> np.ndarray:
        return trace.a[self.l - 1][..., self.s, self.j]

    def formula(self, net: NetworkView, ref: Ref, style: Style = EXCEL) -> str:
        act = net.activation_of(self.l)
        parts = {"z": ref(Z(self.l, self.j, self.s))}
        if act.vector:
            parts.update(max=ref(LayerMax(self.l, self.s)), sum_exp=ref(LayerSumExp(self.l, self.s)))
        return fill(style.pick(act.excel, act.text), **parts)

    def equation(self, net: NetworkView, chain: ChainView) -> tuple[str, str | None, str]:
        name, _, text = super().equation(net, chain)
        applied = f"{net.activation_of(self.l).symbol}({Z(self.l, self.j, self.s).label(net)})"
        return name, None, applied if text == applied else f"{applied} = {text}"


# -- loss -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LossTerm(Quantity):
    """The loss of output j for one sample."""

    part: ClassVar[str] = "loss"

    j: int
    s: int = 0

    def label(self, net: NetworkView) -> str:
        return net.names.sample(f"E{self.j + 1}", self.s)

    def values(self, trace: TraceView) -> np.ndarray:
        return trace.loss_terms[..., self.s, self.j]

    def formula(self, net: NetworkView, ref: Ref, style: Style = EXCEL) -> str:
        out, loss = net.depth, net.loss_fn
        parts = {"a": ref(A(out, self.j, self.s)), "t": ref(Target(self.j, self.s)),
                 "z": ref(Z(out, self.j, self.s)), "n": str(net.size(out))}
        if net.activation_of(out).vector:
            parts.update(max=ref(LayerMax(out, self.s)), sum_exp=ref(LayerSumExp(out, self.s)))
        return fill(style.pick(loss.excel, loss.text), **parts)


@dataclass(frozen=True)
class SampleLoss(Quantity):
    """One sample's loss: the sum of its terms (a column only when there are several samples)."""

    part: ClassVar[str] = "loss"

    s: int

    def label(self, net: NetworkView) -> str:
        return "E" + sample_mark(self.s)

    def values(self, trace: TraceView) -> np.ndarray:
        return trace.sample_losses[..., self.s]

    def formula(self, net: NetworkView, ref: Ref, style: Style = EXCEL) -> str:
        return style.sum([ref(LossTerm(j, self.s)) for j in range(net.size(net.depth))])


@dataclass(frozen=True)
class Total(Quantity):
    """E_total: the loss of the one sample, or the mean (sum) of the samples' losses."""

    part: ClassVar[str] = "loss"

    def label(self, net: NetworkView) -> str:
        return "E_total"

    def values(self, trace: TraceView) -> np.ndarray:
        return trace.total

    def formula(self, net: NetworkView, ref: Ref, style: Style = EXCEL) -> str:
        if net.samples == 1:
            return SampleLoss(0).formula(net, ref, style)
        return style.reduce([ref(SampleLoss(s)) for s in range(net.samples)], net.reduction)


# -- backward pass ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Delta(Quantity):
    """δ = ∂E/∂z of one unit for one sample: one chain-rule step from the next layer's δ."""

    part: ClassVar[str] = "delta"

    l: int
    j: int
    s: int = 0

    def label(self, net: NetworkView) -> str:
        return net.names.sample(net.names.delta(self.l, self.j), self.s)

    def values(self, trace: TraceView) -> np.ndarray:
        return trace.deltas[self.l - 1][..., self.s, self.j]

    def formula(self, net: NetworkView, ref: Ref, style: Style = EXCEL) -> str:
        l, j, s = self.l, self.j, self.s
        act = net.activation_of(l)
        local = fill(style.pick(act.excel_derivative, act.text_derivative), z=ref(Z(l, j, s)), a=ref(A(l, j, s)))
        if l == net.depth:
            loss = net.loss_fn
            targets = [ref(Target(k, s)) for k in range(net.size(l))]
            upstream = fill(style.pick(loss.excel_gradient, loss.text_gradient), a=ref(A(l, j, s)),
                            t=ref(Target(j, s)), n=str(net.size(l)), t_sum=style.grouped_sum(targets))
            return upstream if loss.combined else style.product(upstream, local)
        back = [style.product(ref(Delta(l + 1, m, s)), ref(Param(l + 1, m, j))) for m in range(net.size(l + 1))]
        return style.product(style.grouped_sum(back), local)

    def equation(self, net: NetworkView, chain: ChainView) -> tuple[str, str | None, str]:
        loss = SampleLoss(self.s).label(net) if net.samples > 1 else "E_total"
        chain_rule = f"= ∂{loss}/∂{Z(self.l, self.j, self.s).label(net)}"
        return self.label(net), chain_rule, self.formula(net, net.label, TEXT)


@dataclass(frozen=True)
class SampleGrad(Quantity):
    """One sample's ∂E/∂p = δ of p's unit · p's source (1 for a bias)."""

    part: ClassVar[str] = "gradient"

    param: Param
    s: int

    def label(self, net: NetworkView) -> str:
        return f"∂E{sample_mark(self.s)}/∂{self.param.label(net)}"

    def values(self, trace: TraceView) -> np.ndarray:
        return trace.sample_grads[..., self.s, trace.network.param_index[self.param]]

    def formula(self, net: NetworkView, ref: Ref, style: Style = EXCEL) -> str:
        p = self.param
        src = net.source(p, self.s)
        return style.product(ref(Delta(p.l, p.j, self.s)), "1" if src is None else ref(src))

    def equation(self, net: NetworkView, chain: ChainView) -> tuple[str, str | None, str]:
        return self.label(net), "= " + chain.steps(self), chain.written_out(self)


@dataclass(frozen=True)
class Grad(Quantity):
    """∂E_total/∂p: δ · source, combined over the samples."""

    part: ClassVar[str] = "gradient"

    param: Param

    def label(self, net: NetworkView) -> str:
        return f"∂E/∂{self.param.label(net)}"

    def values(self, trace: TraceView) -> np.ndarray:
        return trace.grads[..., trace.network.param_index[self.param]]

    def formula(self, net: NetworkView, ref: Ref, style: Style = EXCEL) -> str:
        terms = [SampleGrad(self.param, s).formula(net, ref, style) for s in range(net.samples)]
        return style.reduce(terms, net.reduction)

    def equation(self, net: NetworkView, chain: ChainView) -> tuple[str, str | None, str]:
        name = f"∂E_total/∂{self.param.label(net)}"
        if net.samples > 1:  # the mean (sum) of the samples' gradients, each written out above
            return name, None, self.formula(net, net.label, TEXT)
        return name, "= " + chain.steps(self), chain.written_out(self)
