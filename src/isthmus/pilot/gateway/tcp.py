"""TLS passthrough and TCP servers on a gateway (Istio's
buildGatewayNetworkFiltersFromTLSRoutes and ...FromTCPRoutes).

A PASSTHROUGH server does not terminate TLS: the gateway reads the client's SNI and
proxies the connection, bytes untouched, to the destination of the first `tls` route
whose match names that SNI. The VirtualServices considered are those bound to the
server's Gateway whose hosts meet the server's; a match applies when its `port` (if set)
is the server's and its `gateways` (if set) name this Gateway. Each match becomes a filter
chain on its `sniHosts`; SNI hosts an earlier chain of the port already has are dropped,
since Envoy refuses two chains with the same match.

A TCP server proxies every connection to the destination of the first `tcp` route of
those VirtualServices whose match (if any) applies, as Istio; with none, the port has no
listener.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.listener.v3 import listener_components_pb2 as lc

from isthmus.api.networking import L4MatchAttributes, RouteDestination, TLSMatchAttributes
from isthmus.model.snapshot import MeshSnapshot
from isthmus.model.types import Proxy
from isthmus.pilot.destinations import destination_cluster
from isthmus.pilot.envoy.listener import tcp_chain
from isthmus.pilot.envoy.tcp_proxy import weighted_tcp_proxy
from isthmus.pilot.gateway.routes import bound_virtual_services, intersect_hosts
from isthmus.pilot.gateway.servers import GatewayServer, sni_hosts
from isthmus.pilot.generators.routes import resolve_gateway_name
from isthmus.pilot.telemetry.connection import ProxyTelemetry, outbound_tcp
from isthmus.pilot.virtual_service import resolved_hosts


def passthrough_chains(
    mesh: MeshSnapshot,
    proxy: Proxy,
    item: GatewayServer,
    telemetry: ProxyTelemetry,
    seen: set[tuple[str, ...]],
) -> list[lc.FilterChain]:
    """The chains of one PASSTHROUGH server; `seen` holds the SNI sets already taken."""
    port = item.server.port.number
    taken = {host for hosts in seen for host in hosts}
    out = []
    for entry in bound_virtual_services(mesh, proxy.namespace, item.gateway):
        vs_hosts = resolved_hosts(entry, mesh.config.domain_suffix, mesh.services.by_host)
        if not intersect_hosts(item.hosts_for(entry.namespace), vs_hosts):
            continue
        for index, rule in enumerate(entry.resource.spec.tls):
            for match in rule.match:
                if not _applies(match, port, entry.namespace, item.gateway):
                    continue
                sni = sni_hosts([h for h in match.sni_hosts if h.lower() not in taken])
                if not sni or sni in seen:
                    continue
                seen.add(sni)
                taken.update(sni)
                name = f"{entry.namespace}/{entry.name}.tls[{index}]"
                chain = _proxy_chain(mesh, name, entry.namespace, port, rule.route, telemetry)
                chain.filter_chain_match.server_names.extend(sni)
                out.append(chain)
    return out


def tcp_chains(
    mesh: MeshSnapshot,
    proxy: Proxy,
    servers: Sequence[GatewayServer],
    telemetry: ProxyTelemetry,
) -> list[lc.FilterChain]:
    """The one chain of a TCP port: its first server's first applicable tcp route."""
    item = servers[0]
    port = item.server.port.number
    for entry in bound_virtual_services(mesh, proxy.namespace, item.gateway):
        vs_hosts = resolved_hosts(entry, mesh.config.domain_suffix, mesh.services.by_host)
        if not intersect_hosts(item.hosts_for(entry.namespace), vs_hosts):
            continue
        for index, rule in enumerate(entry.resource.spec.tcp):
            if rule.route and (
                not rule.match
                or any(_applies(m, port, entry.namespace, item.gateway) for m in rule.match)
            ):
                name = f"{entry.namespace}/{entry.name}.tcp[{index}]"
                return [_proxy_chain(mesh, name, entry.namespace, port, rule.route, telemetry)]
    return []


def _proxy_chain(
    mesh: MeshSnapshot,
    name: str,
    namespace: str,
    port: int,
    route: Sequence[RouteDestination],
    telemetry: ProxyTelemetry,
) -> lc.FilterChain:
    clusters = [
        (
            destination_cluster(d.destination, namespace, port, mesh),
            100 if d.weight is None and len(route) == 1 else (d.weight or 0),
        )
        for d in route
    ]
    stat = clusters[0][0] if len(clusters) == 1 else name
    return tcp_chain(name, weighted_tcp_proxy(stat, clusters, outbound_tcp(telemetry)))


def _applies(
    match: TLSMatchAttributes | L4MatchAttributes, port: int, namespace: str, gateway: str
) -> bool:
    """Istio's l4SingleMatch for a gateway server: port and gateway name."""
    if match.port is not None and match.port != port:
        return False
    if match.gateways:
        return any(resolve_gateway_name(g, namespace) == gateway for g in match.gateways)
    return True
