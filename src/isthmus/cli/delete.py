"""`isthmus delete`: remove objects by kind and name or by manifest (-f), all or nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from isthmus.cli.context import CliContext, notice, pass_cli
from isthmus.cli.errors import UserError
from isthmus.cli.kinds import UnknownKind, group_of, resolve_kind, resource_name
from isthmus.cli.pods import POD_KINDS, delete_pods
from isthmus.cli.sources import first_object, read_documents
from isthmus.cli.waiting import check_hint, idempotency_key_option, timeout_option
from isthmus.daemon.client import DaemonClient, NoAnswer, Reply, new_idempotency_key

DEFAULT_NAMESPACE = "default"


@click.command("delete")
@click.argument("kind", required=False)
@click.argument("names", nargs=-1)
@click.option(
    "-f",
    "--filename",
    "filenames",
    multiple=True,
    help="Delete the objects described in these manifests (file, directory or -).",
)
@click.option("-n", "--namespace", help="Namespace of the objects (default: default).")
@click.option("--wait/--no-wait", default=True, help="Pods: return only once the pod has stopped.")
@idempotency_key_option
@timeout_option(default=180.0)  # a pod's graceful stop may take its whole grace period
@pass_cli
def delete_command(
    cli: CliContext,
    kind: str | None,
    names: tuple[str, ...],
    filenames: tuple[str, ...],
    namespace: str | None,
    wait: bool,
    idempotency_key: str | None,
) -> None:
    """Delete KIND NAME... or the objects in -f manifests; nothing changes if any is missing.

    Pods are not stored objects: `delete pod NAME` stops the runtime's pod gracefully and
    its Deployment replaces it."""
    if filenames and kind:
        raise UserError("give either -f FILE or KIND NAME, not both")
    if kind and kind.lower() in POD_KINDS and names:
        delete_pods(cli, names, namespace, wait)
        return
    key = idempotency_key or new_idempotency_key()
    if filenames:
        documents = read_documents(filenames)
        target = first_object(documents)
        if target is not None and target[2] is None:
            target = (target[0], target[1], namespace)
        reply = _delete(
            cli, target, lambda c: c.delete_documents(documents, namespace, idempotency_key=key)
        )
    elif kind and names:
        keys = _keys(kind, names, namespace)
        first = keys[0]
        target = (first[0], first[2], first[1] or None)
        reply = _delete(cli, target, lambda c: c.delete_keys(keys, idempotency_key=key))
    else:
        raise UserError("give -f FILE or KIND NAME (e.g. `isthmus delete vs reviews`)")
    if reply.replayed:
        notice(f"isthmusd had already deleted this (--idempotency-key {key}); its result then:")
    for result in reply.get("results", []):
        click.echo(f'{_resource(result)} "{result["name"]}" deleted')


def _delete(
    cli: CliContext,
    target: tuple[str, str, str | None] | None,
    send: Callable[[DaemonClient], Reply],
) -> Reply:
    """Send one delete; if its outcome is unknown, say how to check the first object."""
    try:
        with cli.client() as client:
            return send(client)
    except NoAnswer as exc:
        if exc.outcome_unknown:
            check_hint(cli, exc, target, "delete it")
        raise


def _keys(kind: str, names: tuple[str, ...], namespace: str | None) -> list[tuple[str, str, str]]:
    try:
        info = resolve_kind(kind)
    except UnknownKind as exc:
        raise UserError(str(exc)) from exc
    scope = (namespace or DEFAULT_NAMESPACE) if info.namespaced else ""
    return [(info.kind, scope, name) for name in names]


def _resource(result: dict[str, Any]) -> str:
    return resource_name(str(result["kind"]), group_of(str(result.get("apiVersion", ""))))
