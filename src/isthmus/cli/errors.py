"""User-facing failures of the CLI: one line each on stderr, exit code 1, no traceback."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from isthmus.daemon.client import DaemonError, DaemonNotRunning


class UserError(Exception):
    """A problem the user can fix; every line is printed as `error: <line>`."""

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = [f"error: {line}" for line in lines]


_REPORTED = (UserError, DaemonError, DaemonNotRunning)


def report(lines: Sequence[str]) -> None:
    for line in lines:
        click.echo(line, err=True)


class IsthmusGroup(click.Group):
    """A click group whose commands fail with one line per problem and exit code 1.

    Our own errors (UserError, DaemonError, DaemonNotRunning) and click's usage errors
    are printed without traceback or usage block; the exit code is 1 for all of them.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _REPORTED as exc:
            report(_lines(exc))
            ctx.exit(1)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            report([f"error: {exc.format_message()}{hint}"])
            result = 1
        except click.ClickException as exc:
            report([f"error: {exc.format_message()}"])
            result = 1
        except click.Abort:
            report(["error: aborted"])
            result = 1
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)


def _lines(exc: Exception) -> list[str]:
    if isinstance(exc, DaemonNotRunning):
        return [f"error: {exc}"]
    lines = getattr(exc, "lines", None)
    return list(lines) if lines else [f"error: {exc}"]
