"""The numpy reference: forward pass, analytic gradients and updates for every iteration.

All learning rates train side by side (a leading batch axis) and all samples go through
together (full-batch gradient descent), so one loop over the iterations fills every table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sheetprop.network import Network
from sheetprop.quantities import Quantity


@dataclass(frozen=True, eq=False)
class Trace:
    """Every value of every iteration, for each learning rate: arrays of shape (rates, iterations + 1, …)."""

    network: Network
    learning_rates: np.ndarray
    params: np.ndarray  # (R, N+1, P)
    grads: np.ndarray  # (R, N+1, P)
    sample_grads: np.ndarray  # (R, N+1, S, P)
    z: tuple[np.ndarray, ...]  # per layer (R, N+1, S, size)
    a: tuple[np.ndarray, ...]
    deltas: tuple[np.ndarray, ...]
    loss_terms: np.ndarray  # (R, N+1, S, outputs)

    @cached_property
    def sample_losses(self) -> np.ndarray:
        return self.loss_terms.sum(axis=-1)

    @cached_property
    def total(self) -> np.ndarray:
        losses = self.sample_losses
        return losses.mean(axis=-1) if self.network.reduction == "mean" else losses.sum(axis=-1)

    def values(self, q: Quantity) -> np.ndarray:
        """The values of one quantity, shape (rates, iterations + 1)."""
        return q.values(self)

    def constant(self, value: float) -> np.ndarray:
        """A value that does not change, in the shape of every other quantity's values."""
        return np.full(self.total.shape, value)

    def first_below(self, threshold: float) -> list[int | None]:
        """Per learning rate, the first iteration whose E_total is below ``threshold``."""
        out: list[int | None] = []
        for row in self.total:
            hits = np.flatnonzero(row < threshold)
            out.append(int(hits[0]) if hits.size else None)
        return out


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


def train(net: Network, learning_rates: list[float] | np.ndarray, iterations: int) -> Trace:
    """Full-batch gradient descent from the initial values, one row per iteration 0..N."""
    lrs = np.asarray(learning_rates, dtype=float)
    r, n, s = len(lrs), iterations + 1, net.samples
    flat = np.tile(_pack(net), (r, 1))
    p = flat.shape[1]
    params, grads = np.empty((r, n, p)), np.empty((r, n, p))
    sample_grads = np.empty((r, n, s, p))
    zs = [np.empty((r, n, s, net.size(l))) for l in range(1, net.depth + 1)]
    acts = [np.empty_like(z) for z in zs]
    deltas = [np.empty_like(z) for z in zs]
    loss_terms = np.empty((r, n, s, net.size(net.depth)))
    scale = 1.0 / s if net.reduction == "mean" else 1.0
    with np.errstate(over="ignore", under="ignore"):
        for it in range(n):
            weights, biases = _unpack(net, flat)
            z, a = forward(net, weights, biases)
            d, g = backward(net, weights, z, a)
            params[:, it] = flat
            sample_grads[:, it] = g
            grads[:, it] = g.sum(axis=1) * scale
            for l in range(net.depth):
                zs[l][:, it], acts[l][:, it], deltas[l][:, it] = z[l], a[l], d[l]
            loss_terms[:, it] = net.loss_fn.value(a[-1], net.targets, z[-1], net.size(net.depth))
            flat = flat - lrs[:, None] * grads[:, it]
    return Trace(net, lrs, params, grads, sample_grads, tuple(zs), tuple(acts), tuple(deltas), loss_terms)
