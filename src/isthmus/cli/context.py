"""What every command gets from the `isthmus` group: the mesh home and a daemon client."""

from __future__ import annotations

from dataclasses import dataclass

import click

from isthmus.daemon.client import DaemonClient
from isthmus.daemon.paths import MeshHome


@dataclass(frozen=True)
class CliContext:
    """The group's options, shared with every command through click's context object."""

    home: MeshHome

    def client(self) -> DaemonClient:
        return DaemonClient(self.home)


pass_cli = click.make_pass_decorator(CliContext)
