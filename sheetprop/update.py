"""The update rules: how a parameter and its optimizer state move from one iteration to the next, each
written once for the reference (numpy) and once for the workbook (an Excel formula or readable text),
side by side, in ``torch.optim``'s own definitions.

Row k of a training sheet holds the parameters p_k, their gradients g_k and the optimizer's state
after step t = k + 1 has taken g_k in (a momentum buffer, Adam's m and v and their bias corrections);
row k + 1's parameters follow from row k. Every hyperparameter is a named input on the Network sheet.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from sheetprop.formulas import EXCEL, Style

Refs = Callable[[str], str]  # a state's (or hyperparameter's) name → where it is (a cell, a defined name, a label)
Array = np.ndarray | float


@dataclass(frozen=True)
class HyperparameterSpec:
    """A named, validated input cell on the Network sheet."""

    name: str  # its defined name
    symbol: str  # how the equations write it
    default: float  # torch.optim's default
    low: float
    high: float | None = None  # None: unbounded above
    low_open: bool = False  # the bounds: [low, high) or (low, high) when low_open
    meaning: str = ""
    only: float | None = None  # the one value allowed (nesterov's dampening: 0), or None
    why: str = ""  # what narrowed the bounds (for errors)

    def allows(self, value: float) -> bool:
        if self.only is not None:
            return value == self.only
        above = value > self.low if self.low_open else value >= self.low
        return bool(np.isfinite(value)) and above and (self.high is None or value < self.high)

    @property
    def expected(self) -> str:
        """The allowed values in words (for errors and the cell's validation message)."""
        if self.only is not None:
            return f"equal to {self.only:g}" + (f" ({self.why})" if self.why else "")
        left = f"{'more than' if self.low_open else 'at least'} {self.low:g}"
        return left + ("" if self.high is None else f" and less than {self.high:g}") + (
            f" ({self.why})" if self.why else "")


HYPERPARAMETERS: dict[str, HyperparameterSpec] = {h.name: h for h in (
    HyperparameterSpec("momentum", "μ", 0.9, 0.0, 1.0, meaning="momentum (momentum, nesterov)"),
    HyperparameterSpec("dampening", "τ", 0.0, 0.0, 1.0, meaning="dampening of the gradient (momentum)"),
    HyperparameterSpec("alpha", "α", 0.99, 0.0, 1.0, meaning="smoothing of the squared gradient (rmsprop)"),
    HyperparameterSpec("beta1", "β₁", 0.9, 0.0, 1.0, meaning="decay of the first moment m (adam, adamw)"),
    HyperparameterSpec("beta2", "β₂", 0.999, 0.0, 1.0, meaning="decay of the second moment v (adam, adamw)"),
    HyperparameterSpec("eps", "ε", 1e-8, 0.0, None, low_open=True, meaning="added to the denominator (rmsprop, adam, adamw)"),
    HyperparameterSpec("weight_decay", "λ", 0.01, 0.0, meaning="decoupled weight decay (adamw)"),
)}


class Optimizer:
    """An update rule: its state quantities (per parameter), the hyperparameters it reads, one numpy step
    and its formulas. ``advance`` takes the state of step t − 1 (None before the first) and the gradient
    g_t to the state of step t; ``apply`` moves p by that state."""

    name = ""
    title = ""  # how a sheet's title names it
    states: tuple[str, ...] = ()  # the state quantities' symbols, in their columns' order
    hyperparameters: tuple[str, ...] = ()
    rule = ""  # the update in words, for the Equations sheet

    def advance(self, state: Mapping[str, np.ndarray] | None, g: np.ndarray, t: int,
                h: Mapping[str, float]) -> dict[str, np.ndarray]:
        return {}

    def apply(self, p: Array, lr: Array, g: Array, state: Mapping[str, Array], h: Mapping[str, float]) -> Array:
        raise NotImplementedError

    def state_formula(self, kind: str, g: str, previous: Refs | None, here: Refs, t: str, h: Refs,
                      style: Style = EXCEL) -> str:
        """State ``kind`` at step t from the gradient g and the previous step's state (None: the first step)."""
        raise KeyError(kind)

    def formula(self, p: str, lr: str, g: str, state: Refs, h: Refs, style: Style = EXCEL) -> str:
        """The parameter after the step, from p, η, g and the state of the same step."""
        raise NotImplementedError


class SGD(Optimizer):
    name, title, rule = "sgd", "Gradient descent", "p ← p − η·g"

    def apply(self, p, lr, g, state, h):
        return p - lr * g

    def formula(self, p, lr, g, state, h, style=EXCEL):
        return f"{p}{style.minus}{lr}{style.mul}{g}"


def _scaled_sum(a: str, x: str, b: str, y: str, style: Style) -> str:
    """a·x + b·y, each product left out where its factor's text is "0"."""
    return style.sum([style.product(a, x), style.product(b, y)])


class Momentum(Optimizer):
    """torch.optim.SGD(momentum=μ, dampening=τ): b₁ = g₁, b_t = μ·b_(t−1) + (1 − τ)·g_t; p ← p − η·b."""

    name, title, states = "momentum", "Momentum", ("b",)
    hyperparameters = ("momentum", "dampening")
    rule = "b = g at the first step, then b ← μ·b + (1 − τ)·g;  p ← p − η·b"

    def advance(self, state, g, t, h):
        if state is None:
            return {"b": g.copy() if isinstance(g, np.ndarray) else g}
        return {"b": h["momentum"] * state["b"] + (1 - h["dampening"]) * g}

    def apply(self, p, lr, g, state, h):
        return p - lr * state["b"]

    def state_formula(self, kind, g, previous, here, t, h, style=EXCEL):
        if previous is None:
            return g
        return _scaled_sum(h("momentum"), previous("b"), f"(1{style.minus}{h('dampening')})", g, style)

    def formula(self, p, lr, g, state, h, style=EXCEL):
        return f"{p}{style.minus}{lr}{style.mul}{state('b')}"


class Nesterov(Optimizer):
    """torch.optim.SGD(momentum=μ, nesterov=True) (no dampening): b₁ = g₁, b_t = μ·b_(t−1) + g_t;
    p ← p − η·(g + μ·b)."""

    name, title, states = "nesterov", "Nesterov momentum", ("b",)
    hyperparameters = ("momentum",)
    rule = "b = g at the first step, then b ← μ·b + g;  p ← p − η·(g + μ·b)"

    def advance(self, state, g, t, h):
        if state is None:
            return {"b": g.copy() if isinstance(g, np.ndarray) else g}
        return {"b": h["momentum"] * state["b"] + g}

    def apply(self, p, lr, g, state, h):
        return p - lr * (g + h["momentum"] * state["b"])

    def state_formula(self, kind, g, previous, here, t, h, style=EXCEL):
        return g if previous is None else style.sum([style.product(h("momentum"), previous("b")), g])

    def formula(self, p, lr, g, state, h, style=EXCEL):
        return f"{p}{style.minus}{lr}{style.mul}({style.sum([g, style.product(h('momentum'), state('b'))])})"


class RMSprop(Optimizer):
    """torch.optim.RMSprop(alpha=α, eps=ε): v_t = α·v_(t−1) + (1 − α)·g_t², v₀ = 0; p ← p − η·g/(√v + ε)."""

    name, title, states = "rmsprop", "RMSprop", ("v",)
    hyperparameters = ("alpha", "eps")
    rule = "v ← α·v + (1 − α)·g² (v = 0 before the first step);  p ← p − η·g/(√v + ε)"

    def advance(self, state, g, t, h):
        before = 0.0 if state is None else state["v"]
        return {"v": h["alpha"] * before + (1 - h["alpha"]) * g * g}

    def apply(self, p, lr, g, state, h):
        return p - lr * g / (np.sqrt(state["v"]) + h["eps"])

    def state_formula(self, kind, g, previous, here, t, h, style=EXCEL):
        new = style.product(f"(1{style.minus}{h('alpha')})", _square(g, style))
        return new if previous is None else style.sum([style.product(h("alpha"), previous("v")), new])

    def formula(self, p, lr, g, state, h, style=EXCEL):
        return f"{p}{style.minus}{lr}{style.mul}{g}/({_sqrt(state('v'), style)}{style.plus}{h('eps')})"


class Adam(Optimizer):
    """torch.optim.Adam(betas=(β₁, β₂), eps=ε): m_t = β₁·m_(t−1) + (1 − β₁)·g_t, v_t = β₂·v_(t−1) + (1 − β₂)·g_t²
    (m₀ = v₀ = 0), m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ); p ← p − η·m̂/(√v̂ + ε), ε outside the square root."""

    name, title, states = "adam", "Adam", ("m", "v", "m̂", "v̂")
    hyperparameters = ("beta1", "beta2", "eps")
    rule = ("m ← β₁·m + (1 − β₁)·g, v ← β₂·v + (1 − β₂)·g² (both 0 before the first step), m̂ = m/(1 − β₁ᵗ), "
            "v̂ = v/(1 − β₂ᵗ) at step t;  p ← p − η·m̂/(√v̂ + ε)")

    def advance(self, state, g, t, h):
        b1, b2 = h["beta1"], h["beta2"]
        m = (1 - b1) * g if state is None else b1 * state["m"] + (1 - b1) * g
        v = (1 - b2) * g * g if state is None else b2 * state["v"] + (1 - b2) * g * g
        return {"m": m, "v": v, "m̂": m / (1 - b1**t), "v̂": v / (1 - b2**t)}

    def apply(self, p, lr, g, state, h):
        return p - lr * state["m̂"] / (np.sqrt(state["v̂"]) + h["eps"])

    def state_formula(self, kind, g, previous, here, t, h, style=EXCEL):
        beta = {"m": "beta1", "v": "beta2", "m̂": "beta1", "v̂": "beta2"}[kind]
        if kind in ("m̂", "v̂"):
            return f"{here(kind[0])}/(1{style.minus}{_power(h(beta), t, style)})"
        new = style.product(f"(1{style.minus}{h(beta)})", g if kind == "m" else _square(g, style))
        return new if previous is None else style.sum([style.product(h(beta), previous(kind)), new])

    def formula(self, p, lr, g, state, h, style=EXCEL):
        return f"{p}{style.minus}{lr}{style.mul}{state('m̂')}/({_sqrt(state('v̂'), style)}{style.plus}{h('eps')})"


class AdamW(Adam):
    """torch.optim.AdamW(weight_decay=λ): Adam's step after the decoupled decay p ← p·(1 − η·λ)."""

    name, title = "adamw", "AdamW"
    hyperparameters = Adam.hyperparameters + ("weight_decay",)
    rule = Adam.rule.replace("p ← p − η", "p ← p·(1 − η·λ) − η")

    def apply(self, p, lr, g, state, h):
        return p * (1 - lr * h["weight_decay"]) - lr * state["m̂"] / (np.sqrt(state["v̂"]) + h["eps"])

    def formula(self, p, lr, g, state, h, style=EXCEL):
        decayed = f"{p}{style.mul}(1{style.minus}{lr}{style.mul}{h('weight_decay')})"
        return super().formula(decayed, lr, g, state, h, style)


_SUPERSCRIPT = {"1": "¹", "t": "ᵗ"}


def _square(x: str, style: Style) -> str:
    """x²: a product in Excel, since LibreOffice's ``^`` answers #NUM! where the result underflows (below
    about 1e-308) and the product, like numpy's, gives 0 or a subnormal number."""
    if not style.text:
        return f"{x}*{x}" if _SIMPLE.fullmatch(x) else f"({x})*({x})"
    return f"{x}²" if x.isalnum() else f"({x})²"


def _power(base: str, t: str, style: Style) -> str:
    """β^t of a β in [0, 1) and a step t ≥ 1. LibreOffice's ``^`` answers #NUM! where the power underflows
    (0.9^7000), so a power below e^-708 (about 3e-308, where numpy's result stops being a normal number and
    1 − β^t is 1 either way) is written as 0."""
    if style.text:
        return f"{base}{_SUPERSCRIPT.get(t, '^' + t)}"
    return f"IF({base}<EXP(-708/{t}),0,{base}^{t})"


_SIMPLE = re.compile(r"\$?[A-Za-z_][A-Za-z0-9_.]*\$?[0-9]*")  # a cell or a defined name


def _sqrt(x: str, style: Style) -> str:
    return f"√{x}" if style.text else f"SQRT({x})"


OPTIMIZERS: dict[str, Optimizer] = {o.name: o for o in (SGD(), Momentum(), Nesterov(), RMSprop(), Adam(), AdamW())}


def hyperparameters_used(names) -> tuple[str, ...]:
    """The hyperparameters the optimizers ``names`` read, in :data:`HYPERPARAMETERS` order."""
    used = {h for name in names for h in OPTIMIZERS[name].hyperparameters}
    return tuple(h for h in HYPERPARAMETERS if h in used)


_NESTEROV = "torch.optim.SGD refuses nesterov=True without momentum or with dampening"


def specs(names) -> dict[str, HyperparameterSpec]:
    """Every hyperparameter's bounds as the optimizers ``names`` constrain them together: with nesterov,
    momentum must be above 0 and dampening 0 (one input holds each for every optimizer of a workbook)."""
    out = dict(HYPERPARAMETERS)
    if "nesterov" in names:
        out["momentum"] = dataclasses.replace(out["momentum"], low_open=True, why=_NESTEROV)
        out["dampening"] = dataclasses.replace(out["dampening"], only=0.0, why=_NESTEROV)
    return out


def check_settings(names, values: Mapping[str, float], given=()) -> None:
    """Refuse, in a ValueError naming the setting, what torch.optim would refuse for the optimizers ``names``
    (a value out of bounds, nesterov with dampening or without momentum), and a hyperparameter in ``given``
    that none of them reads."""
    used = hyperparameters_used(names)
    for name in given:
        if name not in used:
            readers = [o for o, rule in OPTIMIZERS.items() if name in rule.hyperparameters]
            raise ValueError(f"{name} is read by {', '.join(readers)}, not by {', '.join(names)}: drop it or add "
                             f"one of those optimizers")
    bounds = specs(names)
    for name in used:
        if not bounds[name].allows(values[name]):
            raise ValueError(f"{name} must be a number {bounds[name].expected}, got {values[name]:g}")
