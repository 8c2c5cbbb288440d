"""The network description: layers, activations, loss, samples and initial values.

A template file (TOML, one network per file) is parsed and validated here; every other
module asks a :class:`Network` for sizes, names and initial values.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from sheetprop.activations import ACTIVATIONS, LOSSES, Activation, Loss

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
NAMINGS = ("layered", "classic")
REDUCTIONS = ("mean", "sum")
INITIALIZERS = ("xavier", "uniform", "normal")
_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def sample_mark(s: int) -> str:
    """The superscript that marks sample s (0-based): ⁽¹⁾, ⁽²⁾, …"""
    return f"⁽{str(s + 1).translate(_SUPERSCRIPT)}⁾"


class TemplateError(ValueError):
    """A template that cannot describe a network; the message names file and field."""


# Quantities of the network. Layers count from 1 (layer 0 is the input); s is the sample.
@dataclass(frozen=True)
class Input:
    k: int
    s: int = 0


@dataclass(frozen=True)
class Target:
    j: int
    s: int = 0


@dataclass(frozen=True)
class Param:
    """A weight (source k → unit j of layer l) or, with ``k=None``, the bias of unit j."""

    l: int
    j: int
    k: int | None


@dataclass(frozen=True)
class Z:
    l: int
    j: int
    s: int = 0


@dataclass(frozen=True)
class A:
    l: int
    j: int
    s: int = 0


@dataclass(frozen=True)
class Delta:
    """δ = ∂E/∂z of one unit for one sample."""

    l: int
    j: int
    s: int = 0


@dataclass(frozen=True)
class LossTerm:
    j: int
    s: int = 0


@dataclass(frozen=True)
class SampleLoss:
    s: int


@dataclass(frozen=True)
class Total:
    pass


@dataclass(frozen=True)
class SampleGrad:
    """One sample's share of ∂E_total/∂p (only written when there are several samples)."""

    param: Param
    s: int


@dataclass(frozen=True)
class Grad:
    param: Param


@dataclass(frozen=True)
class LearningRate:
    pass


Quantity = Input | Target | Param | Z | A | Delta | LossTerm | SampleLoss | Total | SampleGrad | Grad | LearningRate


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

    @property
    def depth(self) -> int:
        return len(self.layers)

    @property
    def samples(self) -> int:
        return self.inputs.shape[0]

    def size(self, l: int) -> int:
        """Units in layer l (layer 0 is the input)."""
        return self.inputs.shape[1] if l == 0 else self.layers[l - 1].size

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

    def initial(self, p: Param) -> float:
        if p.k is None:
            return float(self.biases[p.l - 1][p.j])
        return float(self.weights[p.l - 1][p.j, p.k])

    def source(self, p: Param, s: int = 0) -> Input | A | None:
        """What a parameter multiplies: an input, a previous activation, or nothing (a bias)."""
        if p.k is None:
            return None
        return Input(p.k, s) if p.l == 1 else A(p.l - 1, p.k, s)

    # -- names ----------------------------------------------------------------------------
    def _index(self, *indices: int) -> str:
        wide = max(self.size(l) for l in range(self.depth + 1)) >= 10
        return ",".join(str(i + 1) for i in indices) if wide else "".join(str(i + 1) for i in indices)

    @cached_property
    def _param_names(self) -> dict[Param, str]:
        if self.naming == "classic":
            weights = [p for p in self.params if p.k is not None]
            names = {p: f"w{i}" for i, p in enumerate(weights, start=1)}
            names.update({p: f"b_{self.unit_name(p.l, p.j)}" for p in self.params if p.k is None})
            return names
        return {p: f"b[{p.l}]_{self._index(p.j)}" if p.k is None else f"w[{p.l}]_{self._index(p.j, p.k)}"
                for p in self.params}

    def unit_name(self, l: int, j: int) -> str:
        """The name of a unit's weighted sum: h1 (classic) or z[1]_1 (layered); inputs by their names."""
        if l == 0:
            return self.input_names[j]
        if self.naming == "classic":
            name = self.layer(l).name
            return f"{name}_{j + 1}" if name[-1].isdigit() else f"{name}{j + 1}"
        return f"z[{l}]_{self._index(j)}"

    def _activation_name(self, l: int, j: int) -> str:
        if self.naming == "classic":
            return f"a_{self.unit_name(l, j)}"
        return f"a[{l}]_{self._index(j)}"

    def _sample(self, text: str, s: int) -> str:
        return text if self.samples == 1 else text + sample_mark(s)

    def label(self, q: Quantity) -> str:
        """The name a person reads in headers and equations (w1, h1, a_h1, E1, ∂E/∂w1, …)."""
        match q:
            case Input(k, s):
                return self._sample(self.input_names[k], s)
            case Target(j, s):
                return self._sample(self.target_names[j], s)
            case Param():
                return self._param_names[q]
            case Z(l, j, s):
                return self._sample(self.unit_name(l, j), s)
            case A(l, j, s):
                return self._sample(self._activation_name(l, j), s)
            case Delta(l, j, s):
                if self.naming == "classic":
                    return self._sample(f"δ_{self.unit_name(l, j)}", s)
                return self._sample(f"δ[{l}]_{self._index(j)}", s)
            case LossTerm(j, s):
                return self._sample(f"E{j + 1}", s)
            case SampleLoss(s):
                return "E" + sample_mark(s)
            case Total():
                return "E_total"
            case SampleGrad(p, s):
                return f"∂E{sample_mark(s)}/∂{self.label(p)}"
            case Grad(p):
                return f"∂E/∂{self.label(p)}"
            case LearningRate():
                return "η"
        raise TypeError(f"not a quantity: {q!r}")

    # -- copies and serialisation ---------------------------------------------------------
    def with_values(
        self,
        inputs: np.ndarray | None = None,
        targets: np.ndarray | None = None,
        initial: dict[Param, float] | None = None,
    ) -> "Network":
        """A copy with other sample values or initial parameters (as edited in a workbook)."""
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
        )

    def to_dict(self) -> dict[str, Any]:
        """The template form of this network (what :func:`from_dict` reads), weights made explicit."""
        layers = []
        for l, layer in enumerate(self.layers, start=1):
            entry: dict[str, Any] = {"name": layer.name, "size": layer.size, "activation": layer.activation,
                                     "bias": layer.bias, "weights": self.weights[l - 1].tolist()}
            if layer.bias:
                entry["biases"] = self.biases[l - 1].tolist()
            layers.append(entry)
        return {
            "name": self.name,
            "description": self.description,
            "naming": self.naming,
            "loss": self.loss,
            "reduction": self.reduction,
            "inputs": list(self.input_names),
            "targets": list(self.target_names),
            "layers": layers,
            "samples": [{"inputs": x.tolist(), "targets": t.tolist()} for x, t in zip(self.inputs, self.targets)],
            "training": {"learning_rates": list(self.learning_rates), "iterations": self.iterations},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


# -- parsing and validation -------------------------------------------------------------------
def _fail(where: str, key: str, expected: str, got: Any = dataclasses.MISSING) -> TemplateError:
    if got is dataclasses.MISSING:
        return TemplateError(f"{where}: missing field '{key}' ({expected})")
    return TemplateError(f"{where}: field '{key}' must be {expected}, got {got!r}")


def _field(data: dict, key: str, kind: type | tuple[type, ...], where: str, expected: str,
           default: Any = dataclasses.MISSING) -> Any:
    if key not in data:
        if default is not dataclasses.MISSING:
            return default
        raise _fail(where, key, expected)
    value = data[key]
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise _fail(where, key, expected, value)
    return value


def _choice(data: dict, key: str, options, where: str, default: Any = dataclasses.MISSING) -> str:
    expected = f"one of {', '.join(options)}"
    value = _field(data, key, str, where, expected, default)
    if value not in options:
        raise _fail(where, key, expected, value)
    return value


def _numbers(value: Any, where: str, key: str, n: int) -> np.ndarray:
    ok = (
        isinstance(value, list)
        and len(value) == n
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )
    if not ok or not all(math.isfinite(v) for v in value):
        raise _fail(where, key, f"a list of {n} finite numbers", value)
    return np.asarray(value, dtype=float)


def _samples(data: dict, source: str) -> list[dict]:
    if "samples" in data:
        samples = _field(data, "samples", list, source, "a list of [[samples]] tables with inputs and targets")
    else:
        samples = [_field(data, "sample", dict, source, "a [sample] table (or [[samples]]) with inputs and targets")]
    if not samples or not all(isinstance(s, dict) for s in samples):
        raise _fail(source, "samples", "a non-empty list of tables with inputs and targets", samples)
    return samples


def _initializer(data: dict, source: str) -> tuple[str, np.random.Generator, float]:
    init = _field(data, "init", dict, source, "a table with kind, seed and scale", {})
    where = f"{source}: init"
    kind = _choice(init, "kind", INITIALIZERS, where, "xavier")
    seed = _field(init, "seed", int, where, "an integer", 0)
    scale = _field(init, "scale", (int, float), where, "a positive number", 1.0)
    if not scale > 0:
        raise _fail(where, "scale", "a positive number", scale)
    return kind, np.random.default_rng(seed), float(scale)


def _draw(kind: str, rng: np.random.Generator, scale: float, shape: tuple[int, int]) -> np.ndarray:
    if kind == "xavier":
        bound = scale * math.sqrt(6.0 / (shape[0] + shape[1]))
        return rng.uniform(-bound, bound, shape)
    if kind == "uniform":
        return rng.uniform(-scale, scale, shape)
    return rng.normal(0.0, scale, shape)


def from_dict(data: dict, source: str = "template") -> Network:
    """Validate a template's contents and build the network; errors name ``source`` and the field."""
    name = _field(data, "name", str, source, "a string")
    description = _field(data, "description", str, source, "a string", "")
    naming = _choice(data, "naming", NAMINGS, source, "layered")
    loss = _choice(data, "loss", tuple(LOSSES), source)
    reduction = _choice(data, "reduction", REDUCTIONS, source, "mean")
    layer_data = _field(data, "layers", list, source, "a list of [[layers]] tables")
    if not layer_data:
        raise _fail(source, "layers", "a list of at least one [[layers]] table", layer_data)
    samples = _samples(data, source)
    first = samples[0]
    n_in = len(_field(first, "inputs", list, f"{source}: samples[1]", "a list of numbers"))
    if n_in == 0:
        raise _fail(f"{source}: samples[1]", "inputs", "a list of at least one number", [])
    init = _initializer(data, source)

    layers: list[Layer] = []
    weights: list[np.ndarray] = []
    biases: list[np.ndarray | None] = []
    prev = n_in
    for i, entry in enumerate(layer_data, start=1):
        where = f"{source}: layers[{i}]"
        if not isinstance(entry, dict):
            raise TemplateError(f"{where}: must be a table")
        last = i == len(layer_data)
        default_name = "o" if last else ("h" if len(layer_data) == 2 else f"h{i}")
        lname = _field(entry, "name", str, where, "a short identifier", default_name)
        if not lname.isidentifier():
            raise _fail(where, "name", "a short identifier", lname)
        size = _field(entry, "size", int, where, "a positive integer")
        if size < 1:
            raise _fail(where, "size", "a positive integer", size)
        act = _choice(entry, "activation", tuple(ACTIVATIONS), where)
        if ACTIVATIONS[act].vector and not last:
            raise _fail(where, "activation", "elementwise (softmax belongs on the last layer)", act)
        bias = _field(entry, "bias", bool, where, "true or false", False)
        if "weights" in entry:
            w = _field(entry, "weights", list, where, f"{size} rows of {prev} numbers")
            if len(w) != size:
                raise _fail(where, "weights", f"{size} rows of {prev} numbers", w)
            weights.append(np.stack([_numbers(row, where, "weights", prev) for row in w]))
        else:
            weights.append(_draw(*init, (size, prev)))
        if bias:
            b = entry.get("biases", [0.0] * size)
            biases.append(_numbers(b, where, "biases", size))
        else:
            biases.append(None)
        layers.append(Layer(lname, size, act, bias))
        prev = size
    if naming == "classic" and len({layer.name for layer in layers}) != len(layers):
        raise _fail(source, "layers", "layers with different names", [layer.name for layer in layers])

    out_act = ACTIVATIONS[layers[-1].activation]
    loss_fn = LOSSES[loss]
    if loss_fn.needs_activation and layers[-1].activation != loss_fn.needs_activation:
        raise _fail(f"{source}: layers[{len(layers)}]", "activation",
                    f"{loss_fn.needs_activation} (the {loss} loss needs it)", layers[-1].activation)
    if out_act.vector and not loss_fn.needs_activation:
        raise _fail(source, "loss", "softmax_cross_entropy with a softmax output layer", loss)
    if loss_fn.needs_activation and prev < 2:
        raise _fail(f"{source}: layers[{len(layers)}]", "size", "at least 2 with softmax + cross-entropy", prev)

    inputs, targets = [], []
    for s, sample in enumerate(samples, start=1):
        where = f"{source}: samples[{s}]"
        inputs.append(_numbers(_field(sample, "inputs", list, where, f"{n_in} numbers"), where, "inputs", n_in))
        targets.append(_numbers(_field(sample, "targets", list, where, f"{prev} numbers"), where, "targets", prev))
    if loss_fn.combined:
        for s, t in enumerate(targets, start=1):
            if (t < 0).any() or abs(t.sum() - 1) > 1e-9:
                raise _fail(f"{source}: samples[{s}]", "targets", "probabilities summing to 1 (cross-entropy)",
                            t.tolist())
    input_names = tuple(_field(data, "inputs", list, source, "a list of names", [f"i{k + 1}" for k in range(n_in)]))
    target_names = tuple(_field(data, "targets", list, source, "a list of names", [f"t{j + 1}" for j in range(prev)]))
    for key, names, n in (("inputs", input_names, n_in), ("targets", target_names, prev)):
        if len(names) != n or not all(isinstance(v, str) and re.fullmatch(r"[A-Za-z_]\w*", v) for v in names):
            raise _fail(source, key, f"a list of {n} names", list(names))

    training = _field(data, "training", dict, source, "a table", {})
    where = f"{source}: training"
    lrs = _field(training, "learning_rates", list, where, "a non-empty list of positive numbers", [0.5])
    lrs_arr = _numbers(lrs, where, "learning_rates", len(lrs))
    if not lrs or (lrs_arr <= 0).any():
        raise _fail(where, "learning_rates", "a non-empty list of positive numbers", lrs)
    iterations = _field(training, "iterations", int, where, "a positive integer", 100)
    if iterations < 1:
        raise _fail(where, "iterations", "a positive integer", iterations)

    return Network(
        name=name,
        description=description,
        input_names=input_names,
        target_names=target_names,
        layers=tuple(layers),
        loss=loss,
        inputs=np.stack(inputs),
        targets=np.stack(targets),
        weights=tuple(weights),
        biases=tuple(biases),
        learning_rates=tuple(float(v) for v in lrs_arr),
        iterations=iterations,
        naming=naming,
        reduction=reduction,
    )


def template_path(name_or_path: str) -> Path:
    """Resolve a template name (``classic``) or a path to a TOML file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        return candidate
    return TEMPLATE_DIR / f"{name_or_path}.toml"


def load(name_or_path: str) -> Network:
    """Read and validate a template; raise :class:`TemplateError` with one readable line."""
    path = template_path(name_or_path)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in TEMPLATE_DIR.glob("*.toml")))
        raise TemplateError(f"unknown template {name_or_path!r} (known: {known}; or give a path to a .toml file)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{path}: not valid TOML: {exc}") from None
    return from_dict(data, str(path))


def available() -> list[Network]:
    """The templates shipped in ``templates/``."""
    return [load(str(p)) for p in sorted(TEMPLATE_DIR.glob("*.toml"))]
