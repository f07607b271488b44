"""LDS for a gateway pod: one listener per server port, `0.0.0.0_PORT`, bound in the pod
(a gateway is not captured: clients connect to it). Plaintext HTTP servers share one chain,
its HTTP connection manager on route configuration `http.PORT`; each HTTPS server gets a
chain of its own, matched by SNI (its hosts; none for `*`), terminating TLS (pilot.gateway
.tls) before its own route configuration. A server whose credentialName names no usable
Secret gets no chain, as an Istio gateway serves nothing for it until the Secret exists.

A port the host publishes (`isthmus up --ingress-port`) gets a second listener,
`host_127.0.0.1_HOSTPORT`, with the same chains, whose socket Envoy opens in the host's
network namespace on its loopback: the host reaches the gateway without a route, an
iptables rule or a Python process in between.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2

from isthmus.model.credentials import credential_problem, server_credential
from isthmus.model.snapshot import MeshSnapshot
from isthmus.model.types import Proxy
from isthmus.pilot.envoy.http_connection_manager import rds_connection_manager
from isthmus.pilot.envoy.listener import http_chain, socket_address
from isthmus.pilot.envoy.typed import pack
from isthmus.pilot.gateway.servers import (
    GatewayServer,
    is_passthrough,
    is_tcp,
    is_tls,
    route_name,
    servers_by_port,
    sni_hosts,
)
from isthmus.pilot.gateway.tcp import passthrough_chains, tcp_chains
from isthmus.pilot.gateway.tls import server_tls_socket
from isthmus.pilot.telemetry.connection import ProxyTelemetry, outbound_http

HOST_LOOPBACK = "127.0.0.1"  # the only host address a gateway is ever published on


def gateway_listeners(
    mesh: MeshSnapshot, proxy: Proxy, telemetry: ProxyTelemetry
) -> list[listener_pb2.Listener]:
    out = []
    for port, servers in servers_by_port(mesh, proxy).items():
        name = f"0.0.0.0_{port}"
        if is_tls(servers[0].server):
            chains = _tls_chains(mesh, proxy, servers, telemetry)
        elif is_tcp(servers[0].server):
            chains = tcp_chains(mesh, proxy, servers, telemetry)
        else:
            chains = [http_chain(name, _manager(name, f"http.{port}", telemetry))]
        if not chains:
            continue
        out.append(_listener(name, "0.0.0.0", port, chains))
        for host_port, published in proxy.published_ports:
            if published == port:
                listener = _listener(
                    f"host_{HOST_LOOPBACK}_{host_port}", HOST_LOOPBACK, host_port, chains
                )
                listener.address.socket_address.network_namespace_filepath = proxy.host_netns
                out.append(listener)
    return out


def _manager(stat: str, route: str, telemetry: ProxyTelemetry) -> lc.Filter:
    return rds_connection_manager(f"outbound_{stat}", route, outbound_http(telemetry))


def _tls_chains(
    mesh: MeshSnapshot, proxy: Proxy, servers: Sequence[GatewayServer], telemetry: ProxyTelemetry
) -> list[lc.FilterChain]:
    """The port's chains by SNI: each terminated server's, then each passed-through
    server's tls routes. Envoy refuses two chains with the same match: the first wins."""
    chains = []
    seen: set[tuple[str, ...]] = set()
    for item in servers:
        if not is_passthrough(item.server):
            chains.extend(_terminated_chain(mesh, proxy, item, telemetry, seen))
    for item in servers:
        if is_passthrough(item.server):
            chains.extend(passthrough_chains(mesh, proxy, item, telemetry, seen))
    return chains


def _terminated_chain(
    mesh: MeshSnapshot,
    proxy: Proxy,
    item: GatewayServer,
    telemetry: ProxyTelemetry,
    seen: set[tuple[str, ...]],
) -> list[lc.FilterChain]:
    """The chain of an HTTPS server the gateway terminates; none when its Secret gives no
    credential or an earlier chain has its SNI hosts."""
    tls = item.server.tls
    assert tls is not None  # an HTTPS server has TLS settings (api.checks_gateway)
    credential = None
    name = tls.credential_name
    if name:
        mutual = tls.mode.value in ("MUTUAL", "OPTIONAL_MUTUAL")
        if credential_problem(mesh.secrets, proxy.namespace, name, mutual=mutual):
            return []
        credential = server_credential(mesh.secrets, proxy.namespace, name)
        if credential is None:
            return []
    sni = sni_hosts(item.server.hosts)
    if sni in seen:
        return []
    seen.add(sni)
    route = route_name(item)
    chain = http_chain(route, _manager(route, route, telemetry))
    chain.filter_chain_match.server_names.extend(sni)
    chain.transport_socket.CopyFrom(server_tls_socket(tls, credential))
    return [chain]


def _listener(
    name: str, ip: str, port: int, chains: Sequence[lc.FilterChain]
) -> listener_pb2.Listener:
    listener = listener_pb2.Listener(
        name=name,
        address=socket_address(ip, port),
        filter_chains=list(chains),
        traffic_direction=base_pb2.OUTBOUND,
    )
    if any(
        chain.filter_chain_match.server_names or chain.HasField("transport_socket")
        for chain in chains
    ):
        listener.listener_filters.append(
            lc.ListenerFilter(
                name="envoy.filters.listener.tls_inspector",
                typed_config=pack(tls_inspector_pb2.TlsInspector()),
            )
        )
    return listener
