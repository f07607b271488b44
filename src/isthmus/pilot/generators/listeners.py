"""LDS: the listeners of one sidecar.

Outbound listeners depend only on (mesh, proxy's SidecarScope, labels where a
VirtualService uses sourceLabels) and are cached per scope by the caller; the inbound
listener and the explicit proxy listener depend on the proxy. The tcp_proxy of a TCP chain
takes its idle timeout, duration limit and source-IP hash from the DestinationRule of its
first destination (pilot.destination_rule.tcp_proxy_policy); DestinationRules are read only
when the listeners have a TCP chain.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2

from isthmus.api.networking import L4MatchAttributes
from isthmus.model.addresses import is_cidr, within
from isthmus.model.snapshot import MeshSnapshot
from isthmus.model.types import Protocol, Service
from isthmus.pilot.destination_rule import (
    NO_TCP_PROXY_POLICY,
    DestinationRuleIndex,
    TcpProxyPolicy,
    tcp_proxy_policy,
)
from isthmus.pilot.destinations import destination_cluster, destination_host
from isthmus.pilot.envoy.http_connection_manager import (
    rds_connection_manager,
)
from isthmus.pilot.envoy.listener import (
    INBOUND_CAPTURE_PORT,
    OUTBOUND_CAPTURE_PORT,
    explicit_proxy_listener,
    http_chain,
    outbound_port_listener,
    tcp_chain,
    virtual_listener,
)
from isthmus.pilot.envoy.tcp_proxy import tcp_proxy, weighted_tcp_proxy
from isthmus.pilot.generators.routes import HTTP_PROXY_ROUTE, MESH_GATEWAY
from isthmus.pilot.naming import (
    BLACK_HOLE_CLUSTER,
    PASSTHROUGH_CLUSTER,
    outbound_cluster_name,
)
from isthmus.pilot.sidecar_scope import SidecarScope, default_scope, outbound_services
from isthmus.pilot.telemetry.connection import (
    DEFAULT_TELEMETRY,
    ProxyTelemetry,
    outbound_http,
    outbound_tcp,
)
from isthmus.pilot.virtual_service import VirtualServiceIndex, virtual_service_index

# The capture listeners own 0.0.0.0 on these ports; Envoy rejects a second listener
# there (even one that does not bind), so, as Istio does for ports that conflict with
# its own listeners, services' HTTP ports there get no 0.0.0.0_PORT listener.
RESERVED_WILDCARD_PORTS = frozenset({OUTBOUND_CAPTURE_PORT, INBOUND_CAPTURE_PORT})


def _catch_all(telemetry: ProxyTelemetry, registry_only: bool) -> lc.FilterChain:
    """Connections to destinations outside the proxy's registry: PassthroughCluster under
    ALLOW_ANY, BlackHoleCluster under REGISTRY_ONLY (Istio's outboundTrafficPolicy);
    counted as TCP with that cluster as destination_service_name, as Istio does."""
    cluster = BLACK_HOLE_CLUSTER if registry_only else PASSTHROUGH_CLUSTER
    return tcp_chain(cluster, tcp_proxy(cluster, cluster, outbound_tcp(telemetry)))


def _is_http(protocol: Protocol) -> bool:
    return protocol.is_http


def _l4_applies(
    match: L4MatchAttributes,
    proxy_labels: dict[str, str],
    namespace: str,
    port: int,
    address: str | None,
) -> bool:
    """Istio's port, destinationSubnets and sourceMatchTCP checks; a match naming gateways
    applies to sidecars only if it names `mesh`. `address` is the destination of every
    connection on the chain (a TCP chain serves one service address: an IP, or a CIDR
    block, which destinationSubnets must then cover whole)."""
    if match.port is not None and match.port != port:
        return False
    if match.destination_subnets and not _in_subnets(address, match.destination_subnets):
        return False
    if match.gateways:
        return MESH_GATEWAY in match.gateways
    if match.source_namespace is not None and match.source_namespace != namespace:
        return False
    return all(proxy_labels.get(k) == v for k, v in match.source_labels.items())


def _in_subnets(address: str | None, subnets: list[str]) -> bool:
    return address is not None and within(address, subnets)


@dataclass(frozen=True)
class TcpRoute:
    """Where a TCP chain sends connections (clusters and weights), and what its tcp_proxy
    takes from the DestinationRule of the first destination's host."""

    clusters: list[tuple[str, int]]
    policy: TcpProxyPolicy


Rules = Callable[[], DestinationRuleIndex]


def tcp_route(
    mesh: MeshSnapshot,
    virtual_services: VirtualServiceIndex,
    rules: Rules,
    svc: Service,
    port: int,
    namespace: str,
    labels: dict[str, str],
    address: str | None,
) -> TcpRoute:
    """A TCP service port's route for connections to `address` (one of the service's):
    the first `tcp` rule that applies, from the VirtualServices of the host in Istio's
    order, or the service's own cluster. As in Istio's buildOutboundNetworkFilters, the
    DestinationRule is the one the proxy's namespace sees for the first destination's
    host, and a subset counts only when the route has a single destination."""
    for entry in virtual_services.for_host(svc.hostname):
        for rule in entry.resource.spec.tcp:
            if rule.match and not any(
                _l4_applies(m, labels, namespace, port, address) for m in rule.match
            ):
                continue
            clusters = [
                (
                    destination_cluster(d.destination, entry.namespace, port, mesh),
                    100 if d.weight is None and len(rule.route) == 1 else (d.weight or 0),
                )
                for d in rule.route
            ]
            if not rule.route:
                return TcpRoute(clusters, NO_TCP_PROXY_POLICY)
            first = rule.route[0].destination
            host = destination_host(first, entry.namespace, mesh)
            subset = first.subset if len(rule.route) == 1 else None
            return TcpRoute(clusters, _tcp_policy(mesh, rules, host, subset, namespace))
    own = [(outbound_cluster_name(port, "", svc.hostname), 100)]
    return TcpRoute(own, _tcp_policy(mesh, rules, svc.hostname, None, namespace))


def _tcp_policy(
    mesh: MeshSnapshot, rules: Rules, host: str, subset: str | None, namespace: str
) -> TcpProxyPolicy:
    """No service, no rule: Istio looks the rule up by the destination's service."""
    target = mesh.services.get(host)
    if target is None:
        return NO_TCP_PROXY_POLICY
    return tcp_proxy_policy(rules().lookup(host, target.namespace, namespace), subset)


def _lazy_rules(mesh: MeshSnapshot, rules: DestinationRuleIndex | None) -> Rules:
    """The rule index, built from `mesh` on first use when not given."""
    built: list[DestinationRuleIndex] = [rules] if rules is not None else []

    def get() -> DestinationRuleIndex:
        if not built:
            built.append(DestinationRuleIndex.of(mesh))
        return built[0]

    return get


@dataclass(frozen=True)
class _Prefixed:
    """A service's chains on `0.0.0.0_PORT` for one of its addresses (matched by
    destination prefix): a CIDR block of a TCP port, or any address of a sniffed port."""

    service: Service
    sniffed: bool


def generate_outbound_listeners(
    mesh: MeshSnapshot,
    namespace: str,
    labels: dict[str, str] | None = None,
    telemetry: ProxyTelemetry = DEFAULT_TELEMETRY,
    scope: SidecarScope | None = None,
    rules: DestinationRuleIndex | None = None,
) -> list[listener_pb2.Listener]:
    """virtualOutbound plus, per port the proxy's Sidecar `scope` sees, one listener per
    TCP service address (`IP_PORT`) and `0.0.0.0_PORT` for its HTTP and sniffed services
    and its TCP services' CIDR blocks (Istio: a CIDR listens on the wildcard with a
    filter chain per block). `rules`: the mesh's DestinationRuleIndex (built from `mesh`
    when a TCP chain needs it, if not given; a caller caching the listeners must obtain it
    inside the cached build)."""
    labels = labels or {}
    lazy_rules = _lazy_rules(mesh, rules)
    scope = scope if scope is not None else default_scope(mesh, namespace)
    http_ports: set[int] = set()
    sniffed_ports: set[int] = set()
    # Port -> address -> its service: several services (one ServiceEntry's hosts) may
    # share an address; the first (by host name) keeps it, as Istio keeps the first chain.
    prefixed: dict[int, dict[str, _Prefixed]] = defaultdict(dict)
    tcp_listeners: dict[str, listener_pb2.Listener] = {}
    virtual_services = virtual_service_index(mesh, namespace)
    for svc in outbound_services(mesh, scope):
        for p in svc.ports:
            if p.protocol is Protocol.UDP:
                continue
            if _is_http(p.protocol):
                http_ports.add(p.port)
                continue
            sniffed = p.protocol is Protocol.UNSUPPORTED
            if sniffed:
                http_ports.add(p.port)
                sniffed_ports.add(p.port)
            for address in svc.addresses:
                if sniffed or is_cidr(address):
                    prefixed[p.port].setdefault(address, _Prefixed(svc, sniffed))
                elif f"{address}_{p.port}" not in tcp_listeners:
                    route = tcp_route(
                        mesh, virtual_services, lazy_rules, svc, p.port, namespace, labels, address
                    )
                    stat = f"outbound|{p.port}||{svc.hostname}"
                    tcp = weighted_tcp_proxy(
                        stat, route.clusters, outbound_tcp(telemetry), route.policy
                    )
                    chain = tcp_chain(stat, tcp)
                    listener = outbound_port_listener(address, p.port, [chain])
                    tcp_listeners[listener.name] = listener
    listeners = list(tcp_listeners.values())
    for port in sorted(http_ports | set(prefixed)):
        if port in RESERVED_WILDCARD_PORTS:
            continue
        listeners.append(
            _wildcard_port_listener(
                mesh,
                virtual_services,
                lazy_rules,
                port,
                _WildcardPort(port in http_ports, port in sniffed_ports, prefixed.get(port, {})),
                namespace,
                labels,
                telemetry,
                scope.registry_only,
            )
        )
    listeners.append(
        virtual_listener(
            "virtualOutbound",
            OUTBOUND_CAPTURE_PORT,
            base_pb2.OUTBOUND,
            _catch_all(telemetry, scope.registry_only),
        )
    )
    return sorted(listeners, key=lambda lst: lst.name)


@dataclass(frozen=True)
class _WildcardPort:
    """What `0.0.0.0_PORT` serves: HTTP (routes over RDS), sniffing, and the services
    matched by destination prefix."""

    http: bool
    sniffed: bool
    prefixed: dict[str, _Prefixed]


def _wildcard_port_listener(
    mesh: MeshSnapshot,
    virtual_services: VirtualServiceIndex,
    rules: Rules,
    port: int,
    serves: _WildcardPort,
    namespace: str,
    labels: dict[str, str],
    telemetry: ProxyTelemetry,
    registry_only: bool,
) -> listener_pb2.Listener:
    """`0.0.0.0_PORT`: the port's route config over RDS, and the TCP chains of CIDR
    blocks (Envoy picks the most specific destination prefix first, so a block's
    connections reach its service, HTTP or not). When a service on the port has no
    declared protocol, Istio-style sniffing: HTTP (by the HTTP inspector) goes to the
    routes, other bytes to the service's TCP destination (matched by its addresses), else
    to the catch-all (pass through, or black hole under REGISTRY_ONLY). Envoy picks the
    most specific destination IP before it looks at the application protocol, so each
    sniffed address gets an HTTP chain of its own too. Without HTTP, connections outside
    the blocks go to the catch-all, as Istio's passthrough default chain."""
    stat = f"0.0.0.0_{port}"

    def hcm() -> lc.Filter:
        return rds_connection_manager(f"outbound_{stat}", str(port), outbound_http(telemetry))

    chains = [http_chain(stat, hcm(), sniffed=serves.sniffed)] if serves.http else []
    for address, entry in serves.prefixed.items():
        svc = entry.service
        route = tcp_route(mesh, virtual_services, rules, svc, port, namespace, labels, address)
        cluster_stat = f"outbound|{port}||{svc.hostname}"
        if entry.sniffed:
            chains.append(http_chain(f"{stat}|{address}", hcm(), True, address))
        logs = outbound_tcp(telemetry)
        tcp = weighted_tcp_proxy(cluster_stat, route.clusters, logs, route.policy)
        chains.append(tcp_chain(cluster_stat, tcp, prefix=address, sniffed=entry.sniffed))
    if serves.http and not serves.sniffed:
        return outbound_port_listener("0.0.0.0", port, chains)
    default = _catch_all(telemetry, registry_only)
    return outbound_port_listener(
        "0.0.0.0", port, chains, sniff_http=serves.sniffed, default_chain=default
    )


def generate_http_proxy_listener(
    port: int, telemetry: ProxyTelemetry = DEFAULT_TELEMETRY
) -> listener_pb2.Listener:
    chain = http_chain(
        f"127.0.0.1_{port}",
        rds_connection_manager(
            f"outbound_127.0.0.1_{port}", HTTP_PROXY_ROUTE, outbound_http(telemetry)
        ),
    )
    return explicit_proxy_listener(port, chain)
