"""Which Gateway servers a gateway pod serves, merged by port (Istio's MergeGateways).

A Gateway selects gateway pods by labels, in any namespace (Istio's default: its
PILOT_SCOPE_GATEWAY_TO_NAMESPACE is off); an empty selector selects every gateway pod.
HTTP servers on one port, of one Gateway or several, share one listener and one route
configuration, `http.PORT`; each HTTPS server gets a filter chain (by SNI) and a route
configuration of its own.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from isthmus.api.gateway import Server
from isthmus.model.snapshot import MeshSnapshot
from isthmus.model.types import Proxy


@dataclass(frozen=True)
class GatewayServer:
    """One server and the Gateway it belongs to (`namespace/name`, as VirtualServices name
    it once resolved)."""

    gateway: str
    namespace: str
    server: Server

    def hosts_for(self, vs_namespace: str) -> list[str]:
        """The server's hosts a VirtualService in `vs_namespace` may serve: `ns/host` with
        ns `*` (also when left out), `.` (the Gateway's namespace) or that namespace."""
        out = []
        for entry in self.server.hosts:
            namespace, slash, host = entry.rpartition("/")
            if not slash:
                namespace = "*"
            elif namespace == ".":
                namespace = self.namespace
            if namespace in ("*", vs_namespace):
                out.append(host)
        return out

    def hosts_for_any_namespace(self) -> list[str]:
        """The server's hosts without their namespace part (for httpsRedirect)."""
        return bare_hosts(self.server.hosts)


def bare_hosts(hosts: list[str]) -> list[str]:
    """`ns/host` entries as lower-case hosts without their namespace part."""
    return [entry.rpartition("/")[2].lower() for entry in hosts]


GATEWAY_ROUTE_PREFIXES = ("http.", "https.")


def is_gateway_route(name: str) -> bool:
    return name.startswith(GATEWAY_ROUTE_PREFIXES)


def is_tcp(server: Server) -> bool:
    return server.port.protocol.lower() == "tcp"


def port_kind(server: Server) -> str:
    """What a port serves, as its first server says: "http", "tls" or "tcp"."""
    return "tls" if is_tls(server) else "tcp" if is_tcp(server) else "http"


def is_tls(server: Server) -> bool:
    """A server whose clients speak TLS: HTTPS or TLS (terminated or passed through)."""
    return server.port.protocol.lower() in ("https", "tls")


def is_passthrough(server: Server) -> bool:
    return is_tls(server) and server.tls is not None and server.tls.mode.value == "PASSTHROUGH"


def is_https(server: Server) -> bool:
    """An HTTPS server the gateway terminates (it has routes of its own)."""
    return is_tls(server) and not is_passthrough(server)


def sni_hosts(hosts: list[str]) -> tuple[str, ...]:
    """Istio's getSNIHostsForServer: the hosts without namespace; `*` matches any SNI."""
    names = sorted(set(bare_hosts(hosts)))
    return () if "*" in names else tuple(names)


def route_name(item: GatewayServer) -> str:
    """Istio's gatewayRDSRouteName: `http.PORT` for every plaintext server of a port,
    `https.PORT.PORTNAME.GATEWAY.NAMESPACE` per HTTPS server."""
    port = item.server.port
    if not is_https(item.server):
        return f"http.{port.number}"
    name, namespace = item.gateway.split("/")[1], item.namespace
    return f"https.{port.number}.{port.name}.{name}.{namespace}"


def servers_by_port(mesh: MeshSnapshot, proxy: Proxy) -> dict[int, list[GatewayServer]]:
    """The servers of every Gateway selecting the proxy, by port, oldest Gateway first.
    A port is plaintext HTTP, TLS (HTTPS, terminated or passed through) or TCP as its
    first server says; a server of another kind on it is left out (Istio merges servers
    of one protocol per port)."""
    labels = proxy.label_dict
    out: dict[int, list[GatewayServer]] = defaultdict(list)
    for entry in mesh.gateways:
        spec = entry.resource.spec
        if not all(labels.get(k) == v for k, v in spec.selector.items()):
            continue
        name = f"{entry.namespace}/{entry.name}"
        for server in spec.servers:
            kept = out[server.port.number]
            if kept and port_kind(kept[0].server) != port_kind(server):
                continue
            kept.append(GatewayServer(name, entry.namespace, server))
    return dict(sorted(out.items()))


def servers_by_route(
    mesh: MeshSnapshot, proxy: Proxy
) -> dict[str, tuple[int, list[GatewayServer]]]:
    """Route configuration name -> (port, the servers whose routes it holds)."""
    out: dict[str, tuple[int, list[GatewayServer]]] = {}
    for port, servers in servers_by_port(mesh, proxy).items():
        for item in servers:
            if not (is_passthrough(item.server) or is_tcp(item.server)):
                out.setdefault(route_name(item), (port, []))[1].append(item)
    return out
