"""The network description: layers, activations, loss, sample and initial values.

A template file (TOML, one network per file) is parsed and validated here; every other
module asks a :class:`Network` for sizes, names and initial values.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from sheetprop.activations import ACTIVATIONS, LOSSES

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"


class TemplateError(ValueError):
    """A template that cannot describe a network; the message names file and field."""


# Quantities of the network. Layer indices count from 1 (layer 0 is the input).
@dataclass(frozen=True)
class Input:
    k: int


@dataclass(frozen=True)
class Target:
    j: int


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


@dataclass(frozen=True)
class A:
    l: int
    j: int


@dataclass(frozen=True)
class LossTerm:
    j: int


@dataclass(frozen=True)
class Total:
    pass


@dataclass(frozen=True)
class Grad:
    param: Param


@dataclass(frozen=True)
class LearningRate:
    pass


Quantity = Input | Target | Param | Z | A | LossTerm | Total | Grad | LearningRate


@dataclass(frozen=True)
class Layer:
    name: str
    size: int
    activation: str
    bias: bool


@dataclass(frozen=True, eq=False)
class Network:
    """A small fully connected network with one training sample."""

    name: str
    description: str
    input_names: tuple[str, ...]
    target_names: tuple[str, ...]
    layers: tuple[Layer, ...]
    loss: str
    inputs: np.ndarray
    targets: np.ndarray
    weights: tuple[np.ndarray, ...]  # weights[l-1][j, k], shape (size_l, size_{l-1})
    biases: tuple[np.ndarray | None, ...]
    learning_rates: tuple[float, ...]
    iterations: int

    @property
    def depth(self) -> int:
        return len(self.layers)

    def size(self, l: int) -> int:
        """Units in layer l (layer 0 is the input)."""
        return len(self.inputs) if l == 0 else self.layers[l - 1].size

    def layer(self, l: int) -> Layer:
        return self.layers[l - 1]

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
    def _param_names(self) -> dict[Param, str]:
        weights = [p for p in self.params if p.k is not None]
        names = {p: f"w{i}" for i, p in enumerate(weights, start=1)}
        names.update({p: f"b_{self.unit_name(p.l, p.j)}" for p in self.params if p.k is None})
        return names

    def initial(self, p: Param) -> float:
        if p.k is None:
            return float(self.biases[p.l - 1][p.j])
        return float(self.weights[p.l - 1][p.j, p.k])

    def unit_name(self, l: int, j: int) -> str:
        if l == 0:
            return self.input_names[j]
        name = self.layer(l).name
        return f"{name}_{j + 1}" if name[-1].isdigit() else f"{name}{j + 1}"

    def label(self, q: Quantity) -> str:
        """The name a person reads in headers and equations (w1, h1, a_h1, E1, ∂E/∂w1, …)."""
        match q:
            case Input(k):
                return self.input_names[k]
            case Target(j):
                return self.target_names[j]
            case Param():
                return self._param_names[q]
            case Z(l, j):
                return self.unit_name(l, j)
            case A(l, j):
                return f"a_{self.unit_name(l, j)}"
            case LossTerm(j):
                return f"E{j + 1}"
            case Total():
                return "E_total"
            case Grad(p):
                return f"∂E/∂{self.label(p)}"
            case LearningRate():
                return "η"
        raise TypeError(f"not a quantity: {q!r}")

    def source(self, p: Param) -> Input | A | None:
        """What a parameter multiplies: an input, a previous activation, or nothing (a bias)."""
        if p.k is None:
            return None
        return Input(p.k) if p.l == 1 else A(p.l - 1, p.k)

    def activation_of(self, l: int) -> Any:
        return ACTIVATIONS[self.layer(l).activation]

    @property
    def loss_fn(self) -> Any:
        return LOSSES[self.loss]

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
            inputs=self.inputs if inputs is None else np.asarray(inputs, float),
            targets=self.targets if targets is None else np.asarray(targets, float),
            weights=tuple(weights),
            biases=tuple(biases),
        )

    def to_dict(self) -> dict[str, Any]:
        """The template form of this network (what :func:`from_dict` reads)."""
        layers = []
        for l, layer in enumerate(self.layers, start=1):
            entry: dict[str, Any] = {
                "name": layer.name,
                "size": layer.size,
                "activation": layer.activation,
                "bias": layer.bias,
                "weights": self.weights[l - 1].tolist(),
            }
            if layer.bias:
                entry["biases"] = self.biases[l - 1].tolist()
            layers.append(entry)
        return {
            "name": self.name,
            "description": self.description,
            "loss": self.loss,
            "inputs": list(self.input_names),
            "targets": list(self.target_names),
            "layers": layers,
            "sample": {"inputs": self.inputs.tolist(), "targets": self.targets.tolist()},
            "training": {"learning_rates": list(self.learning_rates), "iterations": self.iterations},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


def _field(data: dict, key: str, kind: type | tuple[type, ...], where: str, expected: str) -> Any:
    if key not in data:
        raise TemplateError(f"{where}: missing field '{key}' ({expected})")
    value = data[key]
    if isinstance(value, bool) and kind is not bool:
        raise TemplateError(f"{where}: field '{key}' must be {expected}, got {value!r}")
    if not isinstance(value, kind):
        raise TemplateError(f"{where}: field '{key}' must be {expected}, got {value!r}")
    return value


def _numbers(value: Any, where: str, key: str, n: int) -> np.ndarray:
    ok = (
        isinstance(value, list)
        and len(value) == n
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )
    if not ok or not all(math.isfinite(v) for v in value):
        raise TemplateError(f"{where}: field '{key}' must be a list of {n} finite numbers, got {value!r}")
    return np.asarray(value, dtype=float)


def from_dict(data: dict, source: str = "template") -> Network:
    """Validate a template's contents and build the network; errors name ``source`` and the field."""
    name = _field(data, "name", str, source, "a string")
    description = data.get("description", "")
    loss = _field(data, "loss", str, source, f"one of {', '.join(LOSSES)}")
    if loss not in LOSSES:
        raise TemplateError(f"{source}: field 'loss' must be one of {', '.join(LOSSES)}, got {loss!r}")
    layer_data = _field(data, "layers", list, source, "a list of [[layers]] tables")
    if not layer_data:
        raise TemplateError(f"{source}: field 'layers' must hold at least one layer")
    sample = _field(data, "sample", dict, source, "a [sample] table with inputs and targets")
    inputs_raw = _field(sample, "inputs", list, f"{source}: sample", "a list of numbers")
    n_in = len(inputs_raw)
    if n_in == 0:
        raise TemplateError(f"{source}: sample: field 'inputs' must hold at least one number")
    inputs = _numbers(inputs_raw, f"{source}: sample", "inputs", n_in)

    layers: list[Layer] = []
    weights: list[np.ndarray] = []
    biases: list[np.ndarray | None] = []
    prev = n_in
    for i, entry in enumerate(layer_data, start=1):
        where = f"{source}: layers[{i}]"
        if not isinstance(entry, dict):
            raise TemplateError(f"{where}: must be a table")
        default_name = "o" if i == len(layer_data) else ("h" if len(layer_data) == 2 else f"h{i}")
        lname = entry.get("name", default_name)
        if not isinstance(lname, str) or not lname.isidentifier():
            raise TemplateError(f"{where}: field 'name' must be a short identifier, got {lname!r}")
        size = _field(entry, "size", int, where, "a positive integer")
        if size < 1:
            raise TemplateError(f"{where}: field 'size' must be a positive integer, got {size}")
        act = _field(entry, "activation", str, where, f"one of {', '.join(ACTIVATIONS)}")
        if act not in ACTIVATIONS:
            raise TemplateError(f"{where}: field 'activation' must be one of {', '.join(ACTIVATIONS)}, got {act!r}")
        bias = entry.get("bias", False)
        if not isinstance(bias, bool):
            raise TemplateError(f"{where}: field 'bias' must be true or false, got {bias!r}")
        w = _field(entry, "weights", list, where, f"{size} rows of {prev} numbers")
        if len(w) != size:
            raise TemplateError(f"{where}: field 'weights' must have {size} rows of {prev} numbers, got {len(w)} rows")
        weights.append(np.stack([_numbers(row, where, "weights", prev) for row in w]))
        if bias:
            biases.append(_numbers(_field(entry, "biases", list, where, f"{size} numbers"), where, "biases", size))
        else:
            biases.append(None)
        layers.append(Layer(lname, size, act, bias))
        prev = size
    if len({layer.name for layer in layers}) != len(layers):
        raise TemplateError(f"{source}: field 'layers': layer names must differ")

    targets = _numbers(_field(sample, "targets", list, f"{source}: sample", "a list of numbers"),
                       f"{source}: sample", "targets", prev)
    input_names = tuple(data.get("inputs", [f"i{k + 1}" for k in range(n_in)]))
    target_names = tuple(data.get("targets", [f"t{j + 1}" for j in range(prev)]))
    for key, names, n in (("inputs", input_names, n_in), ("targets", target_names, prev)):
        if len(names) != n or not all(isinstance(s, str) and s.isidentifier() for s in names):
            raise TemplateError(f"{source}: field '{key}' must list {n} names, got {list(names)!r}")

    training = data.get("training", {})
    if not isinstance(training, dict):
        raise TemplateError(f"{source}: field 'training' must be a table")
    lrs = training.get("learning_rates", [0.5])
    if not isinstance(lrs, list) or not lrs:
        raise TemplateError(f"{source}: training: field 'learning_rates' must be a non-empty list")
    lrs_arr = _numbers(lrs, f"{source}: training", "learning_rates", len(lrs))
    if (lrs_arr <= 0).any():
        raise TemplateError(f"{source}: training: field 'learning_rates' must hold positive numbers")
    iterations = training.get("iterations", 100)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise TemplateError(f"{source}: training: field 'iterations' must be a positive integer")

    return Network(
        name=name,
        description=str(description),
        input_names=input_names,
        target_names=target_names,
        layers=tuple(layers),
        loss=loss,
        inputs=inputs,
        targets=targets,
        weights=tuple(weights),
        biases=tuple(biases),
        learning_rates=tuple(float(v) for v in lrs_arr),
        iterations=iterations,
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
