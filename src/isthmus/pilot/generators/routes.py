"""RDS: one RouteConfiguration per outbound HTTP port ("8080"), plus "http_proxy".

Per service a virtual host with the names an app may use (`name`, `name.ns`, FQDN, the
cluster IP or a ServiceEntry's IP addresses, each with and without the port; a name
already taken by an earlier service is left out); its routes come from the first
VirtualService of the host that has rules for this proxy and port (see
pilot.virtual_service) or, without one, a default route. Which services a port's routes
hold, and their protocol there, come from the proxy's Sidecar scope.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from envoy.config.core.v3.base_pb2 import HeaderValueOption
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from isthmus.api.networking import HTTPMatchRequest, HTTPRoute, VirtualService
from isthmus.model.addresses import is_cidr
from isthmus.model.hosts import kubernetes_alt_names
from isthmus.model.snapshot import ConfigEntry, MeshSnapshot
from isthmus.model.types import Protocol, Proxy, Service
from isthmus.pilot.destinations import destination_cluster
from isthmus.pilot.envoy.route_action import (
    WeightedDestination,
    build_route,
    default_route,
    mirror_fraction,
)
from isthmus.pilot.envoy.route_match import route_match
from isthmus.pilot.naming import PASSTHROUGH_CLUSTER, outbound_cluster_name
from isthmus.pilot.sidecar_scope import SidecarScope, default_scope, outbound_services
from isthmus.pilot.telemetry.peer_metadata import peer_headers_to_add
from isthmus.pilot.virtual_service import VirtualServiceIndex, virtual_service_index

HTTP_PROXY_ROUTE = "http_proxy"
MESH_GATEWAY = "mesh"
# Istio's catch-all virtual host and route names (util.PassthroughRouteName, BlackHoleRouteName).
ALLOW_ANY = "allow_any"
BLOCK_ALL = "block_all"
# Istio's limit; Envoy's own default (4 KiB) is below what validation admits (1 MiB).
MAX_DIRECT_RESPONSE_BODY_BYTES = 1024 * 1024

# (destination cluster name) -> hash policies from its DestinationRule's consistentHash.
HashPolicyLookup = Callable[[str], Sequence[rc.RouteAction.HashPolicy]]


def _no_hash(_: str) -> Sequence[rc.RouteAction.HashPolicy]:
    return ()


def resolve_gateway_name(name: str, namespace: str) -> str:
    """A gateway as a VirtualService names it, as `namespace/name` (Istio's
    resolveGatewayName): `mesh` stays, a bare name is in the VirtualService's namespace,
    the legacy `name.namespace[.svc.cluster.local]` form names its namespace."""
    if name == MESH_GATEWAY or "/" in name:
        return name
    if "." in name:
        gateway, rest = name.split(".", 1)
        return f"{rest.split('.', 1)[0]}/{gateway}"
    return f"{namespace}/{name}"


def _match_applies(
    match: HTTPMatchRequest,
    proxy: Proxy,
    port: int,
    vs_namespace: str,
    gateways: frozenset[str] = frozenset({MESH_GATEWAY}),
) -> bool:
    """Istio's port and sourceMatchHTTP checks: a match naming gateways applies only to
    those (`mesh`: the sidecars; else the gateways `proxy` serves), and sourceLabels are
    then not consulted."""
    if match.port is not None and match.port != port:
        return False
    if match.gateways:
        return any(resolve_gateway_name(g, vs_namespace) in gateways for g in match.gateways)
    if match.source_namespace is not None and match.source_namespace != proxy.namespace:
        return False
    labels = proxy.label_dict
    return all(labels.get(k) == v for k, v in match.source_labels.items())


def is_catch_all(route: rc.Route) -> bool:
    """Istio's IsCatchAllRoute: every path (prefix `/` or regex `.*`), no header or query
    parameter condition. Routes after it are unreachable and are not sent."""
    m = route.match
    specifier = m.WhichOneof("path_specifier")
    if specifier == "prefix":
        every_path = m.prefix == "/"
    elif specifier == "safe_regex":
        every_path = m.safe_regex.regex == ".*"
    else:
        every_path = False
    return every_path and not m.headers and not m.query_parameters


def vs_routes(
    entry: ConfigEntry[VirtualService],
    mesh: MeshSnapshot,
    proxy: Proxy,
    port: int,
    hash_lookup: HashPolicyLookup = _no_hash,
    gateways: frozenset[str] = frozenset({MESH_GATEWAY}),
) -> list[rc.Route]:
    """The VirtualService's http rules in order; first match wins, as in Envoy and Istio.

    Matches that do not apply to this proxy (a sidecar: gateway `mesh`; a gateway pod: the
    `gateways` it serves) or port are left out; an empty result means the VirtualService
    does not route this proxy's traffic on this port at all."""
    routes: list[rc.Route] = []
    for index, rule in enumerate(entry.resource.spec.http):
        matches: list[HTTPMatchRequest | None]
        if rule.match:
            ns = entry.namespace
            matches = [m for m in rule.match if _match_applies(m, proxy, port, ns, gateways)]
        else:
            matches = [None]
        for route in _rule_routes(entry, rule, index, matches, mesh, port, hash_lookup):
            routes.append(route)
            if is_catch_all(route):
                return routes
    return routes


def _rule_routes(
    entry: ConfigEntry[VirtualService],
    rule: HTTPRoute,
    index: int,
    matches: Sequence[HTTPMatchRequest | None],
    mesh: MeshSnapshot,
    port: int,
    hash_lookup: HashPolicyLookup,
) -> list[rc.Route]:
    ns = entry.namespace
    destinations = [
        WeightedDestination(
            destination_cluster(d.destination, ns, port, mesh),
            100 if d.weight is None and len(rule.route) == 1 else (d.weight or 0),
            d.headers,
        )
        for d in rule.route
    ]
    mirrors = []
    if rule.mirror is not None:
        policy = mirror_fraction(rule.mirror_percentage, rule.mirror_percent)
        if policy is not None:
            mirrors.append((destination_cluster(rule.mirror, ns, port, mesh), policy))
    for m in rule.mirrors:
        policy = mirror_fraction(m.percentage, None)
        if policy is not None:
            mirrors.append((destination_cluster(m.destination, ns, port, mesh), policy))
    # Istio: the hash policy of every destination that carries traffic; retries stay on
    # the hashed host only when the rule has a single destination.
    live = [d for d in destinations if d.weight > 0] or destinations[:1]
    hash_policies: list[rc.RouteAction.HashPolicy] = []
    for d in live:
        for policy in hash_lookup(d.cluster):
            if policy not in hash_policies:
                hash_policies.append(policy)
    consistent_hash = len(rule.route) == 1 and bool(hash_policies)
    out = []
    for m_index, match in enumerate(matches):
        name = rule.name or f"{entry.namespace}/{entry.name}.http[{index}]"
        if match is not None and match.name:
            name = f"{name}.{match.name}"
        elif len(matches) > 1:
            name = f"{name}.match[{m_index}]"
        out.append(
            build_route(
                rule,
                route_match(match),
                name,
                destinations,
                mirrors,
                hash_policies,
                port=port,
                consistent_hash=consistent_hash,
            )
        )
    return out


def service_routes(
    svc: Service,
    mesh: MeshSnapshot,
    proxy: Proxy,
    port: int,
    virtual_services: VirtualServiceIndex,
    hash_lookup: HashPolicyLookup = _no_hash,
) -> list[rc.Route]:
    """Routes of the first VirtualService that yields any for this proxy and port (Istio
    skips a VirtualService whose rules all fail sourceLabels/port); else the default."""
    for vs in virtual_services.for_host(svc.hostname):
        routes = vs_routes(vs, mesh, proxy, port, hash_lookup)
        if routes:
            return routes
    cluster = outbound_cluster_name(port, "", svc.hostname)
    return [default_route(cluster, hash_lookup(cluster))]


def _domains(svc: Service, proxy: Proxy, port: int, mesh: MeshSnapshot) -> list[str]:
    names = kubernetes_alt_names(
        svc.hostname, svc.namespace, proxy.namespace, mesh.config.domain_suffix
    )
    # Every address that is one IP (Istio's GetAllAddressesForProxy); a CIDR block names
    # no Host a request can carry.
    names.extend(a for a in svc.addresses if not is_cidr(a))
    out: list[str] = []
    for n in names:
        out.extend((n, f"{n}:{port}"))
    return out


def _unused(domains: list[str], used: set[str]) -> list[str]:
    """Envoy rejects a route config that names a domain twice, and services can share one
    (the hosts of one ServiceEntry share its address): the first service keeps it, as
    Istio's dedupeDomains does."""
    fresh = [d for d in domains if d.lower() not in used]
    used.update(d.lower() for d in fresh)
    return fresh


def _peer_headers(mesh: MeshSnapshot, svc: Service, port: int) -> list[HeaderValueOption]:
    """The client's peer metadata headers, only towards a service every endpoint of
    which runs a sidecar (which removes them): a sidecar-less app never sees them."""
    if svc.mesh_external or not mesh.endpoint_facts.of(svc.hostname, port).all_sidecars:
        return []
    return peer_headers_to_add()


def http_services_on_port(mesh: MeshSnapshot, scope: SidecarScope, port: int) -> list[Service]:
    return [
        s
        for s in outbound_services(mesh, scope)
        if (p := s.port(port)) is not None
        and (p.protocol.is_http or p.protocol is Protocol.UNSUPPORTED)
    ]


def generate_port_route_config(
    mesh: MeshSnapshot,
    proxy: Proxy,
    port: int,
    hash_lookup: HashPolicyLookup = _no_hash,
    scope: SidecarScope | None = None,
) -> route_pb2.RouteConfiguration:
    """Route config "PORT" used by the outbound listener 0.0.0.0_PORT: a virtual host per
    service the proxy's Sidecar `scope` sees on the port, then the catch-all."""
    scope = scope if scope is not None else default_scope(mesh, proxy.namespace)
    virtual_services = virtual_service_index(mesh, proxy.namespace)
    used: set[str] = set()
    vhosts = []
    for svc in http_services_on_port(mesh, scope, port):
        domains = _unused(_domains(svc, proxy, port, mesh), used)
        if not domains:
            continue
        vhosts.append(
            rc.VirtualHost(
                name=f"{svc.hostname}:{port}",
                domains=domains,
                routes=service_routes(svc, mesh, proxy, port, virtual_services, hash_lookup),
                include_request_attempt_count=True,
                request_headers_to_add=_peer_headers(mesh, svc, port),
            )
        )
    vhosts.append(catch_all_virtual_host(scope.registry_only))
    return _route_configuration(str(port), vhosts)


def catch_all_virtual_host(registry_only: bool) -> rc.VirtualHost:
    """Istio's BuildCatchAllVirtualHost: under ALLOW_ANY (its default) unknown hosts pass
    through (`allow_any`); under REGISTRY_ONLY they get a 502 (`block_all`)."""
    if registry_only:
        route = rc.Route(
            name=BLOCK_ALL,
            match=rc.RouteMatch(prefix="/"),
            direct_response=rc.DirectResponseAction(status=502),
        )
    else:
        route = rc.Route(
            name=ALLOW_ANY,
            match=rc.RouteMatch(prefix="/"),
            route=rc.RouteAction(cluster=PASSTHROUGH_CLUSTER, timeout=_zero()),
        )
    return rc.VirtualHost(
        name=route.name, domains=["*"], routes=[route], include_request_attempt_count=True
    )


def generate_http_proxy_route_config(
    mesh: MeshSnapshot,
    proxy: Proxy,
    hash_lookup: HashPolicyLookup = _no_hash,
    scope: SidecarScope | None = None,
) -> route_pb2.RouteConfiguration:
    """Route config for the explicit HTTP proxy listener: every HTTP service on every port,
    selected by Host header `name[:port]`. A bare name (no port) means the service's first
    HTTP port."""
    scope = scope if scope is not None else default_scope(mesh, proxy.namespace)
    virtual_services = virtual_service_index(mesh, proxy.namespace)
    used: set[str] = set()
    vhosts = []
    for svc in outbound_services(mesh, scope):
        for index, p in enumerate(
            q for q in svc.ports if q.protocol.is_http or q.protocol is Protocol.UNSUPPORTED
        ):
            domains = [d for d in _domains(svc, proxy, p.port, mesh) if ":" in d or index == 0]
            domains = _unused(domains, used)
            if not domains:
                continue
            vhosts.append(
                rc.VirtualHost(
                    name=f"{svc.hostname}:{p.port}",
                    domains=domains,
                    routes=service_routes(svc, mesh, proxy, p.port, virtual_services, hash_lookup),
                    include_request_attempt_count=True,
                    request_headers_to_add=_peer_headers(mesh, svc, p.port),
                )
            )
    return _route_configuration(HTTP_PROXY_ROUTE, vhosts)


def _route_configuration(
    name: str, vhosts: Sequence[rc.VirtualHost]
) -> route_pb2.RouteConfiguration:
    return route_pb2.RouteConfiguration(
        name=name,
        virtual_hosts=vhosts,
        validate_clusters=_false(),
        max_direct_response_body_size_bytes=wrappers_pb2.UInt32Value(
            value=MAX_DIRECT_RESPONSE_BODY_BYTES
        ),
    )


def _zero() -> duration_pb2.Duration:
    return duration_pb2.Duration()


def _false() -> wrappers_pb2.BoolValue:
    return wrappers_pb2.BoolValue(value=False)
