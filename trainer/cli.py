"""The ``trainer`` command line: parse, validate, call; nothing is computed here."""

from __future__ import annotations

from pathlib import Path

import click

from trainer import __version__
from trainer.config import OPTIMIZERS, SCHEDULERS, ConfigError, RunConfig, check, read
from trainer.data import DataError
from trainer.device import CHOICES, DeviceError
from trainer.loop import NaNLoss
from trainer.models import MODELS

DEFAULTS = RunConfig()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trainer")
def main() -> None:
    """Train a small MNIST CNN and report it in an Excel workbook."""


@main.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Run template (TOML) with any of the settings below; options given here override it.")
@click.option("--name", help="Run folder name under --out-dir  [default: a timestamp]")
@click.option("--data-dir", type=click.Path(file_okay=False), help=f"Folder with the four MNIST IDX files, raw or .gz  [default: {DEFAULTS.data_dir}]")
@click.option("--epochs", type=click.IntRange(min=1), help=f"Epochs  [default: {DEFAULTS.epochs}]")
@click.option("--batch-size", type=click.IntRange(min=1), help=f"Batch size  [default: {DEFAULTS.batch_size}]")
@click.option("--model", type=click.Choice(list(MODELS)), help=f"Model (see `trainer models`)  [default: {DEFAULTS.model}]")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), help=f"Optimizer  [default: {DEFAULTS.optimizer}]")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True, max=10),
              help=f"Learning rate (the peak with onecycle)  [default: {DEFAULTS.lr}]")
@click.option("--scheduler", type=click.Choice(SCHEDULERS), help=f"Learning-rate schedule  [default: {DEFAULTS.scheduler}]")
@click.option("--seed", type=click.IntRange(min=0), help=f"Random seed  [default: {DEFAULTS.seed}]")
@click.option("--device", type=click.Choice(CHOICES), help="auto: CUDA, then MPS, then CPU  [default: auto]")
@click.option("--resume", type=click.Path(exists=True, file_okay=False, path_type=Path), metavar="RUN_DIR",
              help="Continue a stopped run from its last.pt.")
@click.option("--out-dir", type=click.Path(file_okay=False), help=f"Where run folders go  [default: {DEFAULTS.out_dir}]")
@click.option("--force", is_flag=True, help="Replace the results of an existing run folder.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar per epoch.")
def run(config_file, name, resume, force, progress, **options) -> None:
    """Train on MNIST; write training.xlsx, last.pt, best.pt and config.toml after every epoch.

    \b
    Examples:
      trainer run --data-dir ../shared/datasets/mnist
      trainer run --config templates/runs/mnist.toml --seed 2 --name seed2
      trainer run --resume outputs/runs/seed2
    """
    from trainer.run import RunError, execute, new_run_dir, resume_config

    run_dir = None
    try:
        if resume is not None:
            fixed = {k: v for k, v in options.items() if v is not None and k not in ("epochs", "device", "data_dir")}
            if fixed or config_file or name:
                raise RunError(f"--resume continues a run as it was configured; it accepts only --epochs, --device "
                               f"and --data-dir (got {', '.join(sorted(fixed) + (['config'] if config_file else []) + (['name'] if name else []))})")
            cfg = check(resume_config(resume, epochs=options["epochs"], device=options["device"],
                                      data_dir=options["data_dir"]))
            run_dir = resume
        else:
            cfg = check((read(config_file) if config_file else RunConfig()).updated(**options))
            run_dir = new_run_dir(cfg, name, force)
        result = execute(cfg, run_dir, resume=resume is not None, progress=progress, echo=click.echo)
    except (ConfigError, DataError, DeviceError, RunError) as exc:
        raise click.ClickException(str(exc)) from None
    except NaNLoss as exc:
        raise click.ClickException(f"{exc}; stopped. The last complete epoch is kept in {run_dir}") from None
    except KeyboardInterrupt:
        click.echo(f"\nInterrupted. The last complete epoch is kept in {run_dir}; "
                   f"continue with: trainer run --resume {run_dir}", err=True)
        raise SystemExit(130) from None
    last = result.history[-3:]
    click.echo(f"Done in {result.seconds:.0f} s: {result.run_dir / 'training.xlsx'}")
    if last:
        accs = ", ".join(f"{100 * h['test acc']:.2f}%" for h in last)
        click.echo(f"Test accuracy of the last {len(last)} epochs: {accs}")


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
    from trainer.models import count_parameters, create

    for name, spec in MODELS.items():
        click.echo(f"{name:<8} {count_parameters(create(name)):>7,} params  {spec.description}")
