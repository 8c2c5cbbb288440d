"""How the tools word things for their users: counts in plain English, and settings spelled the
way the caller gives them (``force=True`` from Python, ``--force`` on the command line)."""

from __future__ import annotations

import contextlib
import contextvars
import shlex
import sys
from typing import Any, Iterator

import click

_COMMAND_LINE = contextvars.ContextVar("command_line", default=False)


def plural(n: int, noun: str, many: str | None = None) -> str:
    """``1 run``, ``2 runs``, ``1,000 epochs`` (``many`` for irregular plurals)."""
    return f"{n:,} {noun if n == 1 else many or noun + 's'}"


@contextlib.contextmanager
def command_line() -> Iterator[None]:
    """Within this block, :func:`setting` names settings as command-line options."""
    token = _COMMAND_LINE.set(True)
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)


def on_command_line() -> bool:
    """Whether the caller is the command line (see :func:`command_line`)."""
    return _COMMAND_LINE.get()


def quoted(value: Any) -> str:
    """A value as a shell reads it back: a path with spaces in quotes."""
    return shlex.quote(str(value))


def setting(name: str, value: Any = True) -> str:
    """A setting as the caller writes it: ``force=True`` / ``--force``, ``device='cpu'`` / ``--device cpu``."""
    if on_command_line():
        option = "--" + name.replace("_", "-")
        return option if value is True else f"{option} {quoted(value)}"
    return f"{name}={value}" if isinstance(value, (int, float)) else f"{name}={str(value)!r}"


class OneLineUsageError(click.UsageError):
    """A usage error shown as one line that says where help is, not the whole usage text (both commands)."""

    def show(self, file=None) -> None:
        where = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"Error: {self.format_message()}{where}", file=file or sys.stderr)


def one_line(exc: click.UsageError) -> OneLineUsageError:
    """``exc`` as a :class:`OneLineUsageError` with its exit code."""
    short = OneLineUsageError(exc.format_message(), exc.ctx)
    short.exit_code = exc.exit_code
    return short


class CommandGroup(click.Group):
    """A command group whose messages name settings as options (``--force``, not ``force=True``) and whose
    usage errors are one line (both commands)."""

    def make_context(self, *args, **kwargs) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            raise one_line(exc) from None

    def invoke(self, ctx: click.Context):
        with command_line():
            try:
                return super().invoke(ctx)
            except OneLineUsageError:
                raise
            except click.UsageError as exc:
                raise one_line(exc) from None
