"""The ``trainer`` command line: parse, validate, call; nothing is computed here."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from sheetprop.cli import CommandGroup
from sheetprop.wording import plural
from trainer import __version__, distributed
from trainer.comparison import CompareError
from trainer.config import NOT_SWEPT, OPTIMIZERS, PRECISIONS, SCHEDULERS, STEP_MODES, ConfigError, RunConfig
from trainer.data import DataError
from trainer.device import CHOICES, DeviceError
from trainer.loop import NaNLoss
from trainer.models import MODELS
from trainer.runfolder import Interrupted, RunError

DEFAULTS = RunConfig()


def _default(name: str) -> str:
    return f"  [default: {getattr(DEFAULTS, name)}]"


# Every setting of a run, as options shared by `run` and `sweep` (and the values `sweep --set` takes).
SETTINGS = [
    click.option("--data-dir", type=click.Path(file_okay=False),
                 help="Folder with the four MNIST IDX files, raw or .gz" + _default("data_dir")),
    click.option("--epochs", type=click.IntRange(min=1), help="Epochs" + _default("epochs")),
    click.option("--batch-size", type=click.IntRange(min=1), help="Batch size" + _default("batch_size")),
    click.option("--model", type=click.Choice(list(MODELS)), help="Model (see `trainer models`)" + _default("model")),
    click.option("--optimizer", type=click.Choice(OPTIMIZERS), help="Optimizer" + _default("optimizer")),
    click.option("--lr", type=click.FloatRange(min=0, min_open=True, max=10),
                 help="Learning rate (the peak with onecycle)" + _default("lr")),
    click.option("--momentum", type=click.FloatRange(min=0, max=1, max_open=True),
                 help="Momentum: SGD's (Nesterov when above 0) or Adam's β₁; with onecycle it cycles within ±0.05 "
                      "of this value against the learning rate" + _default("momentum")),
    click.option("--weight-decay", type=click.FloatRange(min=0), help="Weight decay" + _default("weight_decay")),
    click.option("--scheduler", type=click.Choice(SCHEDULERS), help="Learning-rate schedule" + _default("scheduler")),
    click.option("--step-size", type=click.IntRange(min=1),
                 help="Epochs between decays with --scheduler step" + _default("step_size")),
    click.option("--gamma", type=click.FloatRange(min=0, min_open=True, max=1),
                 help="Decay factor with --scheduler step" + _default("gamma")),
    click.option("--rotation", type=click.FloatRange(min=0, max=180),
                 help="Random rotation, ± degrees" + _default("rotation")),
    click.option("--translate", type=click.FloatRange(min=0, max=1, max_open=True),
                 help="Random shift, ± fraction of the image" + _default("translate")),
    click.option("--label-smoothing", type=click.FloatRange(min=0, max=1, max_open=True),
                 help="Label smoothing of the training loss" + _default("label_smoothing")),
    click.option("--ema", type=click.FloatRange(min=0, max=1, max_open=True),
                 help="Evaluate a moving average of the weights with this decay per step; 0: off" + _default("ema")),
    click.option("--precision", type=click.Choice(PRECISIONS),
                 help="Arithmetic of the forward pass: fp32 (TF32 on CUDA), or autocast to bf16 or fp16"
                      + _default("precision")),
    click.option("--tta", type=click.BOOL, metavar="true|false",
                 help="Evaluate on the test image and four 1-pixel shifts of it, outputs averaged (a fixed rule: "
                      "the test set decides nothing)" + _default("tta")),
    click.option("--seed", type=click.IntRange(min=0), help="Random seed" + _default("seed")),
    click.option("--device", type=click.Choice(CHOICES), help="auto: CUDA, then MPS, then CPU" + _default("device")),
    click.option("--threads", type=click.IntRange(min=0), help="CPU threads; 0: one per core" + _default("threads")),
    click.option("--step-mode", type=click.Choice(STEP_MODES),
                 help="How a training step runs on CUDA: eager (op by op), graph (captured once as a CUDA graph and "
                      "replayed) or compile (torch.compile, reduce-overhead); where a mode cannot run, the run says "
                      "so and steps eagerly" + _default("step_mode")),
]


def settings_options(command: Callable) -> Callable:
    for option in reversed(SETTINGS):
        command = option(command)
    return command


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trainer")
def main() -> None:
    """Train a small MNIST CNN and report it in an Excel workbook."""


FAILURES = (ConfigError, DataError, DeviceError, RunError, distributed.LaunchError, NaNLoss)


@main.command()
@click.option("--config", "config_file", metavar="NAME|FILE",
              help="Run template (`mnist` or a TOML file) with any of the settings below; options given here "
                   "override it.")
@click.option("--name", help="Run folder name under --out-dir  [default: a timestamp]")
@settings_options
@click.option("--resume", type=click.Path(exists=True, file_okay=False, path_type=Path), metavar="RUN_DIR",
              help="Continue a stopped run from its last.pt.")
@click.option("--out-dir", type=click.Path(file_okay=False), help="Where run folders go" + _default("out_dir"))
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
    from trainer.run import RESUMABLE

    world = distributed.from_environment()
    try:
        if resume is not None:
            fixed = sorted(k for k, v in options.items() if v is not None and k not in RESUMABLE)
            fixed += (["config"] if config_file else []) + (["name"] if name else []) + (["force"] if force else [])
            if fixed:
                allowed = ", ".join("--" + k.replace("_", "-") for k in RESUMABLE)
                raise click.ClickException(f"--resume continues a run as it was configured; it accepts only {allowed} "
                                       f"(got {', '.join('--' + k.replace('_', '-') for k in fixed)})")
            api.resume(resume, nproc=nproc, progress=progress, echo=click.echo,
                       **{k: options[k] for k in RESUMABLE})
        else:
            api.train(config_file, name=name, force=force, nproc=nproc, progress=progress, echo=click.echo, **options)
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


class Seeds(click.ParamType):
    """Seeds as a range and/or a list: 1-10, 1,4,7, 1-3,8."""

    name = "seeds"

    def convert(self, value: Any, param, ctx) -> list[int]:
        from trainer.api import seed_list

        try:
            return seed_list(value)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


class Setting(click.ParamType):
    """KEY=V1,V2,… : one setting of `trainer run` and the values to try, each checked as that option checks it."""

    name = "key=values"

    def convert(self, value: Any, param, ctx) -> tuple[str, list]:
        if isinstance(value, tuple):
            return value
        options = {o.name: o for o in run.params
                   if o.name in RunConfig.__dataclass_fields__ and o.name not in NOT_SWEPT}
        key, sep, values = str(value).partition("=")
        option = options.get(key.strip().replace("-", "_"))
        if not sep or not values or option is None:
            self.fail(f"{value!r} must be KEY=V1,V2 with KEY one of {', '.join(options)}", param, ctx)
        return option.name, [option.type.convert(v.strip(), param, ctx) for v in values.split(",")]


@main.command()
@click.option("--name", help="Sweep folder under --out-dir  [default: made from the settings, e.g. seeds1-10]")
@click.option("--seeds", type=Seeds(), default="1-10", show_default=True, help="Seeds to run: 1-10, 1,4,7, …")
@click.option("--set", "grid", type=Setting(), multiple=True, metavar="KEY=V1,V2",
              help="A setting to vary (any option of `trainer run`), e.g. --set model=tiny,slim; repeat for a grid.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs at once; the CPU threads are split between them (or one GPU each where there are several).")
@click.option("--config", "config_file", metavar="NAME|FILE", help="Run template for the settings not given here.")
@settings_options
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
                             target=round(target / 100, 10), progress=progress, echo=click.echo, **settings)
    except (ConfigError, SweepError, CompareError, RunError) as exc:
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
    for line in compared.skipped:
        click.echo(f"skipped {line}", err=True)
    click.echo(compared)


@main.command()
@click.option("--model", type=click.Choice(list(MODELS)), default=DEFAULTS.model, show_default=True)
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
