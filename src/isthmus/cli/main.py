"""The `isthmus` command: a click group with one module per command family.

Commands stay thin: parse arguments, call the daemon through `DaemonClient`, print.
Add a command family by writing its module and naming its command in COMMANDS; it is
imported only when used. Commands that call isthmusd take `--timeout`
(`isthmus.cli.waiting.timeout_option`); exit codes are listed in `isthmus.cli.group`.
"""

from __future__ import annotations

import click

from isthmus.cli.context import CliContext
from isthmus.cli.group import IsthmusGroup
from isthmus.home import resolve_home

COMMANDS: dict[str, str] = {
    "apply": "isthmus.cli.apply:apply_command",
    "validate": "isthmus.cli.validate:validate_command",
    "get": "isthmus.cli.get:get_command",
    "delete": "isthmus.cli.delete:delete_command",
    "daemon": "isthmus.cli.daemon_cmd:daemon_command",
    "proxy-status": "isthmus.cli.proxy_status:proxy_status_command",
    "demo": "isthmus.cli.demo_cmd:demo_command",
    "up": "isthmus.cli.lifecycle:up_command",
    "down": "isthmus.cli.lifecycle:down_command",
    "status": "isthmus.cli.lifecycle:status_command",
    "restart": "isthmus.cli.lifecycle:restart_command",
    "node": "isthmus.cli.lifecycle:node_command",
    "logs": "isthmus.cli.pods:logs_command",
    "exec": "isthmus.cli.pods:exec_command",
    "scale": "isthmus.cli.scale:scale_command",
    "port-forward": "isthmus.cli.port_forward:port_forward_command",
    "proxy-config": "isthmus.cli.proxy_config:proxy_config_command",
    "pc": "isthmus.cli.proxy_config:proxy_config_command",
    "top": "isthmus.cli.top:top_command",
    "traces": "isthmus.cli.traces:traces_command",
    "x": "isthmus.cli.xcmd:x_command",
}


@click.group(
    cls=IsthmusGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit codes: 0 done; 1 refused or failed (nothing changed); 3 isthmusd did not "
    "answer in time, the outcome is unknown (the message says how to check).",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    help="Mesh home directory (default: $ISTHMUS_HOME, else ~/.isthmus).",
)
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """isthmus: an Istio-compatible service mesh with an Envoy data plane."""
    ctx.obj = CliContext(resolve_home(home), home_option=home)


def main() -> None:
    """Console-script entry point."""
    cli()
