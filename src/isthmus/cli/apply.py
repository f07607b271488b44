"""`isthmus apply -f ...`: send manifests to the daemon, all or nothing, like kubectl apply."""

from __future__ import annotations

from typing import Any

import click

from isthmus.cli.context import CliContext, pass_cli
from isthmus.cli.errors import UserError
from isthmus.cli.kinds import group_of, resource_name
from isthmus.cli.sources import read_documents


@click.command("apply")
@click.option(
    "-f",
    "--filename",
    "filenames",
    multiple=True,
    required=True,
    help="Manifest file, directory of *.yaml/*.yml/*.json, or - for stdin. Repeatable.",
)
@click.option("--dry-run", is_flag=True, help="Validate and report, change nothing.")
@click.option("-n", "--namespace", help="Namespace for objects that do not name one.")
@pass_cli
def apply_command(
    cli: CliContext, filenames: tuple[str, ...], dry_run: bool, namespace: str | None
) -> None:
    """Create or update objects from manifests in one transaction."""
    documents = read_documents(filenames)
    if not any(d.text.strip() for d in documents):
        raise UserError("no objects passed to apply")
    with cli.client() as client:
        reply = client.apply(documents, dry_run=dry_run, namespace=namespace)
    suffix = " (dry run)" if dry_run else ""
    for result in reply.get("results", []):
        click.echo(f"{_object_name(result)} {result['result']}{suffix}")


def _object_name(result: dict[str, Any]) -> str:
    """kubectl's `virtualservice.networking.istio.io/reviews`."""
    group = group_of(str(result.get("apiVersion", "")))
    return f"{resource_name(str(result['kind']), group)}/{result['name']}"
