"""`isthmus apply -f ...`: send manifests to the daemon, all or nothing, like kubectl apply.

Each apply carries an idempotency key (`--idempotency-key`, else a new one): if isthmusd
does not answer in time the command exits 3 and says how to check, and re-running it with
the same key applies it at most once.
"""

from __future__ import annotations

from typing import Any

import click

from isthmus.cli.context import CliContext, notice, pass_cli
from isthmus.cli.errors import UserError
from isthmus.cli.kinds import group_of, resource_name
from isthmus.cli.sources import first_object, read_documents
from isthmus.cli.waiting import check_hint, idempotency_key_option, timeout_option
from isthmus.daemon.client import NoAnswer, new_idempotency_key


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
@idempotency_key_option
@timeout_option
@pass_cli
def apply_command(
    cli: CliContext,
    filenames: tuple[str, ...],
    dry_run: bool,
    namespace: str | None,
    idempotency_key: str | None,
) -> None:
    """Create or update objects from manifests in one transaction."""
    documents = read_documents(filenames)
    if not any(d.text.strip() for d in documents):
        raise UserError("no objects passed to apply")
    key = idempotency_key or new_idempotency_key()
    try:
        with cli.client() as client:
            reply = client.apply(
                documents, dry_run=dry_run, namespace=namespace, idempotency_key=key
            )
    except NoAnswer as exc:
        if exc.outcome_unknown:
            target = first_object(documents)
            if target is not None and target[2] is None:
                target = (target[0], target[1], namespace)
            check_hint(cli, exc, target, "apply it")
        raise
    if reply.replayed:
        notice(f"isthmusd had already applied this (--idempotency-key {key}); its result then:")
    suffix = " (dry run)" if dry_run else ""
    for warning in reply.get("warnings", []):
        click.echo(f"Warning: {warning}", err=True)
    for result in reply.get("results", []):
        click.echo(f"{_object_name(result)} {result['result']}{suffix}")


def _object_name(result: dict[str, Any]) -> str:
    """kubectl's `virtualservice.networking.istio.io/reviews`."""
    group = group_of(str(result.get("apiVersion", "")))
    return f"{resource_name(str(result['kind']), group)}/{result['name']}"
