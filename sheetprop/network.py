"""The network: layers, activations, loss, samples and initial values.

Built from a template by :mod:`sheetprop.template`; every other module asks a :class:`Network`
for sizes, parameters, names and initial values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from sheetprop.activations import ACTIVATIONS, LOSSES, Activation, Loss
from sheetprop.naming import Names
from sheetprop.quantities import A, Input, Param, Quantity
from sheetprop.update import HYPERPARAMETERS, hyperparameters_used

REDUCTIONS = ("mean", "sum")


@dataclass(frozen=True)
class Layer:
    name: str
    size: int
    activation: str
    bias: bool


@dataclass(frozen=True, eq=False)
class Network:
    """A small fully connected network trained by full-batch gradient descent on its samples."""

    name: str
    description: str
    input_names: tuple[str, ...]
    target_names: tuple[str, ...]
    layers: tuple[Layer, ...]
    loss: str
    inputs: np.ndarray  # (samples, inputs)
    targets: np.ndarray  # (samples, outputs)
    weights: tuple[np.ndarray, ...]  # weights[l-1][j, k], shape (size_l, size_{l-1})
    biases: tuple[np.ndarray | None, ...]
    learning_rates: tuple[float, ...]
    iterations: int
    naming: str = "layered"
    reduction: str = "mean"
    optimizers: tuple[str, ...] = ("sgd",)  # one training sheet per optimizer and learning rate
    hyperparameters: dict[str, float] = field(
        default_factory=lambda: {h.name: h.default for h in HYPERPARAMETERS.values()})

    @property
    def hyperparameters_used(self) -> tuple[str, ...]:
        """The hyperparameters its optimizers read: the inputs the Network sheet holds for them."""
        return hyperparameters_used(self.optimizers)

    @property
    def depth(self) -> int:
        return len(self.layers)

    @property
    def samples(self) -> int:
        return self.inputs.shape[0]

    def size(self, l: int) -> int:
        """Units in layer l (layer 0 is the input)."""
        return self.inputs.shape[1] if l == 0 else self.layers[l - 1].size

    @property
    def sizes(self) -> str:
        """The shape as people write it: 2-2-2."""
        return "-".join(str(self.size(l)) for l in range(self.depth + 1))

    def layer(self, l: int) -> Layer:
        return self.layers[l - 1]

    def activation_of(self, l: int) -> Activation:
        return ACTIVATIONS[self.layer(l).activation]

    @property
    def loss_fn(self) -> Loss:
        return LOSSES[self.loss]

    @cached_property
    def params(self) -> tuple[Param, ...]:
        """All trainable parameters in a fixed order: per layer its weights row by row, then biases."""
        out: list[Param] = []
        for l in range(1, self.depth + 1):
            out += [Param(l, j, k) for j in range(self.size(l)) for k in range(self.size(l - 1))]
            if self.layer(l).bias:
                out += [Param(l, j, None) for j in range(self.size(l))]
        return tuple(out)

    @cached_property
    def param_index(self) -> dict[Param, int]:
        return {p: i for i, p in enumerate(self.params)}

    def incoming(self, l: int, j: int) -> list[Param]:
        """The parameters feeding unit j of layer l: its weights, then its bias."""
        out = [Param(l, j, k) for k in range(self.size(l - 1))]
        return out + [Param(l, j, None)] if self.layer(l).bias else out

    def initial(self, p: Param) -> float:
        if p.k is None:
            return float(self.biases[p.l - 1][p.j])
        return float(self.weights[p.l - 1][p.j, p.k])

    def source(self, p: Param, s: int = 0) -> Input | A | None:
        """What a parameter multiplies: an input, a previous activation, or nothing (a bias)."""
        if p.k is None:
            return None
        return Input(p.k, s) if p.l == 1 else A(p.l - 1, p.k, s)

    @cached_property
    def names(self) -> Names:
        return Names(self)

    def label(self, q: Quantity) -> str:
        """The name a person reads in headers and equations (w1, h1, a_h1, E1, ∂E/∂w1, …)."""
        return q.label(self)

    def with_values(
        self,
        inputs: np.ndarray | None = None,
        targets: np.ndarray | None = None,
        initial: dict[Param, float] | None = None,
        hyperparameters: dict[str, float] | None = None,
    ) -> "Network":
        """A copy with other sample values, initial parameters or hyperparameters (as edited in a workbook)."""
        weights = [w.copy() for w in self.weights]
        biases = [None if b is None else b.copy() for b in self.biases]
        for p, v in (initial or {}).items():
            if p.k is None:
                biases[p.l - 1][p.j] = v
            else:
                weights[p.l - 1][p.j, p.k] = v
        return dataclasses.replace(
            self,
            inputs=self.inputs if inputs is None else np.asarray(inputs, float).reshape(self.inputs.shape),
            targets=self.targets if targets is None else np.asarray(targets, float).reshape(self.targets.shape),
            weights=tuple(weights),
            biases=tuple(biases),
            hyperparameters={**self.hyperparameters, **(hyperparameters or {})},
        )
