"""Pods of the local runtime: `get pods`, `delete pod`, `logs`, `exec` (kubectl's verbs)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from isthmus.cli.context import CliContext, pass_cli
from isthmus.cli.errors import UserError
from isthmus.cli.render import as_document, to_json, to_yaml
from isthmus.cli.waiting import timeout_option
from isthmus.netns import exec_argv

POD_KINDS = frozenset({"pod", "pods", "po"})
SIDECAR_CONTAINER = "istio-proxy"
NETNS_ANNOTATION = "isthmus.io/netns"


def fetch_pods(cli: CliContext) -> list[dict[str, Any]]:
    with cli.client() as client:
        answer = client.request("GET", "/v1/pods")
    if not answer.get("runtime"):
        raise UserError(
            "the local runtime is not running in this mesh (start it with `isthmus up`)"
        )
    return list(answer["pods"])


def find_pod(cli: CliContext, name: str, namespace: str | None) -> dict[str, Any]:
    """The pod `name` (in `namespace` if given); istioctl's `pod.namespace` also works."""
    everything = fetch_pods(cli)
    pods = [p for p in everything if p["name"] == name]
    if namespace is not None:
        pods = [p for p in pods if p["namespace"] == namespace]
    if not pods and namespace is None and "." in name:
        short, _, ns = name.partition(".")
        pods = [p for p in everything if p["name"] == short and p["namespace"] == ns]
    if not pods:
        where = f" in namespace {namespace}" if namespace else ""
        raise UserError(f'pod "{name}" not found{where}')
    return pods[0]


def _age(created: float) -> str:
    seconds = int(time.time() - created)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def text_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell, three spaces apart, as kubectl prints them."""
    lines = [list(header), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in lines
    )


def pods_table(pods: list[dict[str, Any]], with_namespace: bool, wide: bool = False) -> str:
    header = ["NAME", "READY", "STATUS", "RESTARTS", "IP", "AGE"]
    if wide:
        header += ["NODE", "NETNS", "SIDECAR", "RESTARTS BY CONTAINER"]
    if with_namespace:
        header.insert(0, "NAMESPACE")
    rows = []
    for p in sorted(pods, key=lambda p: (p["namespace"], p["name"])):
        row = [
            p["name"],
            f"{p['ready_containers']}/{p['total_containers']}",
            p["phase"] if p["ready"] or p["phase"] != "Running" else "Running (not ready)",
            str(p["restarts"]),
            p["ip"] or "<none>",
            _age(p["created"]),
        ]
        if wide:
            by_container = p.get("container_restarts") or {}
            row += [
                p.get("node") or "<none>",
                p["netns"] or "<none>",
                "true" if p["sidecar"] else "false",
                ",".join(f"{name}={count}" for name, count in by_container.items()) or "<none>",
            ]
        if with_namespace:
            row.insert(0, p["namespace"])
        rows.append(row)
    return text_table(header, rows)


def pod_document(pod: dict[str, Any]) -> dict[str, Any]:
    """A pod of the runtime as a Kubernetes v1 Pod (for -o yaml/json and jq)."""
    containers = [{"name": name} for name in pod["containers"]]
    if pod["sidecar"]:
        containers.append({"name": SIDECAR_CONTAINER})
    created = datetime.fromtimestamp(pod["created"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod["name"],
            "namespace": pod["namespace"],
            "labels": dict(pod["labels"]),
            "annotations": {**pod.get("annotations", {}), NETNS_ANNOTATION: pod["netns"]},
            "creationTimestamp": created,
        },
        "spec": {"containers": containers},
        "status": {
            "phase": pod["phase"],
            "podIP": pod["ip"],
            "podIPs": [{"ip": pod["ip"]}] if pod["ip"] else [],
            "conditions": [{"type": "Ready", "status": "True" if pod["ready"] else "False"}],
            "containerStatuses": [
                {"name": name, "restartCount": count}
                for name, count in (pod.get("container_restarts") or {}).items()
            ],
            "startTime": created,
        },
    }


def get_pods(
    cli: CliContext,
    names: tuple[str, ...],
    namespace: str | None,
    all_ns: bool,
    output: str | None = None,
) -> None:
    pods = fetch_pods(cli)
    if not all_ns:
        pods = [p for p in pods if p["namespace"] == (namespace or "default")]
    if names:
        pods = [p for p in pods if p["name"] in names]
        missing = set(names) - {p["name"] for p in pods}
        if missing:
            raise UserError(*(f'pod "{n}" not found' for n in sorted(missing)))
    if output in ("yaml", "json"):
        docs = [pod_document(p) for p in sorted(pods, key=lambda p: (p["namespace"], p["name"]))]
        document = as_document(docs, single=len(names) == 1)
        click.echo(to_yaml(document) if output == "yaml" else to_json(document))
        return
    if not pods:
        click.echo("No resources found.", err=True)
        return
    click.echo(pods_table(pods, with_namespace=all_ns, wide=output == "wide"))


def delete_pods(cli: CliContext, names: tuple[str, ...], namespace: str | None, wait: bool) -> None:
    """`delete pod NAME...`: every pod must exist, then each stops gracefully and its
    Deployment starts a replacement (as with kubectl, a Deployment's pod comes back)."""
    ns = namespace or "default"
    existing = {p["name"] for p in fetch_pods(cli) if p["namespace"] == ns}
    missing = [n for n in dict.fromkeys(names) if n not in existing]
    if missing:
        raise UserError(*(f'pod "{n}" not found in namespace {ns}' for n in missing))
    with cli.client() as client:
        for name in dict.fromkeys(names):
            client.request("POST", "/v1/pods/delete", {"namespace": ns, "name": name, "wait": wait})
            click.echo(f'pod "{name}" deleted')


@click.command("logs")
@timeout_option
@click.argument("pod")
@click.option("-n", "--namespace")
@click.option("-c", "--container", help="Container name, or istio-proxy for the sidecar.")
@click.option("-f", "--follow", is_flag=True)
@pass_cli
def logs_command(
    cli: CliContext, pod: str, namespace: str | None, container: str | None, follow: bool
) -> None:
    """Print a container's output (the first container unless -c; a gateway's proxy)."""
    found = find_pod(cli, pod, namespace)
    # A gateway pod's only container is its proxy, istio-proxy.
    name = container or next(iter(found["containers"]), SIDECAR_CONTAINER)
    if name not in (*found["containers"], SIDECAR_CONTAINER):
        raise UserError(f'container "{name}" is not in pod {pod}: {", ".join(found["containers"])}')
    path = Path(found["logs"]) / f"{name}.log"
    if not path.exists():
        return
    with path.open("rb") as f:
        while True:
            chunk = f.read(65536)
            if chunk:
                click.echo(chunk.decode(errors="replace"), nl=False)
                continue
            if not follow:
                return
            time.sleep(0.2)


@click.command("exec", context_settings={"ignore_unknown_options": True})
@timeout_option
@click.argument("pod")
@click.option("-n", "--namespace")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
@pass_cli
def exec_command(
    cli: CliContext, pod: str, namespace: str | None, command: tuple[str, ...]
) -> None:
    """Run COMMAND inside the pod's network namespace (use -- before it)."""
    found = find_pod(cli, pod, namespace)
    argv = exec_argv(found["netns"], list(command))
    os.execvp(argv[0], argv)
