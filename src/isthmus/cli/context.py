"""What every command gets from the `isthmus` group: the mesh home and a daemon client."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import click

from isthmus.daemon.client import DEFAULT_TIMEOUT, DaemonClient
from isthmus.home import MeshHome


@dataclass(frozen=True)
class CliContext:
    """The group's options, shared with every command through click's context object.

    `timeout` is how long a request may wait for isthmusd; commands that take
    `--timeout` (isthmus.cli.waiting.timeout_option) get a copy with their value.
    `home_option` is `--home` as the user gave it, so suggested commands can repeat it.
    """

    home: MeshHome
    timeout: float = DEFAULT_TIMEOUT
    home_option: str | None = None

    def client(self, timeout: float | None = None) -> DaemonClient:
        """A client with this command's timeout (or `timeout`) that says on stderr when
        isthmusd is slow to answer or busy."""
        return DaemonClient(
            self.home, timeout=self.timeout if timeout is None else timeout, notify=notice
        )

    def command(self, *args: str) -> str:
        """`isthmus [--home H] ARGS...`, quoted for a shell: a command to suggest."""
        home = ("--home", self.home_option) if self.home_option is not None else ()
        return shlex.join(["isthmus", *home, *args])


def notice(line: str) -> None:
    """A progress line for the user on stderr (stdout stays the command's output)."""
    click.echo(f"isthmus: {line}", err=True)


pass_cli = click.make_pass_decorator(CliContext)
