"""`isthmus x mtls-readiness [-n NS | -A]`: which clients still reach each workload in
plaintext, read from the server sidecars' own counters, i.e. what STRICT would refuse.

Each sidecar under PERMISSIVE counts plaintext requests (HTTP) and connections (TCP)
per client address and port (pilot.security.plaintext_stats). Addresses are named
after the pods that hold them; a client pod without a sidecar is what the seed's
"503 after mTLS migration" is about: give it a sidecar, or keep its target PERMISSIVE.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Any

import click

from isthmus.cli.context import CliContext, pass_cli
from isthmus.cli.errors import UserError
from isthmus.cli.pods import fetch_pods, text_table
from isthmus.cli.proxy_config import AdminError, admin_get
from isthmus.cli.waiting import timeout_option
from isthmus.cli.xcmd import require_root
from isthmus.pilot.security.plaintext_stats import COUNTER, PORT_TAG, PROMETHEUS_NAME, SOURCE_TAG

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def plaintext_clients(prometheus_text: str) -> list[tuple[str, str, int]]:
    """(client address, port, count) from a sidecar's Prometheus stats."""
    out = []
    for line in prometheus_text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match["name"] != PROMETHEUS_NAME:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        count = int(float(match["value"]))
        if count > 0:
            out.append((labels.get(SOURCE_TAG, "?"), labels.get(PORT_TAG, "?"), count))
    return out


def _client_name(address: str, by_ip: dict[str, dict[str, Any]], server: dict[str, Any]) -> str:
    if address == server.get("ip"):
        return f"{server['name']}.{server['namespace']} (itself)"
    pod = by_ip.get(address)
    if pod is None:
        return f"{address} (not a pod of the mesh)"
    return f"{pod['name']}.{pod['namespace']}"


def readiness_rows(
    servers: Iterable[dict[str, Any]],
    counts: dict[str, list[tuple[str, str, int]]],
    everyone: list[dict[str, Any]],
) -> list[list[str]]:
    by_ip = {p["ip"]: p for p in everyone if p.get("ip")}
    rows = []
    for server in servers:
        for address, port, count in sorted(counts.get(server["name"], [])):
            client = by_ip.get(address)
            sidecar = "-" if client is None else ("yes" if client.get("sidecar") else "no")
            rows.append(
                [
                    f"{server['name']}.{server['namespace']}",
                    port,
                    _client_name(address, by_ip, server),
                    sidecar,
                    str(count),
                ]
            )
    return rows


async def _read_all(servers: list[dict[str, Any]]) -> dict[str, list[tuple[str, str, int]]]:
    async def one(pod: dict[str, Any]) -> tuple[str, list[tuple[str, str, int]]]:
        body = await admin_get(pod["netns"], f"/stats/prometheus?filter={COUNTER}")
        return pod["name"], plaintext_clients(body.decode(errors="replace"))

    return dict(await asyncio.gather(*(one(p) for p in servers)))


@click.command("mtls-readiness")
@click.option("-n", "--namespace", help="Only workloads of this namespace.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Workloads of every namespace.")
@timeout_option
@pass_cli
def mtls_readiness_command(cli: CliContext, namespace: str | None, all_namespaces: bool) -> None:
    """Which clients still connect in plaintext to each workload: what to fix before
    moving it to STRICT mTLS (counted by the workloads' own sidecars)."""
    everyone = fetch_pods(cli)
    wanted = None if all_namespaces else (namespace or "default")
    servers = [
        p
        for p in everyone
        if p.get("sidecar") and p.get("netns") and wanted in (None, p["namespace"])
    ]
    if not servers:
        where = "" if wanted is None else f" in namespace {wanted}"
        raise UserError(f"no pods with a sidecar{where}")
    require_root("x mtls-readiness")
    try:
        counts = asyncio.run(_read_all(servers))
    except (AdminError, OSError, TimeoutError) as exc:
        raise UserError(f"reading the sidecars' counters: {exc}") from exc
    rows = readiness_rows(servers, counts, everyone)
    if not rows:
        click.echo("no plaintext clients seen: these workloads can move to STRICT")
        return
    click.echo(text_table(["WORKLOAD", "PORT", "PLAINTEXT CLIENT", "SIDECAR", "COUNT"], rows))
    outside = {r[2] for r in rows if r[3] != "yes"}
    click.echo(
        f"\n{len(outside)} client(s) without a sidecar would be refused under STRICT: give "
        "them a sidecar, or keep a PERMISSIVE PeerAuthentication for their targets"
    )
