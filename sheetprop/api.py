"""The Python API (what ``import sheetprop`` offers a notebook); the ``sheetprop`` command calls it too.

    import sheetprop
    book = sheetprop.build(learning_rates=[0.1, 0.5, 2], iterations=50, out="backprop.xlsx")
    book.summary        # per learning rate: E_total at the start and the end, first iteration below 0.01
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from tqdm.auto import tqdm

from sheetprop import template, wording
from sheetprop.book import check_target
from sheetprop.exercise import PARTS as EXERCISE_PARTS
from sheetprop.exercise import ExerciseError
from sheetprop.exercise import parts as exercise_parts
from sheetprop.layout import lr_label
from sheetprop.limits import LimitError
from sheetprop.network import Network
from sheetprop.template import check_names, check_optimizers
from sheetprop.update import check_settings
from sheetprop.workbook import DEFAULT_ERROR_TARGET, Plan, Summary
from sheetprop.workbook import build as write_workbook

if TYPE_CHECKING:
    from sheetprop.grading import Grades

DEFAULT_OUT = Path("outputs/backprop.xlsx")


class BuildError(ValueError):
    """Learning rates or an iteration count no workbook can use; the message says which."""


def load(source: str | Path | dict[str, Any] | Network = "classic") -> Network:
    """A network from a shipped template's name, a template file, a template's contents as a dict
    (the TOML's fields), or a :class:`Network` as it is."""
    if isinstance(source, Network):
        return source
    if isinstance(source, dict):
        return template.from_dict(source, source=f"template {source.get('name', '(unnamed)')!r}")
    return template.load(source)


def check_learning_rate(lr: float) -> float:
    """``lr`` as a float when it is a finite positive number."""
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise BuildError(f"learning rate {lr!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise BuildError(f"learning rate {lr!r} must be a finite positive number")
    return value


@dataclass(frozen=True)
class Built:
    """A workbook that was written, and how training went in it for each learning rate."""

    path: Path
    network: Network
    iterations: int
    summary: list[Summary]  # one per training sheet (optimizer and learning rate), in their order
    formula_cells: int  # in the training sheets
    exercise: frozenset[str] = frozenset()  # the parts left blank for a student (an exercise)
    blank_cells: int = 0  # the cells a student writes, in every training sheet

    @property
    def learning_rates(self) -> list[float]:
        return list(dict.fromkeys(s.lr for s in self.summary))

    @property
    def optimizers(self) -> list[str]:
        return list(dict.fromkeys(s.optimizer for s in self.summary))

    def table(self) -> str:
        """What ``sheetprop build`` prints: the file, then a line per learning rate."""
        n, several = len(self.learning_rates), len(self.optimizers) > 1
        optimizers = f"{wording.plural(len(self.optimizers), 'optimizer')} × " if several else ""
        lines = [f"Wrote {self.path} ({self.network.name}: {optimizers}{wording.plural(n, 'learning rate')} × "
                 f"{wording.plural(self.iterations, 'iteration')}, {self.formula_cells:,} formula cells in the "
                 f"training sheets)",
                 ("optimizer  " if several else "") + f"{'η':>8}  {'E_total(0)':>12}  "
                 f"{f'E_total({self.iterations})':>14}  first E_total < {DEFAULT_ERROR_TARGET:g}"]
        if self.exercise:
            parts = ", ".join(p for p in EXERCISE_PARTS if p in self.exercise)
            lines[0] += (f"\nAn exercise: {self.blank_cells:,} cells left blank for the student ({parts}), each "
                         f"checked as it is filled; the numbers below are what it shows before")
        for s in self.summary:
            first = "never" if s.first_below is None else str(s.first_below)
            end = f"{s.end:>14.9f}" if s.diverged is None else f"{'diverged':>14}"
            note = "" if s.diverged is None else (
                f"   (diverged at iteration {s.diverged}: E_total or a weight overflowed)")
            lines.append((f"{s.optimizer:<9}  " if several else "") +
                         f"{lr_label(s.lr):>8}  {s.start:>12.9f}  {end}  {first:<6}{note}".rstrip())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def build(template: str | Path | dict[str, Any] | Network = "classic", learning_rates: Sequence[float] | None = None,
          iterations: int | None = None, out: str | Path | None = None, force: bool = False,
          optimizers: str | Sequence[str] | None = None, progress: bool | None = None,
          exercise: bool | str | Sequence[str] = False) -> Built:
    """Write the live backpropagation workbook for ``template`` (see :func:`load`) and return its summary.

    One training sheet per optimizer (``sgd``, ``momentum``, ``nesterov``, ``rmsprop``, ``adam``, ``adamw``, as
    torch.optim defines them) and learning rate. ``learning_rates``, ``iterations`` and ``optimizers`` default
    to the template's; ``out`` to outputs/backprop.xlsx
    (its folder is made); an existing file is replaced only with ``force=True``. Raises
    :class:`~sheetprop.template.TemplateError`, :class:`BuildError`, :class:`~sheetprop.book.OutputError`
    or :class:`~sheetprop.limits.LimitError` (a network too large for Excel, or more cells than a spreadsheet
    program can open); nothing is written then. A build expected to take more than ten seconds first says how
    many cells, how large a file and how long, then shows its progress (``progress`` True or False: always or
    never). ``exercise`` writes the student's version instead: the parts of the derivation named (``True``:
    every δ, gradient and update; or some of ``forward``, ``loss``, ``delta``, ``gradient``, ``update``, ``all``)
    left blank to be written, each blank cell checked as it is filled (see :mod:`sheetprop.exercise`)."""
    net = load(template)
    if isinstance(learning_rates, (str, int, float)):
        learning_rates = [learning_rates]
    lrs = [check_learning_rate(lr) for lr in (net.learning_rates if learning_rates is None else learning_rates)]
    if not lrs:
        raise BuildError("give at least one learning rate")
    repeated = sorted({lr_label(lr) for lr in lrs if lrs.count(lr) > 1})
    if repeated:
        raise BuildError(f"repeated learning rate {', '.join(repeated)}")
    if optimizers is not None:
        try:
            net = dataclasses.replace(net, optimizers=check_optimizers(optimizers))
        except ValueError as exc:
            raise BuildError(f"optimizers must be {exc}, got {optimizers!r}") from None
    try:  # the optimizers may have changed, and a Network built in code has not been checked yet
        check_settings(net.optimizers, net.hyperparameters)
    except ValueError as exc:
        raise BuildError(str(exc)) from None
    check_names(net, len(lrs))
    iterations = net.iterations if iterations is None else iterations
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise BuildError(f"iterations must be a whole number of at least 1, got {iterations!r}")
    try:
        blank = exercise_parts(exercise) if exercise is not False else frozenset()
    except ExerciseError as exc:
        raise BuildError(str(exc)) from None
    plan = Plan(net, tuple(lrs), iterations, blank)
    cost = plan.cost
    if not cost.openable:
        raise LimitError(f"{net.name} cannot be written: {cost.refusal()}")
    if out is None:
        out = DEFAULT_OUT
        out.parent.mkdir(parents=True, exist_ok=True)
    shown = cost.long if progress is None else progress
    if shown:
        tqdm.write(f"Writing {out}: {cost}", file=sys.stderr)
    with tqdm(total=cost.cells, unit="cell", unit_scale=True, disable=not shown, file=sys.stderr,
              dynamic_ncols=True) as bar:
        try:
            summary = write_workbook(net, lrs, iterations, out, force=force, progress=bar.update, exercise=blank)
        except LimitError as exc:
            raise LimitError(f"{net.name} cannot be written for Excel: {exc}") from None
    return Built(Path(out), net, iterations, summary, cost.cells, blank,
                 sum(e.cells for e in plan.exercises.values()))


def list_templates() -> list[Network]:
    """The networks shipped with sheetprop (``sheetprop templates``)."""
    return template.available()


def grade(*paths: str | Path, out: str | Path | None = None, force: bool = False,
          progress: bool | None = None) -> Grades:
    """Grade backpropagation workbooks built by hand: every file named and every spreadsheet in every folder
    named. Each training table found is checked quantity by quantity against the reference for its own
    initial values and η; the result names the first wrong cell of each column and why (see
    :mod:`sheetprop.grading`). ``out`` also writes the class's grades as a workbook. The students' files are
    only read. ``progress``: a bar per file (None: for more than ten files)."""
    from sheetprop.grading import files_in, grade_files
    from sheetprop.grading.report import write

    if out is not None:
        check_target(Path(out), force)
    files = files_in(paths)
    shown = len(files) > 10 if progress is None else progress
    with tqdm(total=len(files), unit="file", disable=not shown, file=sys.stderr, dynamic_ncols=True) as bar:
        grades = grade_files(files, progress=lambda path: bar.update())
    if out is not None:
        write(grades, Path(out), force=force)
    return grades
