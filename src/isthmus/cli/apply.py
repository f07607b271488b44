"""`isthmus apply -f ...`: send manifests to the daemon, all or nothing, like kubectl apply.

Each apply carries an idempotency key (`--idempotency-key`, else a new one): if isthmusd
does not answer in time the command exits 3 and says how to check, and re-running it with
the same key applies it at most once.

The same object defined more than once is applied in document order, as kubectl does:
the last copy wins. Its one result line says so (`... configured (the last of 2 copies
wins: app.yaml:12)`).

`--dry-run` changes nothing, so it does not need isthmusd: when isthmusd is not running
(or does not answer) the manifests are checked here with the same checks
(`isthmus.cli.offline`) and one line on stderr says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click

from isthmus.cli.context import CliContext, notice, pass_cli
from isthmus.cli.errors import UserError
from isthmus.cli.kinds import group_of, resource_name
from isthmus.cli.offline import check_offline
from isthmus.cli.sources import first_object, read_documents
from isthmus.cli.waiting import check_hint, idempotency_key_option, timeout_option
from isthmus.daemon.client import (
    DaemonNotRunning,
    Document,
    NoAnswer,
    format_seconds,
    new_idempotency_key,
)

OFFLINE_DRY_RUN = (
    "validated offline with apply's checks; not compared with the objects in the mesh, "
    "so whether each would be created, configured or unchanged is not known"
)


@click.command("apply")
@click.option(
    "-f",
    "--filename",
    "filenames",
    multiple=True,
    required=True,
    help="Manifest file, directory of *.yaml/*.yml/*.json, or - for stdin. Repeatable.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Validate and report, change nothing (checked offline if isthmusd is not running).",
)
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
    except DaemonNotRunning:
        if not dry_run:
            raise
        _dry_run_offline(cli, documents, namespace, f"isthmusd is not running at {cli.home.root}")
        return
    except NoAnswer as exc:
        if dry_run:
            waited = format_seconds(exc.timeout)
            _dry_run_offline(cli, documents, namespace, f"isthmusd did not answer within {waited}")
            return
        if exc.outcome_unknown:
            target = first_object(documents)
            if target is not None and target[2] is None:
                target = (target[0], target[1], namespace)
            check_hint(cli, exc, target, "apply it")
        raise
    if reply.replayed:
        notice(f"isthmusd had already applied this (--idempotency-key {key}); its result then:")
    report(reply.get("results", []), reply.get("warnings", []), dry_run)


def report(results: Iterable[dict[str, Any]], warnings: Iterable[str], dry_run: bool) -> None:
    """Warnings on stderr, then one line per object on stdout, as kubectl prints them."""
    for warning in warnings:
        click.echo(f"Warning: {warning}", err=True)
    for result in results:
        click.echo(result_line(result, dry_run))


def result_line(result: dict[str, Any], dry_run: bool) -> str:
    """`virtualservice.networking.istio.io/reviews configured (dry run; the last of 2
    copies wins: app.yaml:12)`."""
    notes = ["dry run"] if dry_run else []
    copies = result.get("copies")
    if isinstance(copies, int) and copies > 1:
        notes.append(f"the last of {copies} copies wins: {result.get('appliedFrom', '?')}")
    suffix = f" ({'; '.join(notes)})" if notes else ""
    return f"{_object_name(result)} {result['result']}{suffix}"


def _dry_run_offline(
    cli: CliContext, documents: list[Document], namespace: str | None, why: str
) -> None:
    results, warnings = check_offline(documents, namespace, cli.home, "apply")
    notice(f"{why}: {OFFLINE_DRY_RUN}")
    report(results, warnings, dry_run=True)


def _object_name(result: dict[str, Any]) -> str:
    """kubectl's `virtualservice.networking.istio.io/reviews`."""
    group = group_of(str(result.get("apiVersion", "")))
    return f"{resource_name(str(result['kind']), group)}/{result['name']}"
