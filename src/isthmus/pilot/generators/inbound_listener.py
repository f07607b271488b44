"""virtualInbound (15006): per served port, the filter chains its mTLS mode calls for.

Per port, as Istio's sidecar inbound:
- DISABLE: plaintext chains only (HTTP, TCP, or sniffed HTTP/TCP as before mTLS).
- PERMISSIVE: an mTLS chain for TLS that offers Istio's ALPN, a TLS passthrough chain for
  an app's own TLS, and the plaintext chains; one port serves both.
- STRICT: the mTLS chain only; plaintext is matched by a chain that refuses it (without
  it Envoy would fall to the default passthrough chain).
Ports nobody serves go to InboundPassthroughCluster; under a workload-wide STRICT mode
that too needs mTLS. Authorization filters (RBAC) come first in every chain; on HTTP chains
the JWT authentication filter (RequestAuthentication) runs before them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from google.protobuf import duration_pb2

from isthmus.api.security import MtlsMode
from isthmus.model.snapshot import MeshSnapshot
from isthmus.model.types import Protocol, Proxy, Service
from isthmus.pilot.authz.rbac import http_rbac_filters, network_rbac_filters
from isthmus.pilot.authz.selection import policies_for_workload
from isthmus.pilot.envoy.http_connection_manager import inline_connection_manager
from isthmus.pilot.envoy.listener import (
    INBOUND_CAPTURE_PORT,
    RAW_BUFFER,
    http_chain,
    http_inspector,
    virtual_listener,
)
from isthmus.pilot.envoy.tcp_proxy import tcp_proxy
from isthmus.pilot.envoy.typed import pack
from isthmus.pilot.naming import (
    BLACK_HOLE_CLUSTER,
    INBOUND_PASSTHROUGH_CLUSTER,
    inbound_cluster_name,
)
from isthmus.pilot.security import jwt
from isthmus.pilot.security.peer_authentication import MtlsPolicy, compose_mtls
from isthmus.pilot.security.plaintext_stats import plaintext_counter
from isthmus.pilot.security.tls import (
    SERVER_MTLS_ALPN,
    TLS_TRANSPORT,
    downstream_mtls_socket,
)
from isthmus.pilot.telemetry.connection import (
    DEFAULT_TELEMETRY,
    ProxyTelemetry,
    inbound_http,
    inbound_tcp,
)
from isthmus.pilot.telemetry.labels import DestinationService
from isthmus.pilot.telemetry.peer_metadata import peer_header_names

TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"


@dataclass(frozen=True)
class InboundFilters:
    """Filters every inbound chain starts with (authentication, authorization), by chain
    kind, and how HTTP paths are normalized before they are matched."""

    http: Sequence[hcm.HttpFilter] = ()
    network: Sequence[lc.Filter] = ()
    path_normalization: str = "BASE"


def workload_filters(mesh: MeshSnapshot, proxy: Proxy) -> InboundFilters:
    """The RequestAuthentications that apply to the workload as a jwt_authn filter, then
    its AuthorizationPolicies as RBAC filters (which match the verified JWT it records)."""
    labels, root = proxy.label_dict, mesh.config.root_namespace
    policies = policies_for_workload(mesh.authorization_policies, proxy.namespace, labels, root)
    authentications = jwt.policies_for_workload(
        mesh.request_authentications, proxy.namespace, labels, root
    )
    authn = jwt.jwt_authn_filter(authentications, mesh.jwks)
    domain = mesh.config.trust_domain
    return InboundFilters(
        http=[*([authn] if authn is not None else []), *http_rbac_filters(policies, domain)],
        network=network_rbac_filters(policies, domain),
        path_normalization=mesh.config.path_normalization,
    )


def _workload_services(mesh: MeshSnapshot, proxy: Proxy) -> list[Service]:
    """The services of the workload's namespace whose selector picks it."""
    labels = proxy.label_dict
    return [
        svc
        for svc in mesh.services.visible_to(proxy.namespace)
        if svc.namespace == proxy.namespace
        and svc.selector
        and all(labels.get(k) == v for k, v in svc.selector)
    ]


def inbound_port_protocols(proxy: Proxy, services: Sequence[Service]) -> dict[int, Protocol]:
    """Protocol of each port the workload serves, from the services selecting it."""
    out: dict[int, Protocol] = {port: Protocol.UNSUPPORTED for port in proxy.inbound_ports}
    for svc in services:
        for p in svc.ports:
            target = p.target_port or p.port
            if target in out and out[target] is Protocol.UNSUPPORTED:
                out[target] = p.protocol
    return out


def inbound_port_services(services: Sequence[Service]) -> dict[int, DestinationService]:
    """The service each served port belongs to, for telemetry's destination_service: the
    first (by host name) of the workload's services whose target port it is."""
    out: dict[int, DestinationService] = {}
    for svc in sorted(services, key=lambda s: s.hostname):
        for p in svc.ports:
            out.setdefault(
                p.target_port or p.port, DestinationService(svc.hostname, svc.name, svc.namespace)
            )
    return out


def workload_mtls(mesh: MeshSnapshot, proxy: Proxy) -> MtlsPolicy:
    return compose_mtls(
        mesh.peer_authentications,
        proxy.namespace,
        proxy.label_dict,
        mesh.config.root_namespace,
    )


def _inbound_http_route(port: int) -> route_pb2.RouteConfiguration:
    cluster = inbound_cluster_name(port)
    return route_pb2.RouteConfiguration(
        name=cluster,
        virtual_hosts=[
            rc.VirtualHost(
                name=f"inbound|http|{port}",
                domains=["*"],
                # Peer metadata is the sidecars' business: the app never sees it.
                request_headers_to_remove=peer_header_names(),
                routes=[
                    rc.Route(
                        name="default",
                        match=rc.RouteMatch(prefix="/"),
                        route=rc.RouteAction(cluster=cluster, timeout=duration_pb2.Duration()),
                    )
                ],
            )
        ],
    )


REFUSAL_STAT_PREFIX = "strict_mtls_plaintext."


def is_refusal(chain: lc.FilterChain) -> bool:
    """Whether `chain` is one that closes every connection (plaintext under STRICT)."""
    if not chain.filters:
        return False
    first = chain.filters[0].typed_config
    config = network_rbac_pb2.RBAC()
    if not first.Is(config.DESCRIPTOR):
        return False
    first.Unpack(config)
    return bool(config.stat_prefix == REFUSAL_STAT_PREFIX)


def _refuse_all() -> lc.Filter:
    """A network RBAC that allows nothing: the connection is closed at once."""
    config = network_rbac_pb2.RBAC(stat_prefix=REFUSAL_STAT_PREFIX)
    config.rules.action = config.rules.ALLOW  # and no policies: nothing is allowed
    return lc.Filter(name="envoy.filters.network.rbac", typed_config=pack(config))


def _mtls_chain(
    name: str,
    network_filters: Sequence[lc.Filter],
    trust_domain: str,
    http: bool,
    port: int | None,
    istio_alpn: bool,
) -> lc.FilterChain:
    chain = lc.FilterChain(name=name, filters=list(network_filters))
    match = chain.filter_chain_match
    if port is not None:
        match.destination_port.value = port
    match.transport_protocol = TLS_TRANSPORT
    if istio_alpn:
        match.application_protocols.extend(SERVER_MTLS_ALPN)
    chain.transport_socket.CopyFrom(downstream_mtls_socket(trust_domain, http))
    return chain


def _plaintext_chains(
    port: int,
    protocol: Protocol,
    filters: InboundFilters,
    mode: MtlsMode,
    service: DestinationService,
    telemetry: ProxyTelemetry,
) -> list[lc.FilterChain]:
    """Before mTLS existed these were the only chains. Next to TLS chains they match
    plaintext only (raw_buffer), so a TLS client never reaches them. Under PERMISSIVE they
    count their clients (plaintext_stats): the ones STRICT would refuse."""
    cluster = inbound_cluster_name(port)
    stat = f"inbound_0.0.0.0_{port}"
    with_tls = mode is not MtlsMode.DISABLE
    counted = mode is MtlsMode.PERMISSIVE
    tcp_logs = [
        *inbound_tcp(service, False, telemetry),
        *([plaintext_counter(tcp=True)] if counted else []),
    ]
    if protocol.is_http or protocol is Protocol.UNSUPPORTED:
        unknown = protocol is Protocol.UNSUPPORTED
        manager = inline_connection_manager(
            stat,
            _inbound_http_route(port),
            filters.http,
            path_normalization=filters.path_normalization,
            access_logs=[plaintext_counter()] if counted else [],
            telemetry=inbound_http(service, False, telemetry),
        )
        chain = http_chain(stat, manager, sniffed=unknown)
        chain.filter_chain_match.destination_port.value = port
        if with_tls:
            chain.filter_chain_match.transport_protocol = RAW_BUFFER
        out = [chain]
        if unknown:
            tcp = [*filters.network, tcp_proxy(stat, cluster, tcp_logs)]
            sibling = lc.FilterChain(name=f"{cluster}-tcp", filters=tcp)
            sibling.filter_chain_match.destination_port.value = port
            sibling.filter_chain_match.transport_protocol = RAW_BUFFER
            out.insert(0, sibling)
        return out
    chain = lc.FilterChain(
        name=cluster, filters=[*filters.network, tcp_proxy(stat, cluster, tcp_logs)]
    )
    chain.filter_chain_match.destination_port.value = port
    if with_tls:
        chain.filter_chain_match.transport_protocol = RAW_BUFFER
    return [chain]


def _refused(name: str, port: int | None, plaintext_only: bool) -> lc.FilterChain:
    """A chain that closes every connection it matches (its RBAC allows nothing; the
    terminal tcp_proxy to BlackHoleCluster, which Envoy requires, is never reached)."""
    chain = lc.FilterChain(
        name=name, filters=[_refuse_all(), tcp_proxy(BLACK_HOLE_CLUSTER, BLACK_HOLE_CLUSTER)]
    )
    if port is not None:
        chain.filter_chain_match.destination_port.value = port
    if plaintext_only:
        chain.filter_chain_match.transport_protocol = RAW_BUFFER
    return chain


def _port_chains(
    port: int,
    protocol: Protocol,
    mode: MtlsMode,
    filters: InboundFilters,
    trust_domain: str | None,
    service: DestinationService,
    telemetry: ProxyTelemetry,
) -> list[lc.FilterChain]:
    """`trust_domain` None: the proxy has no certificate (no SDS), so no mTLS chain."""
    cluster = inbound_cluster_name(port)
    stat = f"inbound_0.0.0.0_{port}"
    chains: list[lc.FilterChain] = []
    if trust_domain is None:
        if mode is MtlsMode.STRICT:
            return [_refused(f"{cluster}-refused", port, plaintext_only=False)]
        return _plaintext_chains(port, protocol, filters, MtlsMode.DISABLE, service, telemetry)
    if mode is not MtlsMode.DISABLE:
        permissive = mode is MtlsMode.PERMISSIVE
        if protocol.is_http:
            manager = inline_connection_manager(
                stat,
                _inbound_http_route(port),
                filters.http,
                peer_certificate=True,
                path_normalization=filters.path_normalization,
                telemetry=inbound_http(service, True, telemetry),
            )
            chains.append(
                _mtls_chain(f"{stat}-mtls", [manager], trust_domain, True, port, permissive)
            )
        else:
            # Inside TLS the HTTP inspector sees nothing: an unnamed port over mTLS is TCP.
            tcp = [
                *filters.network,
                tcp_proxy(stat, cluster, inbound_tcp(service, True, telemetry)),
            ]
            chains.append(
                _mtls_chain(f"{cluster}-mtls", tcp, trust_domain, False, port, permissive)
            )
        if permissive:
            # TLS that is not Istio's (the app's own) passes through to the app untouched.
            own_tls = lc.FilterChain(
                name=f"{cluster}-tls",
                filters=[
                    *filters.network,
                    tcp_proxy(stat, cluster, inbound_tcp(service, False, telemetry)),
                ],
            )
            own_tls.filter_chain_match.destination_port.value = port
            own_tls.filter_chain_match.transport_protocol = TLS_TRANSPORT
            chains.append(own_tls)
    if mode is MtlsMode.STRICT:
        chains.append(_refused(f"{cluster}-plaintext-refused", port, plaintext_only=True))
    else:
        chains.extend(_plaintext_chains(port, protocol, filters, mode, service, telemetry))
    return chains


def _passthrough_chains(
    mode: MtlsMode, filters: InboundFilters, trust_domain: str | None
) -> list[lc.FilterChain]:
    """Chains for ports no service names: mTLS terminated before the passthrough, and,
    under STRICT, plaintext refused (the default chain would pass it)."""
    if mode is MtlsMode.DISABLE:
        return []
    if trust_domain is None:
        if mode is MtlsMode.STRICT:
            return [_refused(f"{INBOUND_PASSTHROUGH_CLUSTER}-refused", None, False)]
        return []
    passthrough = [
        *filters.network,
        tcp_proxy(INBOUND_PASSTHROUGH_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER),
    ]
    strict = mode is MtlsMode.STRICT
    chains = [
        _mtls_chain(
            f"{INBOUND_PASSTHROUGH_CLUSTER}-mtls",
            passthrough,
            trust_domain,
            False,
            None,
            istio_alpn=not strict,
        )
    ]
    if strict:
        chains.append(_refused(f"{INBOUND_PASSTHROUGH_CLUSTER}-plaintext-refused", None, True))
    return chains


def generate_inbound_listener(
    mesh: MeshSnapshot,
    proxy: Proxy,
    filters: InboundFilters | None = None,
    sds: bool = True,
    telemetry: ProxyTelemetry = DEFAULT_TELEMETRY,
) -> listener_pb2.Listener:
    """virtualInbound on 15006 for a workload, with its PeerAuthentication applied. A
    proxy without SDS holds no certificate: PERMISSIVE is plaintext only for it, and
    STRICT refuses everything."""
    filters = filters or workload_filters(mesh, proxy)
    policy = workload_mtls(mesh, proxy)
    trust_domain = mesh.config.trust_domain if sds else None
    chains: list[lc.FilterChain] = []
    sniff = False
    selecting = _workload_services(mesh, proxy)
    services = inbound_port_services(selecting)
    for port, protocol in sorted(inbound_port_protocols(proxy, selecting).items()):
        mode = policy.for_port(port)
        sniff = sniff or (protocol is Protocol.UNSUPPORTED and mode is not MtlsMode.STRICT)
        service = services.get(port, DestinationService())
        chains.extend(_port_chains(port, protocol, mode, filters, trust_domain, service, telemetry))
    chains.extend(_passthrough_chains(policy.mode, filters, trust_domain))
    default = lc.FilterChain(
        name=INBOUND_PASSTHROUGH_CLUSTER,
        filters=[
            *filters.network,
            tcp_proxy(INBOUND_PASSTHROUGH_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER),
        ],
    )
    listener = virtual_listener(
        "virtualInbound", INBOUND_CAPTURE_PORT, base_pb2.INBOUND, default, chains, hand_off=False
    )
    if any(c.filter_chain_match.transport_protocol == TLS_TRANSPORT for c in chains):
        listener.listener_filters.append(
            lc.ListenerFilter(
                name=TLS_INSPECTOR, typed_config=pack(tls_inspector_pb2.TlsInspector())
            )
        )
    if sniff:
        listener.listener_filters.append(http_inspector())
    if sniff or len(listener.listener_filters) > 1:
        listener.continue_on_listener_filters_timeout = True
    return listener
