"""Pods of the local runtime: `get pods`, `logs`, `exec` (kubectl's verbs)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click

from isthmus.cli.context import CliContext, pass_cli
from isthmus.cli.errors import UserError
from isthmus.netns import exec_argv

POD_KINDS = frozenset({"pod", "pods", "po"})
SIDECAR_CONTAINER = "istio-proxy"


def fetch_pods(cli: CliContext) -> list[dict[str, Any]]:
    with cli.client() as client:
        answer = client.request("GET", "/v1/pods")
    if not answer.get("runtime"):
        raise UserError(
            "the local runtime is not running in this mesh (start it with `isthmus up`)"
        )
    return list(answer["pods"])


def find_pod(cli: CliContext, name: str, namespace: str | None) -> dict[str, Any]:
    pods = [p for p in fetch_pods(cli) if p["name"] == name]
    if namespace is not None:
        pods = [p for p in pods if p["namespace"] == namespace]
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


def pods_table(pods: list[dict[str, Any]], with_namespace: bool) -> str:
    header = ["NAME", "READY", "STATUS", "RESTARTS", "IP", "AGE"]
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
        if with_namespace:
            row.insert(0, p["namespace"])
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    )


def get_pods(cli: CliContext, names: tuple[str, ...], namespace: str | None, all_ns: bool) -> None:
    pods = fetch_pods(cli)
    if not all_ns:
        pods = [p for p in pods if p["namespace"] == (namespace or "default")]
    if names:
        pods = [p for p in pods if p["name"] in names]
        missing = set(names) - {p["name"] for p in pods}
        if missing:
            raise UserError(*(f'pod "{n}" not found' for n in sorted(missing)))
    if not pods:
        click.echo("No resources found.", err=True)
        return
    click.echo(pods_table(pods, with_namespace=all_ns))


@click.command("logs")
@click.argument("pod")
@click.option("-n", "--namespace")
@click.option("-c", "--container", help="Container name, or istio-proxy for the sidecar.")
@click.option("-f", "--follow", is_flag=True)
@pass_cli
def logs_command(
    cli: CliContext, pod: str, namespace: str | None, container: str | None, follow: bool
) -> None:
    """Print a container's output (the first container unless -c)."""
    found = find_pod(cli, pod, namespace)
    name = container or found["containers"][0]
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
