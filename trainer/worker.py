"""A training process started from its run folder: each run of a sweep, and each of ``--nproc`` processes.

    python -m trainer.worker RUN_DIR [--progress]

The process that starts it writes the run's settings to RUN_DIR/config.toml (and clears the folder for a new
run) first; the worker trains that run, or continues it from its last epoch. Under torchrun's launcher every
process runs this and rank 0 alone prints and writes. Exit code 0 when done, 1 after a failure it has said in
one line on stderr, 130 when interrupted (it has said what was kept).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sheetprop import wording


def _say(line: str) -> None:
    print(line, flush=True)  # a sweep's log shows each epoch as it ends


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.worker", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="the run folder, its config.toml written")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False,
                        help="show a progress bar per epoch")
    args = parser.parse_args(argv)

    from trainer import api, distributed, signals
    from trainer.cli import FAILURES
    from trainer.config import ConfigError

    main_process = distributed.from_environment().main
    with wording.command_line():
        try:
            api.work(args.run_dir, progress=args.progress, echo=_say if main_process else None)
        except (*FAILURES, ConfigError) as exc:
            with signals.ignored():  # the other processes may be stopped now: this one says why first
                if main_process:
                    print(f"Error: {exc}", file=sys.stderr, flush=True)
            return 1
        except api.Interrupted as exc:
            with signals.ignored():
                if main_process:
                    print(f"\n{exc}", file=sys.stderr, flush=True)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
