"""LDS for a gateway pod: one listener per server port, `0.0.0.0_PORT`, bound in the pod
(a gateway is not captured: clients connect to it), its HTTP connection manager on route
configuration `http.PORT`. A port the host publishes (`isthmus up --ingress-port`) gets a
second listener, `host_127.0.0.1_HOSTPORT`, with the same chain, whose socket Envoy opens
in the host's network namespace on its loopback: the host reaches the gateway without a
route, an iptables rule or a Python process in between.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2

from isthmus.model.snapshot import MeshSnapshot
from isthmus.model.types import Proxy
from isthmus.pilot.envoy.http_connection_manager import rds_connection_manager
from isthmus.pilot.envoy.listener import http_chain, socket_address
from isthmus.pilot.gateway.servers import route_name, servers_by_port
from isthmus.pilot.telemetry.connection import ProxyTelemetry, outbound_http

HOST_LOOPBACK = "127.0.0.1"  # the only host address a gateway is ever published on


def gateway_listeners(
    mesh: MeshSnapshot, proxy: Proxy, telemetry: ProxyTelemetry
) -> list[listener_pb2.Listener]:
    out = []
    for port in servers_by_port(mesh, proxy):
        name = f"0.0.0.0_{port}"
        chain = http_chain(
            name,
            rds_connection_manager(f"outbound_{name}", route_name(port), outbound_http(telemetry)),
        )
        out.append(_listener(name, "0.0.0.0", port, chain))
        for host_port, published in proxy.published_ports:
            if published == port:
                listener = _listener(
                    f"host_{HOST_LOOPBACK}_{host_port}", HOST_LOOPBACK, host_port, chain
                )
                listener.address.socket_address.network_namespace_filepath = proxy.host_netns
                out.append(listener)
    return out


def _listener(name: str, ip: str, port: int, chain: lc.FilterChain) -> listener_pb2.Listener:
    return listener_pb2.Listener(
        name=name,
        address=socket_address(ip, port),
        filter_chains=[chain],
        traffic_direction=base_pb2.OUTBOUND,
    )
