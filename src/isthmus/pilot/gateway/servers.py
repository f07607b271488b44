"""Which Gateway servers a gateway pod serves, merged by port (Istio's MergeGateways).

A Gateway selects gateway pods by labels, in any namespace (Istio's default: its
PILOT_SCOPE_GATEWAY_TO_NAMESPACE is off); an empty selector selects every gateway pod.
HTTP servers on one port, of one Gateway or several, share one listener and one route
configuration, `http.PORT`.
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
        return [entry.rpartition("/")[2].lower() for entry in self.server.hosts]


GATEWAY_ROUTE_PREFIX = "http."


def route_name(port: int) -> str:
    """Istio's gatewayRDSRouteName for a plaintext HTTP server."""
    return f"{GATEWAY_ROUTE_PREFIX}{port}"


def servers_by_port(mesh: MeshSnapshot, proxy: Proxy) -> dict[int, list[GatewayServer]]:
    """The servers of every Gateway selecting the proxy, by port, oldest Gateway first."""
    labels = proxy.label_dict
    out: dict[int, list[GatewayServer]] = defaultdict(list)
    for entry in mesh.gateways:
        spec = entry.resource.spec
        if not all(labels.get(k) == v for k, v in spec.selector.items()):
            continue
        name = f"{entry.namespace}/{entry.name}"
        for server in spec.servers:
            out[server.port.number].append(GatewayServer(name, entry.namespace, server))
    return dict(sorted(out.items()))
