"""The `isthmus` click group: commands imported only when used, and uniform failures.

Importing a command module can be costly (`daemon` pulls in gRPC and Envoy's protos),
so each command is named by import path and loaded on first use; `isthmus get` stays
fast. Every failure ends the same way: one line per problem on stderr, no traceback.

Exit codes:

- 0: done.
- 1: refused or failed, and nothing changed because of it: a usage or user error, a
  request isthmusd refused (invalid manifest, conflict, not found, still busy at the
  timeout), or isthmusd not running.
- 3: the outcome is unknown: isthmusd did not answer in time (or the connection broke
  and it stopped answering). A change may still take effect; the message says how to
  check, and re-running an apply or delete with the same `--idempotency-key` makes it
  happen at most once.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click

from isthmus.cli.errors import UserError
from isthmus.daemon.client import DaemonError, DaemonNotRunning, NoAnswer

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_OUTCOME_UNKNOWN = 3

_REPORTED = (UserError, DaemonError, DaemonNotRunning)


class IsthmusGroup(click.Group):
    """A click group with lazily imported commands (`name -> "module:attribute"`).

    Our own errors (UserError, DaemonError, DaemonNotRunning) and click's usage errors
    are printed without traceback or usage block and exit 1; NoAnswer (isthmusd did not
    answer in time: the outcome is unknown) exits 3.
    """

    def __init__(
        self, *args: Any, lazy_commands: Mapping[str, str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in self.lazy_commands:
            return command
        module_name, _, attribute = self.lazy_commands[cmd_name].partition(":")
        loaded = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(loaded, click.Command):
            raise TypeError(f"{self.lazy_commands[cmd_name]} is not a click command")
        self.add_command(loaded, cmd_name)
        return loaded

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NoAnswer as exc:
            report(exc.lines)
            ctx.exit(EXIT_OUTCOME_UNKNOWN)
        except _REPORTED as exc:
            report(_lines(exc))
            ctx.exit(EXIT_FAILED)

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
            result = EXIT_FAILED
        except click.ClickException as exc:
            report([f"error: {exc.format_message()}"])
            result = EXIT_FAILED
        except click.Abort:
            report(["error: aborted"])
            result = EXIT_FAILED
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)


def report(lines: Sequence[str]) -> None:
    for line in lines:
        click.echo(line, err=True)


def _lines(exc: Exception) -> list[str]:
    if isinstance(exc, DaemonNotRunning):
        return [f"error: {exc}"]
    lines = getattr(exc, "lines", None)
    return list(lines) if lines else [f"error: {exc}"]
