"""Activations and losses: numpy value, numpy derivative, Excel formula and text, side by side.

Templates use ``{z}`` for the pre-activation, ``{a}`` for the activation, ``{t}`` for the
target, ``{t_sum}`` for the sum of the sample's targets and ``{n}`` for the number of outputs;
softmax also uses ``{max}`` (the cell holding the largest z of the layer) and ``{sum_exp}`` (the
cell holding Σ EXP(z_k − max)). Excel templates
must stay free of error values for any finite input in every engine: no EXP of a large positive number,
no LN of zero, no division that can reach zero, and no ``^`` (LibreOffice answers #NUM! where a power
underflows; a square is written as a product, which underflows to 0 as numpy's does).
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
    vector: bool = False  # the unit's value depends on the whole layer (softmax)
    kinked: bool = False  # not differentiable at z = 0 (its derivative there is torch's choice)


@dataclass(frozen=True)
class Loss:
    """A per-output loss term E_j; a sample's loss is the sum of its terms."""

    name: str
    value: Callable[[Array, Array, Array, int], Array]  # (a, t, z, n) → terms
    gradient: Callable[[Array, Array, int], Array]  # ∂E/∂a_j, or ∂E/∂z_j when ``combined``
    excel: str
    excel_gradient: str
    text: str
    text_gradient: str
    combined: bool = False  # the gradient already includes the output activation's derivative
    needs_activation: str | None = None


def _log_softmax(z: Array) -> Array:
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


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
            excel_derivative="(1-{a}*{a})",
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
            kinked=True,
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
            kinked=True,
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
        Activation(
            name="softmax",
            symbol="softmax",
            value=lambda z: np.exp(_log_softmax(z)),
            derivative=lambda z, a: np.ones_like(z),  # folded into the cross-entropy gradient
            excel="EXP({z}-{max})/{sum_exp}",
            excel_derivative="1",
            text="e^({z} − {max}) / {sum_exp}",
            text_derivative="1",
            vector=True,
        ),
    )
}

LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss(
            name="l2",
            value=lambda a, t, z, n: 0.5 * (t - a) ** 2,
            gradient=lambda a, t, n: a - t,
            excel="0.5*({t}-{a})*({t}-{a})",
            excel_gradient="({a}-{t})",
            text="½·({t} − {a})²",
            text_gradient="({a} − {t})",
        ),
        Loss(
            # the same without the ½, as many write it by hand: its gradient is twice l2's
            name="sse",
            value=lambda a, t, z, n: (t - a) ** 2,
            gradient=lambda a, t, n: 2.0 * (a - t),
            excel="({t}-{a})*({t}-{a})",
            excel_gradient="(2*({a}-{t}))",
            text="({t} − {a})²",
            text_gradient="2·({a} − {t})",
        ),
        Loss(
            name="mse",
            value=lambda a, t, z, n: (t - a) ** 2 / n,
            gradient=lambda a, t, n: 2.0 * (a - t) / n,
            excel="({t}-{a})*({t}-{a})/{n}",
            excel_gradient="(2*({a}-{t})/{n})",
            text="({t} − {a})²/{n}",
            text_gradient="(2·({a} − {t})/{n})",
        ),
        Loss(
            # −t·ln(a) written as −t·(z − max − ln Σ e^(z_k − max)): never LN(0). Its ∂E/∂z_j is
            # a_j·Σt − t_j, the familiar a_j − t_j only while the targets sum to 1: a student may edit them.
            name="softmax_cross_entropy",
            value=lambda a, t, z, n: -t * _log_softmax(z),
            gradient=lambda a, t, n: a * t.sum(axis=-1, keepdims=True) - t,
            excel="-{t}*({z}-{max}-LN({sum_exp}))",
            excel_gradient="({a}*{t_sum}-{t})",
            text="−{t}·ln({a})",
            text_gradient="({a}·{t_sum} − {t})",
            combined=True,
            needs_activation="softmax",
        ),
    )
}
