"""The ``trainer`` command line: parse, validate, call; nothing is computed here. Every setting's option comes
from its declaration in :mod:`trainer.config`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

import click

from sheetprop import wording
from sheetprop.wording import OneLineUsageError, plural
from trainer import __version__, distributed
from trainer.comparison import CompareError
from trainer.config import NOT_SWEPT, RESUMABLE, SPECS, ConfigError, RunConfig, Spec
from trainer.data import DataError
from trainer.device import DeviceError
from trainer.loop import NaNLoss
from trainer.models import MODELS
from trainer.runfolder import Interrupted, RunError

FAILURES = (DataError, DeviceError, RunError, distributed.LaunchError, NaNLoss)  # exit code 1


class CommandGroup(wording.CommandGroup):
    """The commands' group (see :class:`sheetprop.wording.CommandGroup`): a bad setting from a file is one line
    with exit code 2, as on the command line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            if not distributed.from_environment().main:  # under torchrun, rank 0 alone says it
                raise SystemExit(2) from None
            raise OneLineUsageError(str(exc), ctx) from None


class SettingType(click.ParamType):
    """A setting's value from the command line, checked by its declaration (the same words as a file's check)."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.name = spec.name

    def convert(self, value: Any, param, ctx) -> Any:
        try:
            return self.spec.check(self.spec.parse(value) if isinstance(value, str) else value)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


def _metavar(spec: Spec) -> str:
    if spec.allowed is not None:
        return "[" + "|".join(spec.allowed) + "]"
    return {bool: "true|false", int: "INTEGER", float: "NUMBER"}.get(spec.type, "DIR" if spec.name.endswith("dir")
                                                                       else "TEXT")


def settings_options(*leave_out: str) -> Callable[[Callable], Callable]:
    """Every setting as an option (``--batch-size``…), with its declaration's help and default."""
    def decorate(command: Callable) -> Callable:
        for spec in reversed(list(SPECS.values())):
            if spec.name not in leave_out:
                command = click.option(spec.option, type=SettingType(spec), metavar=_metavar(spec),
                                       help=f"{spec.help}  [default: {spec.default}]")(command)
        return command
    return decorate


class Output:
    """What a command prints: a closed stdout (``trainer run … | head -1``) stops the printing, not the run."""

    def __init__(self) -> None:
        self.closed = False

    def __call__(self, line: str) -> None:
        if self.closed:
            return
        try:
            click.echo(line)
        except BrokenPipeError:
            self.closed = True
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's last flush goes nowhere
            click.echo("stdout was closed; training goes on without printing to it", err=True)


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trainer")
def main() -> None:
    """Train a small MNIST CNN and report it in an Excel workbook."""


@main.command()
@click.option("--config", "config_file", metavar="NAME|FILE",
              help="Run template (`mnist` or a TOML file) with any of the settings below; options given here "
                   "override it.")
@click.option("--name", help="Run folder name under --out-dir  [default: a timestamp]")
@settings_options()
@click.option("--resume", type=click.Path(exists=True, file_okay=False, path_type=Path), metavar="RUN_DIR",
              help="Continue a stopped run from its last.pt.")
@click.option("--force", is_flag=True, help="Replace the results of an existing run folder.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar per epoch.")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train data-parallel in this many processes on this machine (torchrun's launcher; one GPU "
                   "each on CUDA, gloo on the CPU). For several machines use torchrun itself (see README).")
def run(config_file, name, resume, force, progress, nproc, **options) -> None:
    """Train on MNIST; write training.xlsx, history.csv, last.pt, best.pt and config.toml after every epoch.

    \b
    Examples:
      trainer run --data-dir ../shared/datasets/mnist
      trainer run --config mnist --seed 2 --name seed2
      trainer run --resume outputs/runs/seed2
      trainer run --nproc 2 --data-dir ../shared/datasets/mnist      # data-parallel, 2 processes
    """
    from trainer import api

    world = distributed.from_environment()
    say = Output()
    try:
        if resume is not None:
            _only_resumable(options, config_file, name, force)
            api.resume(resume, nproc=nproc, progress=progress, echo=say,
                       **{k: v for k, v in options.items() if v is not None})
        else:
            api.train(config_file, name=name, force=force, nproc=nproc, progress=progress, echo=say, **options)
    except FAILURES as exc:
        if world.main:
            raise click.ClickException(str(exc)) from None
        raise SystemExit(1) from None
    except api.ProcessesFailed as exc:  # the processes have said why
        raise SystemExit(exc.exit_code) from None
    except Interrupted as exc:
        if world.main and not exc.reported:
            click.echo(f"\n{exc}", err=True)
        raise SystemExit(130) from None


def _only_resumable(options: dict[str, Any], config_file, name, force) -> None:
    fixed = sorted(k for k, v in options.items() if v is not None and k not in RESUMABLE)
    fixed += (["config"] if config_file else []) + (["name"] if name else []) + (["force"] if force else [])
    if fixed:
        allowed = ", ".join(SPECS[k].option for k in RESUMABLE)
        raise click.ClickException(f"--resume continues a run as it was configured; it accepts only {allowed} "
                                   f"(got {', '.join('--' + k.replace('_', '-') for k in fixed)})")


class Seeds(click.ParamType):
    """Seeds as a range and/or a list: 1-10, 1,4,7, 1-3,8."""

    name = "seeds"

    def convert(self, value: Any, param, ctx) -> list[int]:
        from trainer.api import seed_list

        try:
            return seed_list(value)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


class Grid(click.ParamType):
    """KEY=V1,V2,… : one setting of `trainer run` and the values to try, each checked as that option checks it."""

    name = "key=values"

    def convert(self, value: Any, param, ctx) -> tuple[str, list]:
        if isinstance(value, tuple):
            return value
        swept = [name for name in SPECS if name not in NOT_SWEPT]
        key, sep, values = str(value).partition("=")
        spec = SPECS.get(key.strip().replace("-", "_"))
        if not sep or not values or spec is None or spec.name not in swept:
            self.fail(f"{value!r} must be KEY=V1,V2 with KEY one of {', '.join(swept)}", param, ctx)
        return spec.name, [SettingType(spec).convert(v.strip(), param, ctx) for v in values.split(",")]


@main.command()
@click.option("--name", help="Sweep folder under --out-dir  [default: made from the settings, e.g. seeds1-10]")
@click.option("--seeds", type=Seeds(), default="1-10", show_default=True, help="Seeds to run: 1-10, 1,4,7, …")
@click.option("--set", "grid", type=Grid(), multiple=True, metavar="KEY=V1,V2",
              help="A setting to vary (any option of `trainer run`), e.g. --set model=tiny,slim; repeat for a grid.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs at once; the CPU threads are split between them unless --threads is given (or one GPU "
                   "each where there are several).")
@click.option("--config", "config_file", metavar="NAME|FILE", help="Run template for the settings not given here.")
@settings_options("out_dir")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("outputs/sweeps"),
              show_default=True, help="Where sweep folders go.")
@click.option("--target", type=click.FloatRange(min=0, max=100), default=99.4, show_default=True,
              help="Test accuracy (%) the summary counts runs against.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar over all epochs.")
def sweep(name, seeds, grid, jobs, config_file, out_dir, target, progress, **options) -> None:
    """Run one configuration (or a grid of them) for several seeds, then compare the runs.

    Each run is an ordinary run folder under --out-dir/NAME/. Run the same command again after an
    interruption: finished runs are kept and an interrupted one resumes from its last epoch.

    \b
    Examples:
      trainer sweep --seeds 1-10 --jobs 2 --data-dir ../shared/datasets/mnist
      trainer sweep --seeds 1-3 --set model=tiny,slim --set lr=0.1,0.2 --epochs 5
    """
    from trainer import api
    from trainer.sweeps import SweepError

    if options.pop("seed") is not None:
        raise click.UsageError("a sweep takes its seeds from --seeds (e.g. --seeds 1-10), not --seed")
    settings = {k: v for k, v in options.items() if v is not None}
    try:
        compared = api.sweep(seeds, dict(grid), jobs=jobs, name=name, config=config_file, out_dir=out_dir,
                             target=round(target / 100, 10), progress=progress, echo=Output(), **settings)
    except (SweepError, CompareError, RunError) as exc:
        raise click.ClickException(str(exc)) from None
    except Interrupted as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(130) from None
    click.echo(compared)
    if compared.failed:
        raise click.ClickException(f"{plural(len(compared.failed), 'run')} failed ({', '.join(compared.failed)}); "
                                   "see the log.txt in each")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Workbook to write  [default: compare.xlsx beside the runs if they share a folder, else here]")
@click.option("--target", type=click.FloatRange(min=0, max=100), default=99.4, show_default=True,
              help="Test accuracy (%) to count runs against (an editable cell in the workbook).")
def compare(run_dirs, out, target) -> None:
    """Compare finished or running runs in one workbook: per-run table, per-configuration summary, charts.

    RUN_DIRS may include other files (a sweep folder's compare.xlsx): only run folders are read.

    \b
    Example:
      trainer compare outputs/sweeps/seeds1-10/*
    """
    from sheetprop.book import OutputError
    from trainer import api

    try:
        compared = api.compare(run_dirs, out, round(target / 100, 10))  # 99.4 / 100 is 0.9940000000000001
    except (CompareError, OutputError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("Interrupted; no workbook was written", err=True)
        raise SystemExit(130) from None
    for line in compared.skipped:
        click.echo(f"skipped {line}", err=True)
    click.echo(compared)


@main.command()
@click.option("--model", type=click.Choice(list(MODELS)), default=RunConfig().model, show_default=True)
def summary(model: str) -> None:
    """Print the model's layers: output shape, parameters, receptive field and jump."""
    from trainer.models import create
    from trainer.summary import format_table, summarize

    click.echo(format_table(summarize(create(model))))


@main.command()
def models() -> None:
    """List the models with their parameter counts."""
    from trainer.models import DEFAULT_MODEL, count_parameters, create

    for name, spec in MODELS.items():
        default = "default: " if name == DEFAULT_MODEL else ""
        click.echo(f"{name:<8} {count_parameters(create(name)):>7,} params  {default}{spec.description}")
