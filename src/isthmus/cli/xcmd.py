"""`isthmus x ...`: debugging commands that look inside a pod (as `istioctl x`).

`x iptables POD` prints the pod's traffic capture rules exactly as the kernel holds them
(`iptables-save` run inside the pod's network namespace; it only reads).
"""

from __future__ import annotations

import os

import click

from isthmus.cli.context import CliContext, pass_cli
from isthmus.cli.errors import UserError
from isthmus.cli.group import IsthmusGroup
from isthmus.cli.pods import find_pod
from isthmus.cli.waiting import timeout_option
from isthmus.netns import CommandFailed, exec_argv, run_sync

TABLES = ("nat", "filter", "mangle", "raw")


def require_root(what: str) -> None:
    """Entering a pod's network namespace needs root; say so instead of failing oddly."""
    if os.geteuid() != 0:
        raise UserError(f"{what} needs root (it enters the pod's network namespace)")


def iptables_save_argv(netns: str, table: str) -> list[str]:
    if table not in TABLES:
        raise UserError(f'unknown iptables table "{table}"; known: {", ".join(TABLES)}')
    return exec_argv(netns, ["iptables-save", "-t", table])


@click.group(
    "x",
    cls=IsthmusGroup,
    lazy_commands={
        "authz": "isthmus.cli.authz_check:authz_group",
        "mtls-readiness": "isthmus.cli.mtls_readiness:mtls_readiness_command",
    },
)
def x_command() -> None:
    """Debugging commands that look inside a pod (as `istioctl x`)."""


@x_command.command("iptables")
@click.argument("pod")
@click.option("-n", "--namespace", help="Namespace of the pod (default: any).")
@click.option(
    "-t",
    "--table",
    type=click.Choice(TABLES),
    default="nat",
    show_default=True,
    help="The iptables table to show (capture lives in nat).",
)
@timeout_option
@pass_cli
def iptables_command(cli: CliContext, pod: str, namespace: str | None, table: str) -> None:
    """Print the pod's iptables rules (capture: the <MESH>_* chains in nat)."""
    found = find_pod(cli, pod, namespace)
    require_root("x iptables")
    try:
        result = run_sync(iptables_save_argv(found["netns"], table), timeout=10)
    except CommandFailed as exc:
        raise UserError(f"reading the rules of pod {found['name']}: {exc}") from exc
    click.echo(result.text, nl=False)
