"""CDS for a sidecar: outbound clusters per visible service port and subset, Istio's fixed
clusters, and one inbound cluster per port the workload serves.

The outbound part (with the fixed clusters) depends only on (mesh, proxy's SidecarScope),
so callers can build it once per scope and share it; the inbound part depends only on
the served ports and what their services say about them (`inbound_ports`). One exception:
a DNS cluster whose locality load balancing ranks its inline endpoints by the proxy's
place (pilot.locality_lb) is a `PlacedCluster`, finished per place (`OutboundClusters`).
Output is sorted by name; on a name clash the first cluster built wins, as in Istio.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeAlias, TypeVar

from isthmus.api.networking import ConnectionPoolSettings, SimpleLB, TrafficPolicy
from isthmus.model.snapshot import EndpointFacts, MeshConfig, MeshSnapshot
from isthmus.model.types import Endpoint, Protocol, Proxy, Resolution, Service, ServicePort
from isthmus.pilot.destination_rule import (
    DestinationRuleIndex,
    MergedDestinationRule,
    effective_policy,
    port_traffic_policy,
)
from isthmus.pilot.envoy.cluster import (
    Cluster,
    ClusterDraft,
    add_config_metadata,
    add_service_metadata,
    apply_dns_resolution,
    black_hole_cluster,
    inbound_cluster,
    inbound_passthrough_cluster,
    new_cluster,
    outbound_passthrough_cluster,
    set_load_assignment,
    set_upstream_protocol,
)
from isthmus.pilot.envoy.connection_pool import apply_connection_pool, apply_h2_upgrade
from isthmus.pilot.envoy.endpoint import (
    group_by_locality,
    locality_lb_endpoints,
    serving_endpoints,
)
from isthmus.pilot.envoy.load_balancer import apply_load_balancer
from isthmus.pilot.envoy.locality_lb import apply_locality_lb
from isthmus.pilot.envoy.outlier import apply_outlier_detection
from isthmus.pilot.locality_lb import (
    NOTHING,
    LocalityLb,
    LocalityNeeds,
    ProxyPlace,
    effective_setting,
    locality_lb,
)
from isthmus.pilot.naming import inbound_cluster_name, outbound_cluster_name
from isthmus.pilot.security.cluster_tls import apply_upstream_tls, service_identities
from isthmus.pilot.sidecar_scope import SidecarScope, cluster_services, default_scope, sidecar_scope

_DISCOVERY = {
    Resolution.CLIENT_SIDE_LB: Cluster.EDS,
    Resolution.DNS: Cluster.STRICT_DNS,
    Resolution.PASSTHROUGH: Cluster.ORIGINAL_DST,
}


@dataclass(frozen=True, eq=False)
class PlacedCluster:
    """A DNS cluster whose inline endpoints locality load balancing ranks per proxy place:
    `cluster` as built for no place, `groups` the endpoints of its assignment's groups."""

    cluster: Cluster
    locality: LocalityLb
    groups: tuple[tuple[Endpoint, ...], ...]

    @property
    def name(self) -> str:
        name: str = self.cluster.name
        return name

    def at(self, place: ProxyPlace) -> Cluster:
        placed = self.locality.at(place)
        out = Cluster()
        out.CopyFrom(self.cluster)
        apply_locality_lb(
            out.load_assignment,
            self.groups,
            placed.setting,
            placed.enable_failover,
            placed.place.locality,
            dict(placed.place.labels),
        )
        return out


AnyCluster: TypeAlias = Cluster | PlacedCluster
C = TypeVar("C", Cluster, AnyCluster)


@dataclass(frozen=True)
class OutboundClusters:
    """A scope's outbound clusters: `shared` ones are the same for every proxy; `placed`
    ones are finished per proxy place; `needs` says what of a place the scope's EDS
    assignments and placed clusters read."""

    shared: list[Cluster]
    placed: list[PlacedCluster] = field(default_factory=list)
    needs: LocalityNeeds = NOTHING

    def at(self, place: ProxyPlace | None) -> list[Cluster]:
        here = place or ProxyPlace()
        return _unique_sorted([*self.shared, *(p.at(here) for p in self.placed)])


def generate_clusters(mesh: MeshSnapshot, proxy: Proxy) -> list[Cluster]:
    """Every cluster a sidecar in `proxy.namespace` serving `proxy.inbound_ports` needs."""
    rules = DestinationRuleIndex.of(mesh)
    scope = sidecar_scope(mesh, proxy.namespace, proxy.labels)
    outbound = outbound_clusters(mesh, proxy.namespace, rules, scope=scope)
    served = inbound_ports(mesh, proxy, rules)
    inbound = generate_inbound_clusters(proxy.inbound_ports, served, mesh.config.connect_timeout)
    return _unique_sorted(outbound.at(ProxyPlace.of(proxy)) + inbound)


def generate_outbound_clusters(
    mesh: MeshSnapshot,
    namespace: str,
    rules: DestinationRuleIndex | None = None,
    sds: bool = True,
    scope: SidecarScope | None = None,
    place: ProxyPlace | None = None,
) -> list[Cluster]:
    """`outbound_clusters` for proxies in `place` (unknown by default)."""
    return outbound_clusters(mesh, namespace, rules, sds, scope).at(place)


def outbound_clusters(
    mesh: MeshSnapshot,
    namespace: str,
    rules: DestinationRuleIndex | None = None,
    sds: bool = True,
    scope: SidecarScope | None = None,
) -> OutboundClusters:
    """Default and subset clusters of every service port visible from `namespace` (and
    imported by its Sidecar's `scope`), plus the fixed BlackHoleCluster,
    PassthroughCluster and InboundPassthroughCluster. Without `sds` (a proxy that can
    hold no certificate) there is no automatic mTLS."""
    rules = rules if rules is not None else DestinationRuleIndex.of(mesh)
    scope = scope if scope is not None else default_scope(mesh, namespace)
    clusters: list[AnyCluster] = list(fixed_clusters(mesh.config))
    needs = NOTHING
    for service in sorted(cluster_services(mesh, scope), key=lambda s: s.hostname):
        rule = rules.lookup(service.hostname, service.namespace, namespace)
        for port in service.ports:
            if port.protocol == Protocol.UDP:
                continue
            facts = mesh.endpoint_facts.of(service.hostname, port.port)
            found = service_port_clusters(service, port, rule, facts, mesh.config, sds)
            clusters += found
            if service.resolution is Resolution.CLIENT_SIDE_LB:
                needs |= _eds_needs(mesh.config, rule, port.port)
    unique = _unique_sorted(clusters)
    placed = [c for c in unique if isinstance(c, PlacedCluster)]
    for cluster in placed:
        needs |= cluster.locality.needs
    shared = [c for c in unique if not isinstance(c, PlacedCluster)]
    return OutboundClusters(shared, placed, needs)


def _eds_needs(config: MeshConfig, rule: MergedDestinationRule | None, port: int) -> LocalityNeeds:
    """What the EDS assignments of a service port's clusters read of a proxy's place."""
    needs = NOTHING
    for subset in [None, *(s.name for s in rule.subsets)] if rule else [None]:
        found = locality_lb(config, effective_policy(rule, port, subset))
        if found is not None:
            needs |= found.needs
    return needs


def service_port_clusters(
    service: Service,
    port: ServicePort,
    rule: MergedDestinationRule | None,
    facts: EndpointFacts,
    config: MeshConfig,
    sds: bool = True,
) -> list[AnyCluster]:
    """`outbound|port||host` and one `outbound|port|subset|host` per subset of `rule`.
    Only a DNS cluster holds endpoints (inline); EDS clusters know their endpoints only
    by the service accounts behind them, so a pod coming or going leaves them alone."""
    discovery = _DISCOVERY[service.resolution]
    identities = service_identities(facts.service_accounts, config.trust_domain) if sds else None
    endpoints: Sequence[Endpoint] = facts.dns_endpoints
    if discovery == Cluster.STRICT_DNS and not endpoints:
        endpoints = [_host_endpoint(service, port)]
    name = outbound_cluster_name(port.port, None, service.hostname)
    default = outbound_cluster(
        name,
        service,
        port,
        discovery,
        effective_policy(rule, port.port),
        endpoints,
        config,
        identities,
    )
    if default is None:
        return []
    out = [_with_rule_metadata(default, rule, "")]
    for subset in rule.subsets if rule else ():
        policy = effective_policy(rule, port.port, subset.name)
        subset_discovery = (default.cluster if isinstance(default, PlacedCluster) else default).type
        if _simple_lb(subset.traffic_policy) == SimpleLB.PASSTHROUGH:
            subset_discovery = Cluster.ORIGINAL_DST
        cluster = outbound_cluster(
            outbound_cluster_name(port.port, subset.name, service.hostname),
            service,
            port,
            subset_discovery,
            policy,
            serving_endpoints(endpoints, subset.labels),
            config,
            identities,
        )
        if cluster is not None:
            out.append(_with_rule_metadata(cluster, rule, subset.name))
    return out


def outbound_cluster(
    name: str,
    service: Service,
    port: ServicePort,
    discovery: int,
    policy: TrafficPolicy | None,
    endpoints: Sequence[Endpoint],
    config: MeshConfig,
    identities: Sequence[str] | None = (),
) -> AnyCluster | None:
    """One outbound cluster; None for a DNS cluster left without endpoints (as Istio); a
    PlacedCluster for a DNS cluster whose endpoints locality load balancing ranks."""
    draft = new_cluster(name, discovery)
    serving: list[Endpoint] = []
    if discovery == Cluster.STRICT_DNS:
        serving = serving_endpoints(endpoints)
        if not serving:
            return None
        apply_dns_resolution(draft.cluster)
        set_load_assignment(draft.cluster, locality_lb_endpoints(serving))
    set_upstream_protocol(draft, port.protocol)
    add_service_metadata(draft.cluster, service)
    apply_traffic_policy(draft, policy, config)
    apply_upstream_tls(draft.cluster, service, policy.tls if policy else None, identities)
    cluster = draft.finish()
    placed = locality_lb(config, policy) if cluster.type == Cluster.STRICT_DNS else None
    if placed is None:
        return cluster
    groups = tuple(tuple(group) for _, group in group_by_locality(serving))
    return PlacedCluster(cluster, placed, groups)


def apply_traffic_policy(
    draft: ClusterDraft, policy: TrafficPolicy | None, config: MeshConfig
) -> None:
    """Istio's applyTrafficPolicy for outbound clusters (TLS is set elsewhere)."""
    pool = policy.connection_pool if policy else None
    apply_h2_upgrade(draft, pool)
    apply_connection_pool(draft, pool, config.connect_timeout)
    apply_outlier_detection(draft.cluster, policy.outlier_detection if policy else None)
    apply_load_balancer(
        draft.cluster,
        policy.load_balancer if policy else None,
        effective_setting(config, policy),
    )


def fixed_clusters(config: MeshConfig) -> list[Cluster]:
    """BlackHoleCluster, PassthroughCluster and InboundPassthroughCluster."""
    out = [black_hole_cluster(config.connect_timeout)]
    for draft in (
        outbound_passthrough_cluster(config.connect_timeout),
        inbound_passthrough_cluster(config.connect_timeout),
    ):
        apply_connection_pool(draft, None, config.connect_timeout)
        out.append(draft.finish())
    return out


@dataclass(frozen=True)
class InboundPort:
    """What an inbound cluster takes from the service a served port belongs to."""

    protocol: Protocol = Protocol.UNSUPPORTED
    connection_pool: ConnectionPoolSettings | None = None


def generate_inbound_clusters(
    ports: Iterable[int],
    served: Mapping[int, InboundPort] | None = None,
    connect_timeout: timedelta = MeshConfig.connect_timeout,
) -> list[Cluster]:
    """`inbound|PORT||` per served port. `served` (see `inbound_ports`) gives a port its
    service's protocol (HTTP/2 to gRPC apps; the client's protocol when unknown) and the
    connectionPool of its DestinationRule, which Istio applies on the server side too so
    the server admits what its clients are allowed to send."""
    out = []
    for port in sorted(set(ports)):
        spec = (served or {}).get(port, InboundPort())
        draft = inbound_cluster(inbound_cluster_name(port), port)
        set_upstream_protocol(draft, spec.protocol)
        apply_connection_pool(draft, spec.connection_pool, connect_timeout)
        out.append(draft.finish())
    return out


def inbound_ports(
    mesh: MeshSnapshot, proxy: Proxy, rules: DestinationRuleIndex | None = None
) -> dict[int, InboundPort]:
    """Per served (target) port: protocol and DestinationRule connectionPool of the first
    service (by host name) in the proxy's namespace that selects the proxy on that port."""
    rules = rules if rules is not None else DestinationRuleIndex.of(mesh)
    labels = proxy.label_dict
    out: dict[int, InboundPort] = {}
    for service in sorted(mesh.services.visible_to(proxy.namespace), key=lambda s: s.hostname):
        if service.namespace != proxy.namespace or not service.selector:
            continue
        if any(labels.get(k) != v for k, v in service.selector):
            continue
        rule = rules.lookup(service.hostname, service.namespace, proxy.namespace)
        for port in service.ports:
            target = port.target_port or port.port
            if target not in proxy.inbound_ports or target in out:
                continue
            policy, _ = port_traffic_policy(rule.traffic_policy if rule else None, port.port)
            pool = policy.connection_pool if policy else None
            out[target] = InboundPort(port.protocol, pool)
    return out


def eds_cluster_names(clusters: Iterable[Cluster]) -> list[str]:
    """Names of the clusters whose endpoints come over EDS: what EDS must answer for."""
    return sorted(c.name for c in clusters if c.type == Cluster.EDS)


def _host_endpoint(service: Service, port: ServicePort) -> Endpoint:
    """A DNS ServiceEntry without endpoints resolves its own host name."""
    return Endpoint(
        address=service.hostname,
        port=port.target_port or port.port,
        labels=(),
        service_account="",
        namespace=service.namespace,
    )


def _simple_lb(policy: TrafficPolicy | None) -> SimpleLB | None:
    lb = policy.load_balancer if policy else None
    return lb.simple if lb else None


def _with_rule_metadata(
    cluster: AnyCluster, rule: MergedDestinationRule | None, subset: str
) -> AnyCluster:
    if rule is not None:
        target = cluster.cluster if isinstance(cluster, PlacedCluster) else cluster
        add_config_metadata(target, rule.namespace, rule.name, subset)
    return cluster


def _unique_sorted(clusters: Iterable[C]) -> list[C]:
    first: dict[str, C] = {}
    for cluster in clusters:
        first.setdefault(cluster.name, cluster)
    return [first[name] for name in sorted(first)]
