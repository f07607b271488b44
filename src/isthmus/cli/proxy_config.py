"""`isthmus proxy-config listeners|routes|clusters|endpoints POD`: what one sidecar's Envoy
actually holds, as `istioctl proxy-config` shows it.

The source is Envoy's own admin API (/config_dump, and /clusters for live endpoint
health), read on 127.0.0.1:15000 from inside the pod's network namespace, so the answer
is what Envoy accepted, not what isthmusd meant to send. This is where a VirtualService
that "does not match" shows its compiled header matchers exactly as Envoy has them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click
import h11
import yaml

from isthmus.cli.context import CliContext, pass_cli
from isthmus.cli.errors import UserError
from isthmus.cli.pods import find_pod, text_table
from isthmus.cli.proxy_secrets import (
    SECRET_HEADERS,
    agent_certificate_status,
    dumped_secrets,
    secret_rows,
    with_rotation,
)
from isthmus.cli.waiting import timeout_option
from isthmus.cli.xcmd import require_root
from isthmus.runtime.nsocket import open_connection_in_netns

Body = dict[str, Any]

ENVOY_ADMIN_PORT = 15000
ADMIN_TIMEOUT = 5.0
MAX_ADMIN_BYTES = 64 * 1024 * 1024

SECTIONS = {
    "secret": "secrets",
    "secrets": "secrets",
    "s": "secrets",
    "listeners": "listeners",
    "listener": "listeners",
    "l": "listeners",
    "routes": "routes",
    "route": "routes",
    "r": "routes",
    "clusters": "clusters",
    "cluster": "clusters",
    "c": "clusters",
    "endpoints": "endpoints",
    "endpoint": "endpoints",
    "ep": "endpoints",
    "eps": "endpoints",
}


class AdminError(Exception):
    """Envoy's admin API did not answer as expected."""


# --- reading Envoy's admin API from inside the pod ------------------------------------


async def pod_http_get(
    netns: str, port: int, path: str, timeout: float = ADMIN_TIMEOUT
) -> tuple[int, bytes]:
    """Status and body of GET `path` on 127.0.0.1:`port` inside the pod's namespace (the
    sidecar's own ports: Envoy's admin, the agent's metrics); AdminError on bad HTTP."""
    reader, writer = await open_connection_in_netns(netns, "127.0.0.1", port, timeout)
    conn = h11.Connection(h11.CLIENT)
    status, body = 0, bytearray()
    try:
        request = h11.Request(
            method="GET",
            target=path,
            headers=[("Host", f"127.0.0.1:{port}"), ("Connection", "close")],
        )
        writer.write(conn.send(request) + conn.send(h11.EndOfMessage()))
        await writer.drain()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await asyncio.wait_for(reader.read(65536), timeout))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_ADMIN_BYTES:
                    raise AdminError(f"answer to {path} is larger than {MAX_ADMIN_BYTES}")
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
    except h11.RemoteProtocolError as exc:
        raise AdminError(f"port {port} answered {path} with invalid HTTP: {exc}") from exc
    finally:
        writer.close()
    return status, bytes(body)


async def admin_get(netns: str, path: str, timeout: float = ADMIN_TIMEOUT) -> bytes:
    """GET `path` from Envoy's admin listener (127.0.0.1:15000 in the pod's namespace)."""
    status, body = await pod_http_get(netns, ENVOY_ADMIN_PORT, path, timeout)
    if status != 200:
        raise AdminError(f"Envoy admin answered {path} with status {status}")
    return body


async def _admin_json(netns: str, path: str) -> Body:
    try:
        payload = json.loads(await admin_get(netns, path))
    except (OSError, TimeoutError) as exc:
        raise AdminError(f"Envoy admin is not reachable in the pod: {exc or 'timeout'}") from exc
    except ValueError as exc:
        raise AdminError(f"Envoy admin answered {path} with invalid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise AdminError(f"Envoy admin answered {path} with a non-object")
    return payload


# --- resources out of a config dump ---------------------------------------------------


def _dump_section(dump: Body, type_suffix: str) -> Body:
    for config in dump.get("configs", []):
        if str(config.get("@type", "")).endswith(type_suffix):
            return dict(config)
    return {}


def dumped_listeners(dump: Body) -> list[Body]:
    section = _dump_section(dump, ".ListenersConfigDump")
    static = [s.get("listener", {}) for s in section.get("static_listeners", [])]
    dynamic = [
        d["active_state"]["listener"]
        for d in section.get("dynamic_listeners", [])
        if "listener" in d.get("active_state", {})
    ]
    return [*static, *dynamic]


def dumped_routes(dump: Body) -> list[Body]:
    section = _dump_section(dump, ".RoutesConfigDump")
    return [
        r.get("route_config", {})
        for key in ("static_route_configs", "dynamic_route_configs")
        for r in section.get(key, [])
    ]


def dumped_clusters(dump: Body) -> list[Body]:
    section = _dump_section(dump, ".ClustersConfigDump")
    return [
        c.get("cluster", {})
        for key in ("static_clusters", "dynamic_active_clusters")
        for c in section.get(key, [])
    ]


# --- listeners -----------------------------------------------------------------------


def _socket_address(address: Body) -> tuple[str, str]:
    sock = address.get("socket_address", {})
    if sock:
        return str(sock.get("address", "")), str(sock.get("port_value", 0))
    pipe = address.get("pipe", {})
    return str(pipe.get("path", "")), "-"


def chain_match(chain: Body) -> str:
    """A filter chain's match in a few words (istioctl's MATCH column)."""
    match = chain.get("filter_chain_match", {})
    parts = []
    if "destination_port" in match:
        parts.append(f"port {match['destination_port']}")
    ranges = match.get("prefix_ranges", [])
    if ranges:
        cidrs = (f"{r.get('address_prefix')}/{r.get('prefix_len', 0)}" for r in ranges)
        parts.append("addr " + ",".join(cidrs))
    if match.get("server_names"):
        parts.append("sni " + ",".join(match["server_names"]))
    if match.get("transport_protocol"):
        parts.append(f"trans {match['transport_protocol']}")
    if match.get("application_protocols"):
        parts.append("app " + ",".join(match["application_protocols"]))
    return "; ".join(parts) or "ALL"


def chain_destination(chain: Body) -> str:
    """Where a filter chain sends traffic: its route config or its TCP cluster."""
    for network_filter in reversed(chain.get("filters", [])):
        config = network_filter.get("typed_config", {})
        kind = str(config.get("@type", ""))
        if kind.endswith(".HttpConnectionManager"):
            if "rds" in config:
                return f"Route: {config['rds'].get('route_config_name', '')}"
            return f"Inline Route: {_inline_route(config.get('route_config', {}))}"
        if kind.endswith(".TcpProxy"):
            if "cluster" in config:
                return f"Cluster: {config['cluster']}"
            weighted = config.get("weighted_clusters", {}).get("clusters", [])
            return "Clusters: " + ",".join(str(c.get("name")) for c in weighted)
    names = [str(f.get("name", "")) for f in chain.get("filters", [])]
    return ",".join(names) or "-"


def _inline_route(config: Body) -> str:
    """An inline route config by name, or by its first route's match if it has none."""
    if config.get("name"):
        return str(config["name"])
    routes = [r for v in config.get("virtual_hosts", []) for r in v.get("routes", [])]
    return route_match(routes[0]) if routes else "-"


def listener_rows(listeners: Sequence[Body]) -> list[list[str]]:
    rows = []
    for listener in listeners:
        address, port = _socket_address(listener.get("address", {}))
        chains = list(listener.get("filter_chains", []))
        if "default_filter_chain" in listener:
            chains.append({**listener["default_filter_chain"], "filter_chain_match": {}})
        for chain in chains or [{}]:
            dest = chain_destination(chain) if chain else "-"
            rows.append([str(listener.get("name", "")), address, port, chain_match(chain), dest])
    return rows


# --- routes --------------------------------------------------------------------------


def _string_match(match: Body) -> str:
    for op, sign in (("exact", "="), ("prefix", "^="), ("suffix", "$="), ("contains", "*=")):
        if op in match:
            return f"{sign}{match[op]}"
    if "safe_regex" in match:
        return f"~{match['safe_regex'].get('regex', '')}"
    return ""


def route_match(route: Body) -> str:
    """A route's match: path (`/*` for prefix /) and header conditions as Envoy holds them."""
    match = route.get("match", {})
    if "prefix" in match:
        path = f"{match['prefix']}*"
    elif "path" in match:
        path = str(match["path"])
    elif "safe_regex" in match:
        path = f"~{match['safe_regex'].get('regex', '')}"
    elif "path_separated_prefix" in match:
        path = f"{match['path_separated_prefix']}/*"
    else:
        path = "*"
    conditions = []
    for header in match.get("headers", []):
        name = str(header.get("name", ""))
        if "string_match" in header:
            condition = name + _string_match(header["string_match"])
        elif header.get("present_match"):
            condition = f"{name} present"
        else:
            condition = name
        conditions.append(f"!({condition})" if header.get("invert_match") else condition)
    return f"{path} [{', '.join(conditions)}]" if conditions else path


def _domains(domains: Sequence[str]) -> str:
    if len(domains) <= 2:
        return ", ".join(domains)
    return f"{', '.join(domains[:2])} + {len(domains) - 2} more..."


def route_rows(routes: Sequence[Body]) -> list[list[str]]:
    rows = []
    for config in routes:
        for vhost in config.get("virtual_hosts", []):
            for route in vhost.get("routes", []) or [{}]:
                rows.append(
                    [
                        str(config.get("name", "")),
                        str(vhost.get("name", "")),
                        _domains([str(d) for d in vhost.get("domains", [])]),
                        route_match(route) if route else "-",
                    ]
                )
    return rows


# --- clusters ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterName:
    """Istio's `direction|port|subset|fqdn` cluster name, or a plain one."""

    fqdn: str
    port: str = "-"
    subset: str = "-"
    direction: str = "-"


def parse_cluster_name(name: str) -> ClusterName:
    parts = name.split("|")
    if len(parts) == 4 and parts[0] in ("inbound", "outbound"):
        direction, port, subset, fqdn = parts
        return ClusterName(fqdn or "", port, subset or "-", direction)
    return ClusterName(name)


def _destination_rule(cluster: Body) -> str:
    config = cluster.get("metadata", {}).get("filter_metadata", {}).get("istio", {})
    path = str(config.get("config", ""))
    # /apis/networking.istio.io/v1/namespaces/<ns>/destination-rule/<name>
    parts = path.strip("/").split("/")
    if len(parts) >= 7 and parts[-2] == "destination-rule":
        return f"{parts[-1]}.{parts[-3]}"
    return "-"


def cluster_type(cluster: Body) -> str:
    if "cluster_type" in cluster:
        return str(cluster["cluster_type"].get("name", "CUSTOM"))
    return str(cluster.get("type", "STATIC"))  # proto3 JSON omits the default, STATIC


def cluster_rows(clusters: Sequence[Body]) -> list[list[str]]:
    rows = []
    for cluster in clusters:
        name = parse_cluster_name(str(cluster.get("name", "")))
        rows.append(
            [
                name.fqdn,
                name.port,
                name.subset,
                name.direction,
                cluster_type(cluster),
                _destination_rule(cluster),
            ]
        )
    return rows


# --- endpoints (live, from /clusters) -------------------------------------------------


def endpoint_rows(statuses: Sequence[Body]) -> list[list[str]]:
    rows = []
    for cluster in statuses:
        for host in cluster.get("host_statuses", []):
            address, port = _socket_address(host.get("address", {}))
            health = host.get("health_status", {})
            rows.append(
                [
                    f"{address}:{port}" if port != "-" else address,
                    str(health.get("eds_health_status", "UNKNOWN")),
                    "FAILED" if health.get("failed_outlier_check") else "OK",
                    str(cluster.get("name", "")),
                ]
            )
    return rows


# --- selection and output ------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    name: str | None = None
    port: int | None = None
    fqdn: str | None = None
    cluster: str | None = None


def select(section: str, items: list[Body], filters: Filters) -> list[Body]:
    """istioctl's filters: --name (listener/route/cluster), --port, --fqdn, --cluster."""

    def keep(item: Body) -> bool:
        name = str(item.get("name", ""))
        if filters.name is not None and section != "endpoints" and name != filters.name:
            return False
        if section == "listeners" and filters.port is not None:
            return _socket_address(item.get("address", {}))[1] == str(filters.port)
        if section == "clusters":
            parsed = parse_cluster_name(name)
            if filters.port is not None and parsed.port != str(filters.port):
                return False
            if filters.fqdn is not None and filters.fqdn not in (parsed.fqdn, name):
                return False
        if section == "endpoints" and filters.cluster is not None:
            return name == filters.cluster
        return True

    return [item for item in items if keep(item)]


HEADERS: dict[str, list[str]] = {
    "listeners": ["NAME", "ADDRESS", "PORT", "MATCH", "DESTINATION"],
    "routes": ["NAME", "VHOST NAME", "DOMAINS", "MATCH"],
    "clusters": ["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"],
    "endpoints": ["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"],
    "secrets": SECRET_HEADERS,
}
ROWS: dict[str, Callable[[Sequence[Body]], list[list[str]]]] = {
    "listeners": listener_rows,
    "routes": route_rows,
    "clusters": cluster_rows,
    "endpoints": endpoint_rows,
    "secrets": secret_rows,
}


async def read_section(netns: str, section: str) -> list[Body]:
    """The section's resources as Envoy holds them now."""
    if section == "endpoints":
        statuses = await _admin_json(netns, "/clusters?format=json")
        return list(statuses.get("cluster_statuses", []))
    dump = await _admin_json(netns, "/config_dump")
    pick = {
        "listeners": dumped_listeners,
        "routes": dumped_routes,
        "clusters": dumped_clusters,
        "secrets": dumped_secrets,
    }
    return pick[section](dump)


@click.command("proxy-config")
@click.argument("section", metavar="listeners|routes|clusters|endpoints|secret")
@click.argument("pod")
@click.option("-n", "--namespace", help="Namespace of the pod (or give POD as name.namespace).")
@click.option("-o", "--output", type=click.Choice(["short", "json", "yaml"]), default="short")
@click.option("--name", help="Only the listener, route config or cluster of this name.")
@click.option("--port", type=int, help="Only listeners or clusters on this port.")
@click.option("--fqdn", help="Only clusters of this service host.")
@click.option("--cluster", help="Only endpoints of this cluster (endpoints).")
@timeout_option
@pass_cli
def proxy_config_command(
    cli: CliContext,
    section: str,
    pod: str,
    namespace: str | None,
    output: str,
    name: str | None,
    port: int | None,
    fqdn: str | None,
    cluster: str | None,
) -> None:
    """Show a sidecar's Envoy configuration as Envoy holds it (istioctl proxy-config);
    `secret` shows its certificates (serial, SPIFFE id, validity, last and next rotation)."""
    if section.lower() not in SECTIONS:
        raise UserError(
            f'unknown proxy-config section "{section}": use listeners, routes, clusters, '
            "endpoints or secret"
        )
    chosen = SECTIONS[section.lower()]
    found = find_pod(cli, pod, namespace)
    if not found["sidecar"]:
        raise UserError(f"pod {found['name']} has no sidecar (no Envoy to ask)")
    require_root("proxy-config")
    try:
        items = asyncio.run(read_section(found["netns"], chosen))
    except AdminError as exc:
        raise UserError(f"pod {found['name']}: {exc}") from exc
    items = select(chosen, items, Filters(name, port, fqdn, cluster))
    if chosen == "secrets":
        items = with_rotation(items, agent_certificate_status(cli.home, found))
    if output == "json":
        click.echo(json.dumps(items, indent=2))
    elif output == "yaml":
        click.echo(yaml.safe_dump(items, sort_keys=False, default_flow_style=False).rstrip())
    else:
        click.echo(text_table(HEADERS[chosen], ROWS[chosen](items)))
