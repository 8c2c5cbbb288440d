"""The ``sheetprop`` command line: parse, validate, call; nothing is computed here."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sheetprop import __version__, template, wording
from sheetprop.book import OutputError
from sheetprop.exercise import DEFAULT_PARTS, PARTS
from sheetprop.layout import TrainingLayout
from sheetprop.limits import LimitError
from sheetprop.recalc import RecalcError
from sheetprop.template import TemplateError
from sheetprop.update import OPTIMIZERS
from sheetprop.wording import CommandGroup


class Refused(click.ClickException):
    """A request that cannot be met as asked (a network too big for Excel): exit code 2, like a usage error."""

    exit_code = 2


class LearningRate(click.ParamType):
    """A learning rate, checked as the Python API checks it (a finite positive number)."""

    name = "learning rate"

    def convert(self, value, param, ctx):
        from sheetprop.api import BuildError, check_learning_rate

        try:
            return check_learning_rate(value)
        except BuildError as exc:
            self.fail(str(exc), param, ctx)


class ManyValues(click.Option):
    """An option that takes every value after it up to the next option: ``--lr 0.1 0.2 0.5``."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["multiple"] = True
        super().__init__(*args, **kwargs)

    def add_to_parser(self, parser, ctx) -> None:
        super().add_to_parser(parser, ctx)
        option = next(parser._long_opt.get(o) or parser._short_opt.get(o) for o in self.opts)
        store = option.process

        def looks_like_option(arg: str) -> bool:
            if not arg.startswith("-"):
                return False
            try:
                float(arg)  # -0.1 and -inf are values (to be refused by the type), not options
                return False
            except ValueError:
                return True

        def process(value, state) -> None:
            if looks_like_option(value):  # `--lr --out x`: no value was given
                raise click.BadOptionUsage(self.opts[0], f"Option '{self.opts[0]}' requires at least one value.")
            store(value, state)
            while state.rargs and not looks_like_option(state.rargs[0]):
                store(state.rargs.pop(0), state)

        option.process = process


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sheetprop")
def main() -> None:
    """Backpropagation as a live Excel workbook.

    Build a workbook in which every forward value, gradient and weight update of a small
    network is an Excel formula, then open it in Excel or LibreOffice and edit the inputs.
    """


@main.command()
@click.option("--lr", "learning_rates", cls=ManyValues, type=LearningRate(), metavar="η [η ...]",
              help="Learning rates, one training sheet each (default: the template's).")
@click.option("--optimizer", "optimizers", cls=ManyValues, type=click.Choice(list(OPTIMIZERS)), metavar="NAME [NAME ...]",
              help=f"Optimizers as torch.optim defines them ({', '.join(OPTIMIZERS)}): one training sheet per "
                   "optimizer and learning rate (default: the template's, sgd for classic).")
@click.option("--iterations", type=click.IntRange(1, TrainingLayout.max_iterations()), default=None,
              help="Gradient-descent steps per learning rate (default: the template's, 100 for classic).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Workbook to write  [default: outputs/backprop.xlsx, the folder made if needed]")
@click.option("--template", "template_name", default="classic", show_default=True, metavar="NAME|PATH",
              help="A template name from `sheetprop templates` or a path to a .toml file.")
@click.option("--force", is_flag=True, help="Overwrite an existing workbook.")
@click.option("--exercise", is_flag=True,
              help="Write the student's version: every δ, gradient and update left blank to be written, each blank "
                   "cell checked as it is filled.")
@click.option("--blank", "blank", cls=ManyValues, type=click.Choice([*PARTS, "all"]), metavar="PART [PART ...]",
              help=f"With --exercise, the parts left blank ({', '.join(PARTS)}, all; default: "
                   f"{' '.join(DEFAULT_PARTS)}).")
def build(learning_rates: tuple[float, ...], optimizers: tuple[str, ...], iterations: int | None, out: Path | None,
          template_name: str, force: bool, exercise: bool, blank: tuple[str, ...]) -> None:
    """Write the live backpropagation workbook.

    \b
    Examples:
      sheetprop build --lr 0.1 0.2 0.5 0.8 1 2
      sheetprop build --lr 0.01 0.1 --optimizer sgd momentum nesterov rmsprop adam adamw
      sheetprop build --lr 0.5 --iterations 20 --exercise --out exercise.xlsx
    """
    if blank and not exercise:
        raise click.BadParameter("give --exercise too: --blank chooses what an exercise leaves blank",
                                 param_hint="'--blank'")
    from sheetprop.api import BuildError, build as build_workbook

    try:
        built = build_workbook(template_name, list(learning_rates) or None, iterations, out, force=force,
                               optimizers=list(optimizers) or None, exercise=list(blank) or exercise)
    except BuildError as exc:
        hint = "'--lr'" if "learning rate" in str(exc) else "'--optimizer'" if "optimizer" in str(exc) else None
        raise click.BadParameter(str(exc), param_hint=hint) from None
    except (TemplateError, OutputError) as exc:
        raise click.ClickException(str(exc)) from None
    except LimitError as exc:
        raise Refused(str(exc)) from None
    click.echo(built.table())


@main.command()
def templates() -> None:
    """List the network templates shipped with sheetprop."""
    try:
        nets = template.available()
    except TemplateError as exc:
        raise click.ClickException(str(exc)) from None
    if not nets:
        raise click.ClickException(f"no templates found in {template.PACKAGE}; the installation is incomplete")
    name_width, sizes_width = (max(len(text) for text in column) for column in zip(*((n.name, n.sizes) for n in nets)))
    for net in nets:
        click.echo(f"{net.name:<{name_width}}  {net.sizes:<{sizes_width}}  {net.description}")


def _echo_first(found: list[tuple], kind: str, line: str, shown: int = 10) -> None:
    for item in found[:shown]:
        click.echo(line.format(*item))
    if len(found) > shown:
        click.echo(f"… and {len(found) - shown} more {kind}")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tolerance", type=click.FloatRange(min=0), default=1e-9, show_default=True,
              help="Largest relative difference accepted beyond rounding (values below 1e-6 are compared on a "
                   "1e-6 scale).")
def verify(file: Path, tolerance: float) -> None:
    """Recalculate FILE in LibreOffice and judge every training row against the Python reference.

    Each row is compared with one gradient-descent step of the reference taken from that row's own
    parameters, so a wrong formula is reported at its row, while rounding amplified over many
    iterations is not. The inputs (samples, initial parameters, learning rates) are read from the
    file, so edits made in Excel or LibreOffice are checked too. A learning rate whose values
    overflow where the reference's overflow too is reported as diverged, which is not a failure.
    Exit 0 when every cell is within tolerance.
    """
    from sheetprop.verification import VerifyError, verify as verify_file

    try:
        report = verify_file(file, tolerance)
    except (VerifyError, RecalcError, TemplateError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{file}: {report.cells:,} training cells recalculated in LibreOffice, each row compared with one "
               f"step of the reference from that row's parameters")
    if report.worst:
        sheet, cell, want, got = report.worst
        click.echo(f"largest relative difference beyond rounding {report.max_difference:.3g} at {sheet}!{cell} "
                   f"(reference {want:.17g}, workbook {got:.17g})")
    elif report.cells:
        click.echo("no difference beyond rounding")
    for d in report.diverged:
        click.echo(f"{d}: its values overflow from there on, and so do the reference's at the same parameters "
                   f"(the learning rate is too large; the formulas are right)")
    for sheet, total in report.beyond.items():
        found = [m for m in report.mismatches if m.sheet == sheet]
        first = [m for m in found if m.iteration == found[0].iteration]
        click.echo(f"{sheet} ({report.runs[sheet]}): {wording.plural(total, 'cell')} beyond {tolerance:g}, the first "
                   f"at iteration {first[0].iteration}:")
        _echo_first([(m.cell, m.quantity, m.reference, m.workbook, m.difference) for m in first],
                    "cells of that iteration", "  {0} ({1}): reference {2:.17g}, workbook {3:.17g}, relative "
                    "difference {4:.3g}", shown=5)
    _echo_first(report.over_limits, "cells beyond Excel's limits", "beyond Excel's limits at {0}!{1}: {2}")
    _echo_first(report.errors, "error cells", "error value {2} at {0}!{1}")
    if not report.ok():
        raise click.ClickException(f"verification failed (tolerance {tolerance:g})")
    diverged = f" ({wording.plural(len(report.diverged), 'learning rate')} diverged)" if report.diverged else ""
    click.echo(f"OK: within {tolerance:g}{diverged}")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="FILE|FOLDER...")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the grades as a workbook (a row per file and table, a column per quantity).")
@click.option("--force", is_flag=True, help="Overwrite an existing --out workbook.")
def grade(paths: tuple[Path, ...], out: Path | None, force: bool) -> None:
    """Grade backpropagation workbooks built by hand (files, or every spreadsheet in a folder).

    Finds each training table of the 2-2-2 network (one row or column per iteration), reads its
    initial values and η from its own cells, checks every quantity column against the reference
    and names the first wrong cell of each, with a diagnosis in the terms of the chain rule. The
    files are only read. Exit 0 when every table is correct, 1 when a mistake is found, 2 when a
    file cannot be graded (the others are still graded).

    \b
    Examples:
      sheetprop grade alice.xlsx
      sheetprop grade submissions/ --out grades.xlsx
    """
    from sheetprop.api import grade as grade_workbooks

    try:
        grades = grade_workbooks(*paths, out=out, force=force)
    except OutputError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(grades))
    if out is not None:
        click.echo(f"Wrote {out}")
    sys.exit(grades.exit_code)
