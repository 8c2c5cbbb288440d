"""A run's settings, each declared once (name, type, default, bounds or choices, help) in :class:`RunConfig`.

The ``trainer run`` options, the check of a run template or config.toml, the API's keyword arguments and
their documentation all come from these declarations, so a bad value reads the same from every entry point.
"""

from __future__ import annotations

import difflib
import importlib.resources
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import tomli_w

from trainer.models import DEFAULT_MODEL, MODELS

RUN_TEMPLATES = "trainer.templates"  # package data: templates/runs/*.toml
HYPER, EXECUTION_ROLE = "hyperparameter", "execution"  # what a run computes / how and where it runs
TYPE_NAMES = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


class ConfigError(ValueError):
    """A run template or setting that cannot be used; the message names it."""


@dataclass(frozen=True)
class Spec:
    """One setting: its type, default, allowed values and help, and how each entry point checks it."""

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None  # bounds, inclusive unless open
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None
    role: str = HYPER
    resumable: bool = False  # may change when a stopped run is continued

    @property
    def allowed(self) -> tuple[str, ...] | None:
        return self.choices() if callable(self.choices) else self.choices

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def expected(self) -> str:
        """What a value must be, in words: ``above 0 and at most 10``, ``one of sgd, adam, adamw``."""
        if self.allowed is not None:
            return "one of " + ", ".join(self.allowed)
        if self.low is not None and self.high is not None and not (self.low_open or self.high_open):
            return f"from {_number(self.low)} to {_number(self.high)}"
        parts = []
        if self.low is not None:
            parts.append(f"above {_number(self.low)}" if self.low_open else f"at least {_number(self.low)}")
        if self.high is not None:
            parts.append(f"below {_number(self.high)}" if self.high_open else f"at most {_number(self.high)}")
        return " and ".join(parts) or TYPE_NAMES[self.type]

    def check(self, value: Any) -> Any:
        """``value`` as this setting holds it (an int where a float is expected becomes a float), or
        :class:`ConfigError` saying what it must be."""
        value = _plain(value)
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not self.type:
            raise ConfigError(f"{self.name} must be {TYPE_NAMES[self.type]}, got {value!r}")
        allowed = self.allowed
        inside = value in allowed if allowed is not None else (
            value == value  # not NaN
            and (self.low is None or (value > self.low if self.low_open else value >= self.low))
            and (self.high is None or (value < self.high if self.high_open else value <= self.high)))
        if not inside:
            raise ConfigError(f"{self.name} must be {self.expected()}, got {value!r}")
        return value

    def parse(self, text: str) -> Any:
        """A command-line word as this setting's type (then :meth:`check` it)."""
        if self.type is bool:
            words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
            if text.strip().lower() not in words:
                raise ConfigError(f"{self.name} must be true or false, got {text!r}")
            return words[text.strip().lower()]
        if self.type in (int, float):
            try:
                return self.type(text)
            except ValueError:
                raise ConfigError(f"{self.name} must be {TYPE_NAMES[self.type]}, got {text!r}") from None
        return text


def _number(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else f"{x}"


def _plain(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        return value.item()  # a NumPy number
    return value


def setting(default: Any, help: str, **rule: Any) -> Any:
    """A :class:`RunConfig` field declared with its rule (see :class:`Spec`)."""
    return field(default=default, metadata={"help": help, **rule})


def _device_choices() -> tuple[str, ...]:
    from trainer.device import CHOICES

    return CHOICES


OPTIMIZERS = ("sgd", "adam", "adamw")  # torch.optim's SGD (Nesterov when momentum > 0), Adam, AdamW
PRECISIONS = ("fp32", "bf16", "fp16")  # trainer.device holds what each means
SCHEDULERS = ("onecycle", "step", "none")
STEP_MODES = ("eager", "graph", "compile")  # trainer.step holds what each means
SEED_MAX = 2**32 - 1  # numpy's and most tools' seeds are 32-bit


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a run. Each value is checked when a config is made, whatever made it."""

    model: str = setting(DEFAULT_MODEL, "Model (see `trainer models`)", choices=lambda: tuple(MODELS))
    epochs: int = setting(15, "Epochs", low=1, resumable=True)
    batch_size: int = setting(128, "Batch size", low=1)
    optimizer: str = setting("sgd", "Optimizer: sgd (Nesterov when --momentum is above 0), adam (torch's Adam: "
                             "weight decay added to the gradient) or adamw (torch's AdamW: decoupled weight decay)",
                             choices=OPTIMIZERS)
    lr: float = setting(0.2, "Learning rate (the peak with onecycle)", low=0, low_open=True, high=10)
    momentum: float = setting(0.9, "SGD's momentum; with onecycle it cycles within ±0.05 of this value against "
                              "the learning rate", low=0, high=1, high_open=True)
    beta1: float = setting(0.9, "β₁ of adam and adamw (cycled as --momentum is with onecycle)", low=0, high=1,
                           high_open=True)
    beta2: float = setting(0.999, "β₂ of adam and adamw", low=0, high=1, high_open=True)
    weight_decay: float = setting(5e-5, "Weight decay", low=0, high=float("inf"), high_open=True)
    scheduler: str = setting("onecycle", "Learning-rate schedule", choices=SCHEDULERS)
    step_size: int = setting(5, "Epochs between decays with --scheduler step", low=1)
    gamma: float = setting(0.1, "Decay factor with --scheduler step", low=0, low_open=True, high=1)
    rotation: float = setting(7.0, "Random rotation, ± degrees", low=0, high=180)
    translate: float = setting(0.03, "Random shift, ± fraction of the image", low=0, high=1, high_open=True)
    label_smoothing: float = setting(0.0, "Label smoothing of the training loss", low=0, high=1, high_open=True)
    ema: float = setting(0.999, "Evaluate a moving average of the weights with this decay per step; 0: off",
                         low=0, high=1, high_open=True)
    precision: str = setting("fp32", "Arithmetic of the forward pass: fp32 (TF32 on CUDA), or autocast to bf16 "
                             "or fp16", choices=PRECISIONS)
    tta: bool = setting(False, "Evaluate on the test image and four 1-pixel shifts of it, outputs averaged (a "
                        "fixed rule: the test set decides nothing)")
    seed: int = setting(1, "Random seed", low=0, high=SEED_MAX)
    device: str = setting("auto", "auto: CUDA, then MPS, then CPU", choices=_device_choices, role=EXECUTION_ROLE,
                          resumable=True)
    threads: int = setting(0, "CPU threads; 0: one per core (a sweep: the cores split between its jobs)", low=0,
                           role=EXECUTION_ROLE, resumable=True)
    step_mode: str = setting("eager", "How a training step runs on CUDA: eager (op by op), graph (captured once as "
                             "a CUDA graph and replayed) or compile (torch.compile, reduce-overhead); where a mode "
                             "cannot run, the run says so and steps eagerly", choices=STEP_MODES,
                             role=EXECUTION_ROLE, resumable=True)
    data_dir: str = setting("data", "Folder with the four MNIST IDX files, raw or .gz", role=EXECUTION_ROLE,
                            resumable=True)
    out_dir: str = setting("outputs/runs", "Where run folders go", role=EXECUTION_ROLE)

    def __post_init__(self) -> None:
        for spec in SPECS.values() if SPECS else _specs():
            object.__setattr__(self, spec.name, spec.check(getattr(self, spec.name)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def hyperparameters(self) -> dict[str, Any]:
        """The settings that decide what a run computes (not where it runs or writes)."""
        return {k: v for k, v in self.to_dict().items() if k not in EXECUTION}

    def updated(self, **changes: Any) -> "RunConfig":
        """This config with ``changes`` (None leaves a setting as it is), each checked."""
        values = self.to_dict()
        for key, value in changes.items():
            if value is None:
                continue
            if key not in SPECS:
                raise ConfigError(f"unknown setting {key!r}{_closest(key)} (known: {', '.join(SPECS)})")
            values[key] = SPECS[key].check(value)
        return RunConfig(**values)

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str) -> "RunConfig":
        """Settings read from a file named ``source`` (any subset, over the defaults), or one line saying
        which is wrong."""
        try:
            return cls().updated(**{k: v for k, v in data.items()})
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None


def _specs() -> list[Spec]:
    hints = {"str": str, "int": int, "float": float, "bool": bool}
    return [Spec(f.name, hints[f.type] if isinstance(f.type, str) else f.type, f.default, **f.metadata)
            for f in fields(RunConfig)]


def _closest(key: str) -> str:
    near = difflib.get_close_matches(key, list(SPECS), n=1)
    return f"; did you mean {near[0]!r}?" if near else ""


SPECS: dict[str, Spec] = {}
SPECS.update((spec.name, spec) for spec in _specs())
EXECUTION = tuple(name for name, spec in SPECS.items() if spec.role == EXECUTION_ROLE)  # how and where a run runs
RESUMABLE = tuple(name for name, spec in SPECS.items() if spec.resumable)  # what a continued run may change
NOT_SWEPT = ("seed", *EXECUTION)  # a sweep takes its seeds from --seeds and varies only what runs compute


def describe() -> str:
    """Every setting with its default and allowed values, one per line (the API's documentation)."""
    def rule(s: Spec) -> str:
        return "" if s.expected() == TYPE_NAMES[s.type] else f"; {s.expected()}"

    return "\n".join(f"    {s.name} ({TYPE_NAMES[s.type]}, default {s.default!r}{rule(s)}): {s.help}"
                     for s in SPECS.values())


def read_toml(name_or_path: str | Path) -> tuple[str, dict[str, Any]]:
    """(where it came from, its parsed TOML) for a shipped run template's name or a path; errors are one line."""
    path = Path(name_or_path)
    shipped = {p.name[:-5]: p for p in importlib.resources.files(RUN_TEMPLATES).iterdir()
               if p.name.endswith(".toml")}
    if path.suffix != ".toml" and not path.exists() and str(name_or_path) in shipped:
        source, read = f"run template {name_or_path}", shipped[str(name_or_path)].read_text
    elif path.is_file():
        source, read = str(path), path.read_text
    elif path.suffix == ".toml" or path.exists():
        raise ConfigError(f"{path}: no such run template file")
    else:
        raise ConfigError(f"unknown run template {str(name_or_path)!r} (known: {', '.join(sorted(shipped))}; or "
                          "give a path to a .toml file)")
    try:
        return source, tomllib.loads(read(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read ({exc.strerror})") from None


def read(name_or_path: str | Path) -> RunConfig:
    """A run template (a shipped name such as ``mnist``, or a path): any subset of the settings, over the defaults."""
    source, data = read_toml(name_or_path)
    return RunConfig.from_mapping(data, source)
