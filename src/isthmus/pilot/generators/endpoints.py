"""EDS: the ClusterLoadAssignment of each requested outbound cluster.

An assignment depends on (mesh, proxy namespace, cluster name): the namespace decides
which services and which DestinationRule (hence which subset labels) it sees; and, when
locality load balancing ranks or weighs the endpoints (pilot.locality_lb), on the part of
the proxy's place it reads, which its inputs then carry.
Every requested outbound name gets an assignment, empty when the service is unknown or
invisible, the subset is not defined, or nothing is ready: Envoy keeps an EDS cluster
warming until it receives one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from isthmus.api.security import MtlsMode
from isthmus.model.snapshot import MeshSnapshot, is_exported_to
from isthmus.model.types import Endpoint
from isthmus.pilot.destination_rule import (
    DestinationRuleIndex,
    MergedDestinationRule,
    effective_policy,
)
from isthmus.pilot.envoy.endpoint import (
    ClusterLoadAssignment,
    MtlsDisabled,
    cluster_load_assignment,
    group_by_locality,
    serving_endpoints,
)
from isthmus.pilot.envoy.locality_lb import apply_locality_lb
from isthmus.pilot.locality_lb import LocalityLb, ProxyPlace, locality_lb
from isthmus.pilot.naming import ClusterKey, TrafficDirection, parse_cluster_name
from isthmus.pilot.security.peer_authentication import MtlsPolicy, compose_mtls


@dataclass(frozen=True)
class AssignmentInputs:
    """Everything one ClusterLoadAssignment is built from: equal inputs, equal bytes, so
    a cache can reuse the assignment across namespaces and mesh versions."""

    cluster_name: str
    endpoints: tuple[Endpoint, ...]
    mtls_disabled: tuple[bool, ...]
    # Locality load balancing, with the part of the proxy's place it reads.
    locality: LocalityLb | None = None

    def build(self) -> ClusterLoadAssignment:
        flags = dict(zip(self.endpoints, self.mtls_disabled, strict=True))
        out = cluster_load_assignment(self.cluster_name, self.endpoints, flags.__getitem__)
        found = self.locality
        if found is not None and self.endpoints:
            apply_locality_lb(
                out,
                [group for _, group in group_by_locality(self.endpoints)],
                found.setting,
                found.enable_failover,
                found.place.locality,
                dict(found.place.labels),
            )
        return out


def endpoint_inputs(
    mesh: MeshSnapshot,
    namespace: str,
    cluster_names: Iterable[str],
    rules: DestinationRuleIndex | None = None,
    place: ProxyPlace | None = None,
) -> list[AssignmentInputs]:
    """The inputs of the assignments for the outbound names among `cluster_names`, sorted
    by name, for proxies in `place` (unknown by default)."""
    rules = rules if rules is not None else DestinationRuleIndex.of(mesh)
    disabled = mtls_disabled_checker(mesh)
    here = place or ProxyPlace()
    out = []
    for name in sorted(set(cluster_names)):
        key = parse_cluster_name(name)
        if key is None or key.direction != TrafficDirection.OUTBOUND:
            continue
        rule, found_endpoints = _rule_and_endpoints(mesh, rules, namespace, key)
        endpoints = tuple(found_endpoints)
        policy = None
        if rule is not None and (rule.traffic_policy is not None or key.subset):
            policy = effective_policy(rule, key.port, key.subset or None)
        found = locality_lb(mesh.config, policy)
        out.append(
            AssignmentInputs(
                name,
                endpoints,
                tuple(disabled(e) for e in endpoints),
                found.at(here) if found is not None else None,
            )
        )
    return out


def generate_endpoints(
    mesh: MeshSnapshot,
    namespace: str,
    cluster_names: Iterable[str],
    rules: DestinationRuleIndex | None = None,
    place: ProxyPlace | None = None,
) -> list[ClusterLoadAssignment]:
    """Assignments for the outbound names among `cluster_names`, sorted by name."""
    return [i.build() for i in endpoint_inputs(mesh, namespace, cluster_names, rules, place)]


def mtls_disabled_checker(mesh: MeshSnapshot) -> MtlsDisabled:
    """Whether the PeerAuthentication of an endpoint's workload DISABLEs mTLS on its port;
    composed once per (namespace, labels)."""
    policies: dict[tuple[str, tuple[tuple[str, str], ...]], MtlsPolicy] = {}

    def disabled(endpoint: Endpoint) -> bool:
        if not mesh.peer_authentications:
            return False
        key = (endpoint.namespace, endpoint.labels)
        if key not in policies:
            policies[key] = compose_mtls(
                mesh.peer_authentications,
                endpoint.namespace,
                dict(endpoint.labels),
                mesh.config.root_namespace,
            )
        return policies[key].for_port(endpoint.port) is MtlsMode.DISABLE

    return disabled


def cluster_endpoints(
    mesh: MeshSnapshot, rules: DestinationRuleIndex, namespace: str, key: ClusterKey
) -> list[Endpoint]:
    """Ready endpoints of the service port, narrowed to the subset's labels."""
    return _rule_and_endpoints(mesh, rules, namespace, key)[1]


def _rule_and_endpoints(
    mesh: MeshSnapshot, rules: DestinationRuleIndex, namespace: str, key: ClusterKey
) -> tuple[MergedDestinationRule | None, list[Endpoint]]:
    """The DestinationRule the proxy applies to the service (None for a service it can not
    see), and the cluster's ready endpoints (`cluster_endpoints`)."""
    service = mesh.services.get(key.hostname)
    if service is None or not is_exported_to(service.export_to, service.namespace, namespace):
        return None, []
    rule = rules.lookup(service.hostname, service.namespace, namespace)
    selector: dict[str, str] = {}
    if key.subset:
        subset = rule.subset(key.subset) if rule else None
        if subset is None:
            return rule, []
        selector = subset.labels
    return rule, serving_endpoints(mesh.endpoints.of(key.hostname, key.port), selector)
