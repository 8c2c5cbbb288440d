"""Activations and losses: numpy value, numpy derivative, Excel formula and text, side by side.

Templates use ``{z}`` for the pre-activation, ``{a}`` for the activation and ``{t}`` for the
target. Excel templates must stay free of error values for any finite input: no EXP of a
large positive number, no division that can reach zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class Activation:
    """One activation function in all the forms the project writes it."""

    name: str
    symbol: str
    value: Callable[[Array], Array]
    derivative: Callable[[Array, Array], Array]  # f'(z) given z and a = f(z)
    excel: str
    excel_derivative: str
    text: str
    text_derivative: str


@dataclass(frozen=True)
class Loss:
    """A per-output loss term E_j(a_j, t_j); the total is the sum of the terms."""

    name: str
    value: Callable[[Array, Array, int], Array]
    gradient: Callable[[Array, Array, int], Array]  # dE_total/da_j
    excel: str
    excel_gradient: str
    text: str
    text_gradient: str


def _sigmoid(z: Array) -> Array:
    # exp(-log(1 + e^-z)) never overflows, unlike 1 / (1 + e^-z) for very negative z.
    return np.exp(-np.logaddexp(0.0, -z))


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation(
            name="sigmoid",
            symbol="σ",
            value=_sigmoid,
            derivative=lambda z, a: a * (1.0 - a),
            excel="IF({z}>=0,1/(1+EXP(-{z})),EXP({z})/(1+EXP({z})))",
            excel_derivative="{a}*(1-{a})",
            text="1/(1+e^(−{z}))",
            text_derivative="{a}·(1−{a})",
        ),
        Activation(
            name="tanh",
            symbol="tanh",
            value=np.tanh,
            derivative=lambda z, a: 1.0 - a * a,
            excel="TANH({z})",
            excel_derivative="(1-{a}^2)",
            text="tanh({z})",
            text_derivative="(1−{a}²)",
        ),
        Activation(
            name="relu",
            symbol="relu",
            value=lambda z: np.maximum(z, 0.0),
            derivative=lambda z, a: (z > 0).astype(float),
            excel="MAX({z},0)",
            excel_derivative="IF({z}>0,1,0)",
            text="max({z}, 0)",
            text_derivative="[{z}>0]",
        ),
        Activation(
            name="leaky_relu",
            symbol="lrelu",
            value=lambda z: np.where(z > 0, z, 0.01 * z),
            derivative=lambda z, a: np.where(z > 0, 1.0, 0.01),
            excel="IF({z}>0,{z},0.01*{z})",
            excel_derivative="IF({z}>0,1,0.01)",
            text="max({z}, 0.01·{z})",
            text_derivative="(1 if {z}>0 else 0.01)",
        ),
        Activation(
            name="identity",
            symbol="id",
            value=lambda z: z,
            derivative=lambda z, a: np.ones_like(z),
            excel="{z}",
            excel_derivative="1",
            text="{z}",
            text_derivative="1",
        ),
    )
}

LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss(
            name="l2",
            value=lambda a, t, n: 0.5 * (t - a) ** 2,
            gradient=lambda a, t, n: a - t,
            excel="0.5*({t}-{a})^2",
            excel_gradient="({a}-{t})",
            text="½·({t} − {a})²",
            text_gradient="({a} − {t})",
        ),
    )
}
