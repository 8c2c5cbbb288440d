"""A hypothesis strategy for random networks within bounds, built through the template parser."""

import numpy as np
from hypothesis import strategies as st

from sheetprop import template
from sheetprop.activations import ACTIVATIONS, LOSSES

ELEMENTWISE = sorted(name for name, act in ACTIVATIONS.items() if not act.vector)


@st.composite
def templates(draw, max_layers: int = 6, max_units: int = 12, max_samples: int = 4) -> dict:
    """A template dict: 1..max_layers layers of 1..max_units units, every activation, every loss that
    fits the output layer, bias on or off per layer, 1..max_samples samples; the numbers come from a
    seeded generator at a drawn scale."""
    depth = draw(st.integers(1, max_layers))
    loss = draw(st.sampled_from(sorted(LOSSES)))
    combined = LOSSES[loss].needs_activation is not None
    sizes = [draw(st.integers(1, max_units)) for _ in range(depth + 1)]
    if combined:
        sizes[-1] = draw(st.integers(2, max_units))
    activations = [draw(st.sampled_from(ELEMENTWISE)) for _ in range(depth - 1)]
    activations.append(LOSSES[loss].needs_activation if combined else draw(st.sampled_from(ELEMENTWISE)))
    biases = [draw(st.booleans()) for _ in range(depth)]
    samples = draw(st.integers(1, max_samples))
    scale = draw(st.sampled_from([0.1, 0.5, 1.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    layers = []
    for l in range(1, depth + 1):
        layer = {"size": sizes[l], "activation": activations[l - 1], "bias": biases[l - 1],
                 "weights": rng.uniform(-scale, scale, (sizes[l], sizes[l - 1])).tolist()}
        if biases[l - 1]:
            layer["biases"] = rng.uniform(-scale, scale, sizes[l]).tolist()
        layers.append(layer)
    rows = []
    for _ in range(samples):
        if combined:
            t = rng.dirichlet(np.ones(sizes[-1])) if rng.random() < 0.5 else np.eye(sizes[-1])[rng.integers(sizes[-1])]
        else:
            t = rng.uniform(-1, 1, sizes[-1]) if activations[-1] in ("identity", "leaky_relu") else rng.random(sizes[-1])
        rows.append({"inputs": rng.uniform(-1, 1, sizes[0]).tolist(), "targets": (t / t.sum()).tolist()
                     if combined else t.tolist()})
    return {"name": "random", "loss": loss, "reduction": draw(st.sampled_from(["mean", "sum"])),
            "naming": draw(st.sampled_from(["layered", "classic"])), "layers": layers, "samples": rows,
            "training": {"learning_rates": [0.1, 0.5], "iterations": 3}}


def networks(**bounds):
    return templates(**bounds).map(template.from_dict)
