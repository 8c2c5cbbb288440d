"""The numpy reference: forward pass, analytic gradients and updates for every iteration.

All learning rates train side by side (a leading batch axis) and all samples go through
together (full-batch gradient descent), so one loop over the iterations fills every table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator

import numpy as np

from sheetprop.network import Network
from sheetprop.quantities import Quantity
from sheetprop.update import OPTIMIZERS


@dataclass(frozen=True, eq=False)
class Trace:
    """Values of the quantities, for each learning rate and iteration (arrays of shape (rates, iterations, …),
    iterations from ``first``), or at a batch of parameter vectors (shape (batch, …), see :func:`evaluate`)."""

    network: Network
    learning_rates: np.ndarray | None
    params: np.ndarray  # (…, P)
    grads: np.ndarray  # (…, P)
    sample_grads: np.ndarray  # (…, S, P)
    z: tuple[np.ndarray, ...]  # per layer (…, S, size)
    a: tuple[np.ndarray, ...]
    deltas: tuple[np.ndarray, ...]
    loss_terms: np.ndarray  # (…, S, outputs)
    first: int = 0  # the iteration of the first row
    states: dict[str, np.ndarray] = field(default_factory=dict)  # the optimizer's, by kind: (…, P)

    # A diverged run holds inf and NaN: what is computed from them is inf or NaN too, without a warning
    # (the summary and verify report the run as diverged).
    @cached_property
    def sample_losses(self) -> np.ndarray:
        with np.errstate(all="ignore"):
            return self.loss_terms.sum(axis=-1)

    @cached_property
    def total(self) -> np.ndarray:
        losses = self.sample_losses
        with np.errstate(all="ignore"):
            return losses.mean(axis=-1) if self.network.reduction == "mean" else losses.sum(axis=-1)

    def values(self, q: Quantity) -> np.ndarray:
        """The values of one quantity, shape (rates, iterations)."""
        with np.errstate(all="ignore"):
            return q.values(self)

    def constant(self, value: float) -> np.ndarray:
        """A value that does not change, in the shape of every other quantity's values."""
        return np.full(self.total.shape, value)

    def first_below(self, threshold: float) -> list[int | None]:
        """Per learning rate, the first iteration whose E_total is below ``threshold``."""
        return [int(hits[0]) + self.first if hits.size else None
                for hits in map(np.flatnonzero, self.total < threshold)]

    def first_diverged(self) -> list[int | None]:
        """Per learning rate, the first iteration whose parameters or E_total are no longer finite numbers."""
        bad = ~(np.isfinite(self.params).all(axis=-1) & np.isfinite(self.total))
        return [int(hits[0]) + self.first if hits.size else None for hits in map(np.flatnonzero, bad)]



def forward(net: Network, weights: list[np.ndarray], biases: list[np.ndarray | None]):
    """Batched forward pass: weights[l] has shape (R, out, in); returns z, a per layer as (R, S, size)."""
    act = np.broadcast_to(net.inputs, (weights[0].shape[0],) + net.inputs.shape)
    zs, acts = [], []
    for l in range(1, net.depth + 1):
        z = np.einsum("rjk,rsk->rsj", weights[l - 1], act)
        if biases[l - 1] is not None:
            z = z + biases[l - 1][:, None, :]
        act = net.activation_of(l).value(z)
        zs.append(z)
        acts.append(act)
    return zs, acts


def backward(net: Network, weights, zs, acts):
    """Deltas δ_l = ∂E_s/∂z_l per sample, and per-sample parameter gradients (R, S, P) in ``net.params`` order."""
    loss = net.loss_fn
    out = net.depth
    n_out = net.size(out)
    upstream = loss.gradient(acts[-1], net.targets, n_out)
    deltas = [None] * out
    deltas[out - 1] = upstream if loss.combined else upstream * net.activation_of(out).derivative(zs[-1], acts[-1])
    for l in range(out - 1, 0, -1):
        back = np.einsum("rsm,rmj->rsj", deltas[l], weights[l])
        deltas[l - 1] = back * net.activation_of(l).derivative(zs[l - 1], acts[l - 1])
    r, s = weights[0].shape[0], net.samples
    inputs = np.broadcast_to(net.inputs, (r,) + net.inputs.shape)
    grads = []
    for l in range(1, out + 1):
        prev = inputs if l == 1 else acts[l - 2]
        grads.append(np.einsum("rsj,rsk->rsjk", deltas[l - 1], prev).reshape(r, s, -1))
        if net.layer(l).bias:
            grads.append(deltas[l - 1])
    return deltas, np.concatenate(grads, axis=2)


def _step(net: Network, flat: np.ndarray):
    """z, a, δ per layer, per-sample and combined gradients, and loss terms at each row of ``flat`` (B, P)."""
    weights, biases = _unpack(net, flat)
    z, a = forward(net, weights, biases)
    d, g = backward(net, weights, z, a)
    grads = g.sum(axis=1) * (1.0 / net.samples if net.reduction == "mean" else 1.0)
    return z, a, d, g, grads, net.loss_fn.value(a[-1], net.targets, z[-1], net.size(net.depth))


def evaluate(net: Network, params: np.ndarray) -> Trace:
    """Forward pass, loss, δs and gradients at each row of ``params`` (B, P, in ``net.params`` order), all
    rows at once; what overflows is inf or NaN, without a warning."""
    flat = np.asarray(params, dtype=float).reshape(-1, len(net.params))
    with np.errstate(all="ignore"):
        z, a, d, g, grads, loss_terms = _step(net, flat)
    return Trace(net, None, flat, grads, g, tuple(z), tuple(a), tuple(d), loss_terms)


def _pack(net: Network) -> np.ndarray:
    parts = []
    for l in range(1, net.depth + 1):
        parts.append(net.weights[l - 1].reshape(-1))
        if net.biases[l - 1] is not None:
            parts.append(net.biases[l - 1])
    return np.concatenate(parts)


def _unpack(net: Network, flat: np.ndarray):
    r = flat.shape[0]
    weights, biases, i = [], [], 0
    for l in range(1, net.depth + 1):
        n, m = net.size(l), net.size(l - 1)
        weights.append(flat[:, i : i + n * m].reshape(r, n, m))
        i += n * m
        if net.layer(l).bias:
            biases.append(flat[:, i : i + n])
            i += n
        else:
            biases.append(None)
    return weights, biases


def chunks(net: Network, learning_rates: list[float] | np.ndarray, iterations: int,
           size: int = 256, optimizer: str = "sgd") -> Iterator[Trace]:
    """Full-batch training by ``optimizer`` from the initial values, iterations 0..N in consecutive traces of
    ``size`` rows: a workbook of any length is written from them in constant memory. A diverging run turns
    into inf and NaN without a warning (the summary reports it as diverged)."""
    rule, h = OPTIMIZERS[optimizer], net.hyperparameters
    lrs = np.asarray(learning_rates, dtype=float)
    flat = np.tile(_pack(net), (len(lrs), 1))
    r, s, p = len(lrs), net.samples, flat.shape[1]
    state = None
    for first in range(0, iterations + 1, size):
        n = min(size, iterations + 1 - first)
        params, grads, sample_grads = np.empty((r, n, p)), np.empty((r, n, p)), np.empty((r, n, s, p))
        zs = [np.empty((r, n, s, net.size(l))) for l in range(1, net.depth + 1)]
        acts, deltas = [np.empty_like(z) for z in zs], [np.empty_like(z) for z in zs]
        loss_terms = np.empty((r, n, s, net.size(net.depth)))
        states = {kind: np.empty((r, n, p)) for kind in rule.states}
        with np.errstate(all="ignore"):
            for i in range(n):
                z, a, d, sample_grads[:, i], grads[:, i], loss_terms[:, i] = _step(net, flat)
                params[:, i] = flat
                for l in range(net.depth):
                    zs[l][:, i], acts[l][:, i], deltas[l][:, i] = z[l], a[l], d[l]
                state = rule.advance(state, grads[:, i], first + i + 1, h)
                for kind, value in state.items():
                    states[kind][:, i] = value
                flat = rule.apply(flat, lrs[:, None], grads[:, i], state, h)
        yield Trace(net, lrs, params, grads, sample_grads, tuple(zs), tuple(acts), tuple(deltas), loss_terms, first,
                    states)


def train(net: Network, learning_rates: list[float] | np.ndarray, iterations: int, optimizer: str = "sgd") -> Trace:
    """Full-batch training by ``optimizer`` from the initial values, one row per iteration 0..N, all in memory."""
    return next(chunks(net, learning_rates, iterations, size=iterations + 1, optimizer=optimizer))
