"""EDS: the ClusterLoadAssignment of each requested outbound cluster.

An assignment depends only on (mesh, proxy namespace, cluster name): the namespace
decides which services and which DestinationRule (hence which subset labels) it sees.
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
from isthmus.pilot.destination_rule import DestinationRuleIndex
from isthmus.pilot.envoy.endpoint import (
    ClusterLoadAssignment,
    MtlsDisabled,
    cluster_load_assignment,
    serving_endpoints,
)
from isthmus.pilot.naming import ClusterKey, TrafficDirection, parse_cluster_name
from isthmus.pilot.security.peer_authentication import MtlsPolicy, compose_mtls


@dataclass(frozen=True)
class AssignmentInputs:
    """Everything one ClusterLoadAssignment is built from: equal inputs, equal bytes, so
    a cache can reuse the assignment across namespaces and mesh versions."""

    cluster_name: str
    endpoints: tuple[Endpoint, ...]
    mtls_disabled: tuple[bool, ...]

    def build(self) -> ClusterLoadAssignment:
        flags = dict(zip(self.endpoints, self.mtls_disabled, strict=True))
        return cluster_load_assignment(self.cluster_name, self.endpoints, flags.__getitem__)


def endpoint_inputs(
    mesh: MeshSnapshot,
    namespace: str,
    cluster_names: Iterable[str],
    rules: DestinationRuleIndex | None = None,
) -> list[AssignmentInputs]:
    """The inputs of the assignments for the outbound names among `cluster_names`, sorted
    by name."""
    rules = rules if rules is not None else DestinationRuleIndex.of(mesh)
    disabled = mtls_disabled_checker(mesh)
    out = []
    for name in sorted(set(cluster_names)):
        key = parse_cluster_name(name)
        if key is None or key.direction != TrafficDirection.OUTBOUND:
            continue
        endpoints = tuple(cluster_endpoints(mesh, rules, namespace, key))
        out.append(AssignmentInputs(name, endpoints, tuple(disabled(e) for e in endpoints)))
    return out


def generate_endpoints(
    mesh: MeshSnapshot,
    namespace: str,
    cluster_names: Iterable[str],
    rules: DestinationRuleIndex | None = None,
) -> list[ClusterLoadAssignment]:
    """Assignments for the outbound names among `cluster_names`, sorted by name."""
    return [i.build() for i in endpoint_inputs(mesh, namespace, cluster_names, rules)]


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
    service = mesh.services.get(key.hostname)
    if service is None or not is_exported_to(service.export_to, service.namespace, namespace):
        return []
    selector: dict[str, str] = {}
    if key.subset:
        rule = rules.lookup(service.hostname, service.namespace, namespace)
        subset = rule.subset(key.subset) if rule else None
        if subset is None:
            return []
        selector = subset.labels
    return serving_endpoints(mesh.endpoints.of(key.hostname, key.port), selector)
