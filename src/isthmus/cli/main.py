"""The `isthmus` command: a click group with one module per command family.

Commands stay thin: parse arguments, call the daemon through `DaemonClient`, print.
Add a command family by writing its module and listing its command in COMMANDS.
"""

from __future__ import annotations

import click

from isthmus.cli.apply import apply_command
from isthmus.cli.context import CliContext
from isthmus.cli.delete import delete_command
from isthmus.cli.errors import IsthmusGroup
from isthmus.cli.get import get_command
from isthmus.daemon.paths import resolve_home

COMMANDS: tuple[click.Command, ...] = (apply_command, get_command, delete_command)


@click.group(cls=IsthmusGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    help="Mesh home directory (default: $ISTHMUS_HOME, else ~/.isthmus).",
)
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """isthmus: an Istio-compatible service mesh with an Envoy data plane."""
    ctx.obj = CliContext(resolve_home(home))


for _command in COMMANDS:
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli()
