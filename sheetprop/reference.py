"""The numpy reference: forward pass, analytic gradients and updates for every iteration.

All learning rates train side by side (a leading batch axis), so one loop over the
iterations fills every training table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sheetprop.network import A, Grad, Input, LearningRate, LossTerm, Network, Param, Quantity, Target, Total, Z


@dataclass(frozen=True, eq=False)
class Trace:
    """Every value of every iteration, for each learning rate: arrays of shape (rates, iterations + 1)."""

    network: Network
    learning_rates: np.ndarray
    params: np.ndarray  # (R, N+1, P)
    grads: np.ndarray  # (R, N+1, P)
    z: tuple[np.ndarray, ...]  # per layer (R, N+1, size)
    a: tuple[np.ndarray, ...]
    loss_terms: np.ndarray  # (R, N+1, outputs)

    @property
    def total(self) -> np.ndarray:
        return self.loss_terms.sum(axis=-1)

    def values(self, q: Quantity) -> np.ndarray:
        """The values of one quantity, shape (rates, iterations + 1)."""
        net = self.network
        shape = self.total.shape
        match q:
            case Param():
                return self.params[..., net.params.index(q)]
            case Grad(p):
                return self.grads[..., net.params.index(p)]
            case Z(l, j):
                return self.z[l - 1][..., j]
            case A(l, j):
                return self.a[l - 1][..., j]
            case LossTerm(j):
                return self.loss_terms[..., j]
            case Total():
                return self.total
            case Input(k):
                return np.full(shape, net.inputs[k])
            case Target(j):
                return np.full(shape, net.targets[j])
            case LearningRate():
                return np.broadcast_to(self.learning_rates[:, None], shape)
        raise TypeError(f"not a quantity: {q!r}")

    def first_below(self, threshold: float) -> list[int | None]:
        """Per learning rate, the first iteration whose E_total is below ``threshold``."""
        out: list[int | None] = []
        for row in self.total:
            hits = np.flatnonzero(row < threshold)
            out.append(int(hits[0]) if hits.size else None)
        return out


def forward(net: Network, weights: list[np.ndarray], biases: list[np.ndarray | None]):
    """Batched forward pass: weights[l] has shape (R, out, in); returns z, a per layer."""
    act = np.broadcast_to(net.inputs, (weights[0].shape[0], net.size(0)))
    zs, acts = [], []
    for l in range(1, net.depth + 1):
        z = np.einsum("rjk,rk->rj", weights[l - 1], act)
        if biases[l - 1] is not None:
            z = z + biases[l - 1]
        act = net.activation_of(l).value(z)
        zs.append(z)
        acts.append(act)
    return zs, acts


def backward(net: Network, weights, zs, acts):
    """Deltas δ_l = ∂E_total/∂z_l and the parameter gradients in ``net.params`` order."""
    loss = net.loss_fn
    out = net.depth
    delta = loss.gradient(acts[-1], net.targets, net.size(out)) * net.activation_of(out).derivative(zs[-1], acts[-1])
    deltas = [None] * out
    deltas[out - 1] = delta
    for l in range(out - 1, 0, -1):
        back = np.einsum("rm,rmj->rj", deltas[l], weights[l])
        deltas[l - 1] = back * net.activation_of(l).derivative(zs[l - 1], acts[l - 1])
    r = weights[0].shape[0]
    inputs = np.broadcast_to(net.inputs, (r, net.size(0)))
    grads = []
    for l in range(1, out + 1):
        prev = inputs if l == 1 else acts[l - 2]
        grads.append(np.einsum("rj,rk->rjk", deltas[l - 1], prev).reshape(r, -1))
        if net.layer(l).bias:
            grads.append(deltas[l - 1])
    return np.concatenate(grads, axis=1)


def _pack(net: Network, weights, biases) -> np.ndarray:
    r = weights[0].shape[0]
    parts = []
    for l in range(1, net.depth + 1):
        parts.append(weights[l - 1].reshape(r, -1))
        if biases[l - 1] is not None:
            parts.append(biases[l - 1])
    return np.concatenate(parts, axis=1)


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
    r, n = len(lrs), iterations + 1
    flat = np.tile(_pack(net, [w[None] for w in net.weights],
                         [None if b is None else b[None] for b in net.biases]), (r, 1))
    params = np.empty((r, n, flat.shape[1]))
    grads = np.empty_like(params)
    zs = [np.empty((r, n, net.size(l))) for l in range(1, net.depth + 1)]
    acts = [np.empty_like(z) for z in zs]
    loss_terms = np.empty((r, n, net.size(net.depth)))
    with np.errstate(over="ignore", under="ignore"):
        for it in range(n):
            weights, biases = _unpack(net, flat)
            z, a = forward(net, weights, biases)
            g = backward(net, weights, z, a)
            params[:, it] = flat
            grads[:, it] = g
            for l in range(net.depth):
                zs[l][:, it] = z[l]
                acts[l][:, it] = a[l]
            loss_terms[:, it] = net.loss_fn.value(a[-1], net.targets, net.size(net.depth))
            flat = flat - lrs[:, None] * g
    return Trace(net, lrs, params, grads, tuple(zs), tuple(acts), loss_terms)
