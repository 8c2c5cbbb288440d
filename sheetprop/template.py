"""Network templates: TOML files read, validated and turned into a :class:`Network`, and back.

A template is a file given by path or a name shipped in the package (``sheetprop.templates``,
read with :mod:`importlib.resources`, so it works the same from a checkout, an editable install
or a wheel). Validation errors name the file, the field and what was expected, in one line.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import tomllib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import numpy as np

from sheetprop.activations import ACTIVATIONS, LOSSES
from sheetprop.layout import DIAGRAM_ITERATION, DIAGRAM_SHEET, ERROR_TARGET_NAME, GRADIENT_STEP_NAME, lr_name
from sheetprop.naming import NAMINGS, defined_name_problem
from sheetprop.network import REDUCTIONS, Layer, Network
from sheetprop.quantities import Input, Target
from sheetprop.update import HYPERPARAMETERS, OPTIMIZERS, check_settings, specs

PACKAGE = "sheetprop.templates"
INITIALIZERS = ("xavier", "uniform", "normal")
# The keys each table of a template may hold, by the table's name as an error shows it.
KEYS = {
    "the top level": ("name", "description", "naming", "loss", "reduction", "inputs", "targets", "sample",
                      "samples", "init", "layers", "training"),
    "[init]": ("kind", "seed", "scale"),
    "[[samples]]": ("inputs", "targets"),
    "[[layers]]": ("name", "size", "activation", "bias", "weights", "biases"),
    "[training]": ("learning_rates", "iterations", "optimizer", "optimizers", *HYPERPARAMETERS),
}


class TemplateError(ValueError):
    """A template that cannot describe a network; the message names file and field."""


# -- finding and reading ----------------------------------------------------------------------
def shipped(package: str = PACKAGE) -> dict[str, Traversable]:
    """The templates shipped in ``package``, by name."""
    return {p.name.removesuffix(".toml"): p for p in sorted(resources.files(package).iterdir(), key=lambda p: p.name)
            if p.name.endswith(".toml") and p.is_file()}


def read_toml(name_or_path: str | Path, package: str = PACKAGE, kind: str = "template") -> tuple[str, dict]:
    """(where it came from, parsed TOML) for a shipped name or a path; errors are one line."""
    path = Path(name_or_path)
    known = shipped(package)
    if path.suffix != ".toml" and not path.exists() and str(name_or_path) in known:
        source, resource = f"{kind} {name_or_path}", known[str(name_or_path)]
        read = resource.read_text
    elif path.is_file():
        source, read = str(path), path.read_text
    elif path.suffix == ".toml" or path.exists():
        raise TemplateError(f"{path}: no such {kind} file")
    else:
        raise TemplateError(f"unknown {kind} {str(name_or_path)!r} (known: {', '.join(known) or 'none'}; "
                            f"or give a path to a .toml file)")
    try:
        return source, tomllib.loads(read(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{source}: not valid TOML: {exc}") from None


def load(name_or_path: str | Path) -> Network:
    """Read and validate a template; raise :class:`TemplateError` with one readable line."""
    source, data = read_toml(name_or_path)
    return from_dict(data, source)


def available() -> list[Network]:
    """The networks shipped with sheetprop."""
    return [load(name) for name in shipped()]


# -- field checks -----------------------------------------------------------------------------
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


def _known_keys(data: dict, table: str, where: str) -> None:
    """Refuse a key ``table`` does not have, suggesting the closest known key (here or in another table)."""
    known = KEYS[table]
    for key in map(str, data):
        if key in known:
            continue
        elsewhere = {k: t for t, keys in KEYS.items() if t != table for k in keys if k not in known}
        close = [key] if key in elsewhere else difflib.get_close_matches(key, [*known, *elsewhere], n=1)
        if not close:
            raise TemplateError(f"{where}: unknown key '{key}' (known: {', '.join(known)})")
        there = f" in {elsewhere[close[0]]}" if close[0] in elsewhere else ""
        raise TemplateError(f"{where}: unknown key '{key}'; did you mean '{close[0]}'{there}?")


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


# -- sections ---------------------------------------------------------------------------------
def _sample_tables(data: dict, source: str) -> list[dict]:
    if "samples" in data and "sample" in data:
        raise TemplateError(f"{source}: give one [sample] or a list of [[samples]], not both")
    if "samples" in data:
        samples = _field(data, "samples", list, source, "a list of [[samples]] tables with inputs and targets")
    else:
        samples = [_field(data, "sample", dict, source, "a [sample] table (or [[samples]]) with inputs and targets")]
    if not samples or not all(isinstance(s, dict) for s in samples):
        raise _fail(source, "samples", "a non-empty list of tables with inputs and targets", samples)
    for s, sample in enumerate(samples, start=1):
        _known_keys(sample, "[[samples]]", f"{source}: samples[{s}]")
    return samples


def _initializer(data: dict, source: str):
    """A function drawing a (rows, columns) weight matrix as the [init] table says."""
    init = _field(data, "init", dict, source, "a table with kind, seed and scale", {})
    where = f"{source}: init"
    _known_keys(init, "[init]", where)
    kind = _choice(init, "kind", INITIALIZERS, where, "xavier")
    rng = np.random.default_rng(_field(init, "seed", int, where, "an integer", 0))
    scale = _field(init, "scale", (int, float), where, "a positive number", 1.0)
    if not scale > 0:
        raise _fail(where, "scale", "a positive number", scale)

    def draw(shape: tuple[int, int]) -> np.ndarray:
        if kind == "xavier":
            bound = scale * math.sqrt(6.0 / (shape[0] + shape[1]))
            return rng.uniform(-bound, bound, shape)
        if kind == "uniform":
            return rng.uniform(-scale, scale, shape)
        return rng.normal(0.0, scale, shape)

    return draw


def _layers(data: dict, source: str, n_in: int, draw) -> tuple[list[Layer], list[np.ndarray], list]:
    """The [[layers]] tables: name, size, activation, bias and explicit or drawn values."""
    entries = _field(data, "layers", list, source, "a list of [[layers]] tables")
    if not entries:
        raise _fail(source, "layers", "a list of at least one [[layers]] table", entries)
    layers, weights, biases = [], [], []
    prev = n_in
    for i, entry in enumerate(entries, start=1):
        where = f"{source}: layers[{i}]"
        if not isinstance(entry, dict):
            raise TemplateError(f"{where}: must be a table")
        _known_keys(entry, "[[layers]]", where)
        last = i == len(entries)
        default_name = "o" if last else ("h" if len(entries) == 2 else f"h{i}")
        name = _field(entry, "name", str, where, "a short identifier", default_name)
        if not name.isidentifier():
            raise _fail(where, "name", "a short identifier", name)
        size = _field(entry, "size", int, where, "a positive integer")
        if size < 1:
            raise _fail(where, "size", "a positive integer", size)
        act = _choice(entry, "activation", tuple(ACTIVATIONS), where)
        if ACTIVATIONS[act].vector and not last:
            raise _fail(where, "activation", "elementwise (softmax belongs on the last layer)", act)
        bias = _field(entry, "bias", bool, where, "true or false", "biases" in entry)
        if "biases" in entry and not bias:
            raise TemplateError(f"{where}: fields 'biases' and 'bias = false' contradict each other "
                                f"(set bias = true, or drop biases)")
        if "weights" in entry:
            rows = _field(entry, "weights", list, where, f"{size} rows of {prev} numbers")
            if len(rows) != size:
                raise _fail(where, "weights", f"{size} rows of {prev} numbers", rows)
            weights.append(np.stack([_numbers(row, where, "weights", prev) for row in rows]))
        else:
            weights.append(draw((size, prev)))
        biases.append(_numbers(entry.get("biases", [0.0] * size), where, "biases", size) if bias else None)
        layers.append(Layer(name, size, act, bias))
        prev = size
    return layers, weights, biases


def _check_output(layers: list[Layer], loss: str, source: str) -> None:
    """The loss must fit the output layer (softmax goes with cross-entropy and back)."""
    out, loss_fn = layers[-1], LOSSES[loss]
    where = f"{source}: layers[{len(layers)}]"
    if loss_fn.needs_activation and out.activation != loss_fn.needs_activation:
        raise _fail(where, "activation", f"{loss_fn.needs_activation} (the {loss} loss needs it)", out.activation)
    if ACTIVATIONS[out.activation].vector and not loss_fn.needs_activation:
        raise _fail(source, "loss", "softmax_cross_entropy with a softmax output layer", loss)
    if loss_fn.needs_activation and out.size < 2:
        raise _fail(where, "size", "at least 2 with softmax + cross-entropy", out.size)


def _sample_values(tables: list[dict], source: str, n_in: int, n_out: int, loss: str):
    inputs, targets = [], []
    for s, sample in enumerate(tables, start=1):
        where = f"{source}: samples[{s}]"
        inputs.append(_numbers(_field(sample, "inputs", list, where, f"{n_in} numbers"), where, "inputs", n_in))
        t = _numbers(_field(sample, "targets", list, where, f"{n_out} numbers"), where, "targets", n_out)
        if LOSSES[loss].combined and ((t < 0).any() or abs(t.sum() - 1) > 1e-9):
            raise _fail(where, "targets", "probabilities summing to 1 (cross-entropy)", t.tolist())
        targets.append(t)
    return np.stack(inputs), np.stack(targets)


def _unit_names(data: dict, source: str, key: str, n: int, prefix: str) -> tuple[str, ...]:
    names = _field(data, key, list, source, "a list of names", [f"{prefix}{k + 1}" for k in range(n)])
    if len(names) != n or not all(isinstance(v, str) and re.fullmatch(r"[A-Za-z_]\w*", v) for v in names):
        raise _fail(source, key, f"a list of {n} names", list(names))
    return tuple(names)


def _training(data: dict, source: str) -> tuple[tuple[float, ...], int, tuple[str, ...], dict[str, float]]:
    """Learning rates, iterations, optimizers and their hyperparameters from the [training] table."""
    training = _field(data, "training", dict, source, "a table", {})
    where = f"{source}: training"
    _known_keys(training, "[training]", where)
    lrs = _field(training, "learning_rates", list, where, "a non-empty list of positive numbers", [0.5])
    values = _numbers(lrs, where, "learning_rates", len(lrs))
    if not lrs or (values <= 0).any():
        raise _fail(where, "learning_rates", "a non-empty list of positive numbers", lrs)
    iterations = _field(training, "iterations", int, where, "a positive integer", 100)
    if iterations < 1:
        raise _fail(where, "iterations", "a positive integer", iterations)
    if "optimizer" in training and "optimizers" in training:
        raise TemplateError(f"{where}: give optimizer or optimizers, not both")
    if "optimizers" in training:
        optimizers = _field(training, "optimizers", list, where, f"a non-empty list of {', '.join(OPTIMIZERS)}")
    else:
        optimizers = [_field(training, "optimizer", str, where, f"one of {', '.join(OPTIMIZERS)}", "sgd")]
    try:
        optimizers = check_optimizers(optimizers)
    except ValueError as exc:
        raise _fail(where, "optimizers" if "optimizers" in training else "optimizer", str(exc), optimizers) from None
    hyperparameters, bounds = {}, specs(optimizers)
    for name, spec in bounds.items():
        value = _field(training, name, (int, float), where, f"a number {spec.expected}", spec.default)
        if name in training and not spec.allows(value):
            raise _fail(where, name, f"a number {spec.expected}", value)
        hyperparameters[name] = float(value)
    try:
        check_settings(optimizers, hyperparameters, given=[name for name in HYPERPARAMETERS if name in training])
    except ValueError as exc:
        raise TemplateError(f"{where}: {exc}") from None
    return tuple(float(v) for v in values), iterations, optimizers, hyperparameters


def check_optimizers(names) -> tuple[str, ...]:
    """Optimizer names as a tuple, each known and given once; a ValueError says what was expected."""
    expected = f"a non-empty list of distinct optimizers from {', '.join(OPTIMIZERS)}"
    names = [names] if isinstance(names, str) else list(names)
    if not names or not all(isinstance(n, str) and n in OPTIMIZERS for n in names):
        raise ValueError(expected)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{expected} (repeated: {', '.join(repeated)})")
    return tuple(names)


def from_dict(data: dict, source: str = "template") -> Network:
    """Validate a template's contents and build the network; errors name ``source`` and the field."""
    _known_keys(data, "the top level", source)
    name = _field(data, "name", str, source, "a string")
    description = _field(data, "description", str, source, "a string", "")
    naming = _choice(data, "naming", NAMINGS, source, "layered")
    loss = _choice(data, "loss", tuple(LOSSES), source)
    reduction = _choice(data, "reduction", REDUCTIONS, source, "mean")
    tables = _sample_tables(data, source)
    n_in = len(_field(tables[0], "inputs", list, f"{source}: samples[1]", "a list of numbers"))
    if n_in == 0:
        raise _fail(f"{source}: samples[1]", "inputs", "a list of at least one number", [])
    layers, weights, biases = _layers(data, source, n_in, _initializer(data, source))
    if "init" in data and all("weights" in entry for entry in data["layers"]):
        raise TemplateError(f"{source}: [init] is never used: every layer gives its weights (drop one or the other)")
    _check_output(layers, loss, source)
    n_out = layers[-1].size
    inputs, targets = _sample_values(tables, source, n_in, n_out, loss)
    learning_rates, iterations, optimizers, hyperparameters = _training(data, source)
    net = Network(
        name=name,
        description=description,
        input_names=_unit_names(data, source, "inputs", n_in, "i"),
        target_names=_unit_names(data, source, "targets", n_out, "t"),
        layers=tuple(layers),
        loss=loss,
        inputs=inputs,
        targets=targets,
        weights=tuple(weights),
        biases=tuple(biases),
        learning_rates=learning_rates,
        iterations=iterations,
        naming=naming,
        reduction=reduction,
        optimizers=optimizers,
        hyperparameters=hyperparameters,
    )
    check_names(net, len(learning_rates), source)
    return net


# -- names ------------------------------------------------------------------------------------
class _Origin(NamedTuple):
    """What sets a name: the table (layers[2], or "" for the top level), the field, and its value."""

    where: str
    key: str
    kind: str  # input name, layer name, parameter, …
    value: str

    def field(self, source: str) -> str:
        return f"{source}: {self.where + ': ' if self.where else ''}field '{self.key}'"

    def __str__(self) -> str:
        return f"{self.kind} {self.value}"


def _short(text: str, most: int = 40) -> str:
    return text if len(text) <= most else text[:most] + "…"


def _defined_names(net: Network, rates: int) -> Iterator[tuple[str, _Origin]]:
    """Every name the workbook defines, from the code that defines it, with what sets it."""
    for s in range(net.samples):
        yield from ((Input(k, s).defined_name(net), _Origin("", "inputs", "input name", repr(_short(n))))
                    for k, n in enumerate(net.input_names))
        yield from ((Target(j, s).defined_name(net), _Origin("", "targets", "target name", repr(_short(n))))
                    for j, n in enumerate(net.target_names))
    for p in net.params:
        if net.naming == "classic" and p.k is None:  # b_h1_init: the only names made from a layer's name
            origin = _Origin(f"layers[{p.l}]", "name", "layer name", repr(_short(net.layer(p.l).name)))
        else:
            origin = _Origin("", "layers", "parameter", p.label(net))
        yield p.defined_name(net), origin
    for slot in range(rates):
        yield lr_name(slot), _Origin("training", "learning_rates", "learning rate", str(slot + 1))
    for name in net.hyperparameters_used:
        yield name, _Origin("training", name, "hyperparameter", name)
    yield ERROR_TARGET_NAME, _Origin("", "error target", "the error target", "")
    yield GRADIENT_STEP_NAME, _Origin("", "gradient check", "the gradient check's step", "")
    yield DIAGRAM_ITERATION, _Origin("", "diagram", "the diagram's iteration", "")
    yield DIAGRAM_SHEET, _Origin("", "diagram", "the diagram's training sheet", "")


def _classic_units(net: Network) -> Iterator[tuple[str, _Origin]]:
    """Classic naming's unit names (i1, h1_1, o2), with what sets each."""
    yield from ((n, _Origin("", "inputs", "input name", repr(_short(n)))) for n in net.input_names)
    for l in range(1, net.depth + 1):
        origin = _Origin(f"layers[{l}]", "name", "layer name", repr(_short(net.layer(l).name)))
        yield from ((net.names.unit(l, j), origin) for j in range(net.size(l)))


def _both(first: _Origin, second: _Origin) -> str:
    """input names 'x' and 'X'; input name 'h1' and layer name 'h'."""
    if first.kind == second.kind:
        return f"{first.kind}s {first.value} and {second.value}"
    return f"{first} and {second}"


def check_names(net: Network, rates: int, source: str | None = None) -> None:
    """Refuse names Excel would not take, or would take as one: every defined name of the workbook
    (with ``rates`` learning rates) must be valid and unique ignoring case; in classic naming every
    unit needs a name of its own."""
    source = source or f"network {net.name!r}"
    if net.naming == "classic":
        units: dict[str, _Origin] = {}
        for name, origin in _classic_units(net):
            first = units.setdefault(name, origin)
            if first is origin:
                continue
            if str(first) == str(origin):
                raise TemplateError(f"{origin.field(source)}: {origin} is given twice (unit {name})")
            raise TemplateError(f"{origin.field(source)}: {_both(first, origin)} both name the unit {name}")
    seen: dict[str, tuple[str, _Origin]] = {}
    for name, origin in _defined_names(net, rates):
        problem = defined_name_problem(name)
        if problem:
            raise TemplateError(f"{origin.field(source)}: {origin} gives the defined name '{_short(name)}', "
                                f"which Excel refuses: {problem}")
        other, first = seen.setdefault(name.casefold(), (name, origin))
        if first is origin:
            continue
        if str(first) == str(origin):
            raise TemplateError(f"{origin.field(source)}: {origin} is given twice (defined name {_short(name)})")
        if other == name:
            raise TemplateError(f"{origin.field(source)}: {_both(first, origin)} both give the defined name {name}")
        raise TemplateError(f"{origin.field(source)}: {_both(first, origin)} are the same name to Excel "
                            f"(case-insensitive: {other}, {name})")


def to_dict(net: Network) -> dict[str, Any]:
    """The template form of a network (what :func:`from_dict` reads), weights made explicit."""
    layers = []
    for l, layer in enumerate(net.layers, start=1):
        entry: dict[str, Any] = {"name": layer.name, "size": layer.size, "activation": layer.activation,
                                 "bias": layer.bias, "weights": net.weights[l - 1].tolist()}
        if layer.bias:
            entry["biases"] = net.biases[l - 1].tolist()
        layers.append(entry)
    return {
        "name": net.name,
        "description": net.description,
        "naming": net.naming,
        "loss": net.loss,
        "reduction": net.reduction,
        "inputs": list(net.input_names),
        "targets": list(net.target_names),
        "layers": layers,
        "samples": [{"inputs": x.tolist(), "targets": t.tolist()} for x, t in zip(net.inputs, net.targets)],
        "training": {"learning_rates": list(net.learning_rates), "iterations": net.iterations,
                     "optimizers": list(net.optimizers),
                     **{name: net.hyperparameters[name] for name in net.hyperparameters_used}},
    }


def to_json(net: Network) -> str:
    return json.dumps(to_dict(net), separators=(",", ":"))
