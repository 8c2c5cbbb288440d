"""What the quantities and the names read of a network, a trace and the chain rule's expansion, as protocols.

:mod:`sheetprop.quantities` and :mod:`sheetprop.naming` are read by the modules that build networks and
traces (:mod:`sheetprop.network`, :mod:`sheetprop.reference`, :mod:`sheetprop.chainrule`); typing their
arguments by these protocols, not by those classes, keeps the imports one way.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from sheetprop.activations import Activation, Loss


class ParamView(Protocol):
    """A parameter: source k (None for a bias) → unit j of layer l."""

    l: int
    j: int
    k: int | None


class NamesView(Protocol):
    def sample(self, text: str, s: int) -> str: ...
    def layer(self, l: int) -> str: ...
    def unit(self, l: int, j: int) -> str: ...
    def activation(self, l: int, j: int) -> str: ...
    def delta(self, l: int, j: int) -> str: ...
    def param(self, p: Any) -> str: ...


class NetworkView(Protocol):
    """A network as the quantities read it (:class:`sheetprop.network.Network` is one)."""

    naming: str
    input_names: tuple[str, ...]
    target_names: tuple[str, ...]
    reduction: str
    inputs: np.ndarray
    targets: np.ndarray
    hyperparameters: dict[str, float]

    @property
    def names(self) -> NamesView: ...
    @property
    def depth(self) -> int: ...
    @property
    def samples(self) -> int: ...
    @property
    def loss_fn(self) -> Loss: ...
    @property
    def params(self) -> tuple[Any, ...]: ...
    @property
    def param_index(self) -> dict[Any, int]: ...
    def size(self, l: int) -> int: ...
    def layer(self, l: int) -> Any: ...
    def activation_of(self, l: int) -> Activation: ...
    def incoming(self, l: int, j: int) -> list[Any]: ...
    def source(self, p: Any, s: int = 0) -> Any: ...
    def label(self, q: Any) -> str: ...


class TraceView(Protocol):
    """The values of a trace as the quantities read them (:class:`sheetprop.reference.Trace` is one)."""

    network: NetworkView
    learning_rates: np.ndarray | None
    params: np.ndarray
    grads: np.ndarray
    sample_grads: np.ndarray
    z: tuple[np.ndarray, ...]
    a: tuple[np.ndarray, ...]
    deltas: tuple[np.ndarray, ...]
    loss_terms: np.ndarray
    states: dict[str, np.ndarray]

    @property
    def sample_losses(self) -> np.ndarray: ...
    @property
    def total(self) -> np.ndarray: ...
    def constant(self, value: float) -> np.ndarray: ...


class ChainView(Protocol):
    """The chain rule written out (:class:`sheetprop.chainrule.Expansion` is one)."""

    def steps(self, q: Any) -> str: ...
    def written_out(self, q: Any) -> str: ...
