"""`isthmus proxy-status`: every connected Envoy and whether it has what it should (as
`istioctl proxy-status`): per type SYNCED (last push ACKed), STALE (push not yet ACKed)
or NACKED (Envoy rejected the last push; the message says why), and how many resources,
of how many bytes, the proxy holds."""

from __future__ import annotations

from typing import Any

import click

from isthmus.cli.context import CliContext, pass_cli
from isthmus.cli.render import to_json, to_yaml
from isthmus.cli.waiting import timeout_option

_TYPES = (
    ("CDS", "Cluster"),
    ("LDS", "Listener"),
    ("EDS", "ClusterLoadAssignment"),
    ("RDS", "RouteConfiguration"),
)


def _state(types: dict[str, Any], suffix: str) -> str:
    for type_url, entry in types.items():
        if not type_url.endswith("." + suffix):
            continue
        nack = entry.get("last_nack")
        if nack and nack.get("version") == entry.get("sent_version"):
            return "NACKED"
        if entry.get("pending"):
            return "STALE"
        return "SYNCED"
    return "NOT SENT"


@click.command("proxy-status")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), help="Print full status.")
@timeout_option
@pass_cli
def proxy_status_command(cli: CliContext, output: str | None) -> None:
    """Show each connected proxy's xDS sync state."""
    with cli.client() as client:
        proxies = client.request("GET", "/v1/proxies")["proxies"]
    if output == "json":
        click.echo(to_json({"proxies": proxies}))
        return
    if output == "yaml":
        click.echo(to_yaml({"proxies": proxies}))
        return
    rows = []
    for p in proxies:
        types = p.get("types", {})
        held = sum(int(t.get("resources", 0)) for t in types.values())
        size = sum(int(t.get("bytes", 0)) for t in types.values())
        rows.append(
            [
                p.get("node_id", ""),
                *(_state(types, suffix) for _, suffix in _TYPES),
                str(held),
                _size(size),
            ]
        )
    click.echo(_table(["NAME", *(name for name, _ in _TYPES), "RESOURCES", "SIZE"], rows))
    for p in proxies:
        for type_url, entry in p.get("types", {}).items():
            nack = entry.get("last_nack")
            if nack:
                click.echo(
                    f"{p.get('node_id')} {type_url.rsplit('.', 1)[-1]} NACK: {nack.get('message')}"
                )


def _size(size: int) -> str:
    """Bytes as a short human figure (KiB and MiB are 1024-based)."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    return "\n".join(lines)
