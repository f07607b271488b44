"""`isthmus get KIND [NAME...]`: show stored objects as a table, YAML or JSON.

As kubectl, `-o yaml|json` shows each object in the apiVersion the command named
(`virtualservices.v1beta1.networking.istio.io`), else in the kind's preferred version,
whichever version it was applied with (every version of a kind has one schema).
"""

from __future__ import annotations

from typing import Any

import click

from isthmus.cli.context import CliContext, pass_cli
from isthmus.cli.errors import UserError
from isthmus.cli.kinds import KindInfo, ResourceRef, UnknownKind, resolve_ref, resource_of
from isthmus.cli.pods import POD_KINDS, get_pods
from isthmus.cli.render import as_document, table, to_json, to_yaml
from isthmus.cli.runtime_status import (
    ENDPOINT_KINDS,
    deployments_table,
    get_endpoints,
    has_status,
    with_deployment_status,
)
from isthmus.cli.waiting import timeout_option

DEFAULT_NAMESPACE = "default"


@click.command("get")
@click.argument("kind")
@click.argument("names", nargs=-1)
@click.option("-n", "--namespace", help="Namespace to list (default: default).")
@click.option("-A", "--all-namespaces", is_flag=True, help="List across all namespaces.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["yaml", "json", "wide"]),
    help="Print full objects as yaml/json, or a wider table.",
)
@timeout_option
@pass_cli
def get_command(
    cli: CliContext,
    kind: str,
    names: tuple[str, ...],
    namespace: str | None,
    all_namespaces: bool,
    output: str | None,
) -> None:
    """Show objects of one kind (vs, dr, se, we, svc, deploy, ns, sa, pods, ep, ...)."""
    if all_namespaces and namespace:
        raise UserError("use either -n/--namespace or -A/--all-namespaces, not both")
    if kind.lower() in POD_KINDS:
        get_pods(cli, names, namespace, all_namespaces, output)
        return
    if kind.lower() in ENDPOINT_KINDS:
        get_endpoints(cli, names, namespace, all_namespaces, output)
        return
    ref = _resource(kind)
    info = ref.info
    scope = _scope(info, namespace, all_namespaces)
    with cli.client() as client:
        bodies = client.get(kind=info.kind, namespace=scope)
    if names:
        bodies = [b for b in bodies if b.get("metadata", {}).get("name") in names]
    if info.kind == "Deployment" and bodies:
        bodies = with_deployment_status(cli, bodies)
    if output in ("yaml", "json"):
        if bodies or not names:
            shown = [_in_version(body, ref.shown_api_version) for body in bodies]
            document = as_document(shown, single=len(names) == 1)
            click.echo(to_yaml(document) if output == "yaml" else to_json(document))
    elif bodies:
        with_namespace = info.namespaced and scope is None
        if has_status(bodies):
            click.echo(deployments_table(bodies, with_namespace, wide=output == "wide"))
        else:
            click.echo(table(info.kind, bodies, with_namespace, wide=output == "wide"))
    elif not names:
        where = "" if scope is None or not info.namespaced else f" in {scope} namespace"
        click.echo(f"No resources found{where}.", err=True)
    _fail_on_missing(info, scope, names, bodies)


def _resource(name: str) -> ResourceRef:
    try:
        return resolve_ref(name)
    except UnknownKind as exc:
        raise UserError(str(exc)) from exc


def _in_version(body: dict[str, Any], api_version: str) -> dict[str, Any]:
    """The body as served in `api_version` (key order kept): only apiVersion differs."""
    if body.get("apiVersion") == api_version:
        return body
    return {k: api_version if k == "apiVersion" else v for k, v in body.items()}


def _scope(info: KindInfo, namespace: str | None, all_namespaces: bool) -> str | None:
    """The namespace filter: None for all namespaces and for cluster-scoped kinds."""
    if not info.namespaced or all_namespaces:
        return None
    return namespace or DEFAULT_NAMESPACE


def _fail_on_missing(
    info: KindInfo, scope: str | None, names: tuple[str, ...], bodies: list[dict[str, Any]]
) -> None:
    found = {b.get("metadata", {}).get("name") for b in bodies}
    missing = [n for n in dict.fromkeys(names) if n not in found]
    if missing:
        where = f" in namespace {scope}" if scope else ""
        raise UserError(*(f'{resource_of(info)} "{name}" not found{where}' for name in missing))
