"""`isthmus scale deploy NAME --replicas N`: change a stored Deployment's spec.replicas.

The change goes through the normal apply path (read the stored body, set the field,
apply it back with its resourceVersion), so it is validated like any apply, persists
across restarts, and a concurrent change is detected and retried rather than lost.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import click

from isthmus.cli.context import CliContext, pass_cli
from isthmus.cli.errors import UserError
from isthmus.cli.kinds import UnknownKind, resolve_kind
from isthmus.cli.waiting import get_args, timeout_option
from isthmus.daemon.client import DaemonClient, DaemonError, Document, NoAnswer

SCALABLE = "Deployment"
CONFLICT_RETRIES = 3


def scale_targets(args: tuple[str, ...]) -> list[str]:
    """Deployment names from kubectl's two spellings: `deploy A B` or `deployment/A deploy/B`."""
    if not args:
        raise UserError("give what to scale, e.g. `isthmus scale deploy NAME --replicas 2`")
    if "/" in args[0]:
        names = []
        for arg in args:
            kind, slash, name = arg.partition("/")
            if not slash or not name:
                raise UserError(f'"{arg}": give every target as TYPE/NAME once one is')
            _require_deployment(kind)
            names.append(name)
        return list(dict.fromkeys(names))
    _require_deployment(args[0])
    if len(args) == 1:
        raise UserError(f"give the name of the {args[0]} to scale")
    return list(dict.fromkeys(args[1:]))


def _require_deployment(kind: str) -> None:
    try:
        info = resolve_kind(kind)
    except UnknownKind as exc:
        raise UserError(str(exc)) from exc
    if info.kind != SCALABLE:
        raise UserError(f'cannot scale "{kind}": only Deployments have replicas in isthmus')


def scaled(body: dict[str, Any], replicas: int) -> dict[str, Any]:
    """A copy of the Deployment body with spec.replicas set (metadata kept for concurrency)."""
    out = copy.deepcopy(body)
    out.setdefault("spec", {})["replicas"] = replicas
    return out


def current_replicas_of(body: dict[str, Any]) -> int:
    value = body.get("spec", {}).get("replicas")
    return value if isinstance(value, int) else 1  # Kubernetes' default


def scale_deployment(
    client: DaemonClient, namespace: str, name: str, replicas: int, expect: int | None
) -> None:
    for attempt in range(CONFLICT_RETRIES):
        bodies = client.get(kind=SCALABLE, namespace=namespace, name=name)
        if not bodies:
            raise UserError(f'deployments.apps "{name}" not found in namespace {namespace}')
        body = bodies[0]
        if expect is not None and current_replicas_of(body) != expect:
            raise UserError(
                f"expected replicas of deployment {name} to be {expect}, "
                f"was {current_replicas_of(body)}"
            )
        document = Document(f"deployment.apps/{name}", json.dumps(scaled(body, replicas)))
        try:
            client.apply([document], namespace=namespace)
            return
        except DaemonError as exc:
            if exc.status != 409 or attempt == CONFLICT_RETRIES - 1:
                raise


@click.command("scale")
@click.argument("targets", nargs=-1)
@click.option("--replicas", type=click.IntRange(min=0), required=True, help="Desired pods.")
@click.option(
    "--current-replicas",
    type=click.IntRange(min=0),
    help="Precondition: scale only if the Deployment now wants this many.",
)
@click.option("-n", "--namespace", help="Namespace of the Deployment (default: default).")
@timeout_option
@pass_cli
def scale_command(
    cli: CliContext,
    targets: tuple[str, ...],
    replicas: int,
    current_replicas: int | None,
    namespace: str | None,
) -> None:
    """Set the replica count of Deployments (deploy NAME... or deployment/NAME...)."""
    names = scale_targets(targets)
    ns = namespace or "default"
    with cli.client() as client:
        for name in names:
            try:
                scale_deployment(client, ns, name, replicas, current_replicas)
            except NoAnswer as exc:
                if exc.outcome_unknown:
                    check = cli.command(*get_args(SCALABLE, name, ns))
                    exc.set_hints(
                        f"check with `{check}`; scaling to {replicas} again is safe"
                        + (" without --current-replicas" if current_replicas is not None else "")
                    )
                raise
            click.echo(f"deployment.apps/{name} scaled")
