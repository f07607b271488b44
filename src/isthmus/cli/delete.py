"""`isthmus delete`: remove objects by kind and name or by manifest (-f), all or nothing."""

from __future__ import annotations

from typing import Any

import click

from isthmus.cli.context import CliContext, pass_cli
from isthmus.cli.errors import UserError
from isthmus.cli.kinds import UnknownKind, group_of, resolve_kind, resource_name
from isthmus.cli.pods import POD_KINDS, delete_pods
from isthmus.cli.sources import read_documents

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
@pass_cli
def delete_command(
    cli: CliContext,
    kind: str | None,
    names: tuple[str, ...],
    filenames: tuple[str, ...],
    namespace: str | None,
    wait: bool,
) -> None:
    """Delete KIND NAME... or the objects in -f manifests; nothing changes if any is missing.

    Pods are not stored objects: `delete pod NAME` stops the runtime's pod gracefully and
    its Deployment replaces it."""
    if filenames and kind:
        raise UserError("give either -f FILE or KIND NAME, not both")
    if kind and kind.lower() in POD_KINDS and names:
        delete_pods(cli, names, namespace, wait)
        return
    with cli.client() as client:
        if filenames:
            reply = client.delete_documents(read_documents(filenames), namespace=namespace)
        elif kind and names:
            reply = client.delete_keys(_keys(kind, names, namespace))
        else:
            raise UserError("give -f FILE or KIND NAME (e.g. `isthmus delete vs reviews`)")
    for result in reply.get("results", []):
        click.echo(f'{_resource(result)} "{result["name"]}" deleted')


def _keys(kind: str, names: tuple[str, ...], namespace: str | None) -> list[tuple[str, str, str]]:
    try:
        info = resolve_kind(kind)
    except UnknownKind as exc:
        raise UserError(str(exc)) from exc
    scope = (namespace or DEFAULT_NAMESPACE) if info.namespaced else ""
    return [(info.kind, scope, name) for name in names]


def _resource(result: dict[str, Any]) -> str:
    return resource_name(str(result["kind"]), group_of(str(result.get("apiVersion", ""))))
