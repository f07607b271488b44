"""EDS: ClusterLoadAssignments per outbound cluster name, as seen from a namespace."""

from __future__ import annotations

from _build import mesh_from_yaml

from isthmus.api.networking import DestinationRule
from isthmus.model.snapshot import (
    ConfigEntry,
    EndpointIndex,
    MeshConfig,
    MeshSnapshot,
    ServiceIndex,
)
from isthmus.model.types import Endpoint, Protocol, Service, ServicePort
from isthmus.pilot.envoy.endpoint import ClusterLoadAssignment
from isthmus.pilot.generators.clusters import eds_cluster_names, generate_clusters
from isthmus.pilot.generators.endpoints import generate_endpoints
from isthmus.pilot.naming import outbound_cluster_name

HOST = "inventory-service.production.svc.cluster.local"
DEFAULT = outbound_cluster_name(8080, None, HOST)
V1 = outbound_cluster_name(8080, "v1", HOST)
V2 = outbound_cluster_name(8080, "v2", HOST)


def endpoint(
    address: str,
    version: str,
    *,
    ready: bool = True,
    weight: int | None = None,
    tls_mode: str | None = None,
) -> Endpoint:
    labels = [("app", "inventory"), ("version", version)]
    if tls_mode:
        labels.append(("security.istio.io/tlsMode", tls_mode))
    return Endpoint(address, 8080, tuple(labels), "inventory", "production", ready, weight)


def mesh(export_to: frozenset[str] = frozenset({"*"})) -> MeshSnapshot:
    service = Service(
        hostname=HOST,
        namespace="production",
        name="inventory-service",
        ports=(ServicePort("http", 8080, Protocol.HTTP),),
        export_to=export_to,
    )
    rule = DestinationRule.model_validate(
        {
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "DestinationRule",
            "metadata": {"name": "inventory-service", "namespace": "production"},
            "spec": {
                "host": "inventory-service",
                "subsets": [
                    {"name": "v1", "labels": {"version": "v1"}},
                    {"name": "v2", "labels": {"version": "v2"}},
                ],
            },
        }
    )
    endpoints = (
        endpoint("10.44.0.9", "v2", weight=3),
        endpoint("10.44.0.7", "v1", tls_mode="istio"),
        endpoint("10.44.0.8", "v1", ready=False),
    )
    return MeshSnapshot(
        config=MeshConfig(),
        services=ServiceIndex({HOST: service}),
        endpoints=EndpointIndex({(HOST, 8080): endpoints}),
        destination_rules=(ConfigEntry("inventory-service", "production", rule, 1),),
    )


def addresses(assignment: ClusterLoadAssignment) -> list[tuple[str, int]]:
    return [
        (e.endpoint.address.socket_address.address, e.load_balancing_weight.value)
        for group in assignment.endpoints
        for e in group.lb_endpoints
    ]


def by_name(assignments: list[ClusterLoadAssignment]) -> dict[str, ClusterLoadAssignment]:
    return {a.cluster_name: a for a in assignments}


def test_default_cluster_has_every_ready_endpoint_sorted_with_weights() -> None:
    (assignment,) = generate_endpoints(mesh(), "production", [DEFAULT])
    assert assignment.cluster_name == DEFAULT
    assert addresses(assignment) == [("10.44.0.7", 1), ("10.44.0.9", 3)]
    (group,) = assignment.endpoints
    assert group.load_balancing_weight.value == 4
    assert all(e.health_status == 1 for e in group.lb_endpoints)  # HEALTHY


def test_subset_clusters_keep_endpoints_matching_the_subset_labels() -> None:
    found = by_name(generate_endpoints(mesh(), "shop", [V1, V2]))
    assert addresses(found[V1]) == [("10.44.0.7", 1)]  # 10.44.0.8 is not ready
    assert addresses(found[V2]) == [("10.44.0.9", 3)]


def test_tls_mode_label_becomes_transport_socket_match_metadata() -> None:
    (assignment,) = generate_endpoints(mesh(), "production", [V1])
    (lb_endpoint,) = assignment.endpoints[0].lb_endpoints
    match = lb_endpoint.metadata.filter_metadata["envoy.transport_socket_match"]
    assert match["tlsMode"] == "istio"


def test_an_assignment_even_when_nothing_is_there() -> None:
    unknown_subset = outbound_cluster_name(8080, "v3", HOST)
    unknown_host = outbound_cluster_name(8080, None, "nope.production.svc.cluster.local")
    unknown_port = outbound_cluster_name(9090, None, HOST)
    found = by_name(
        generate_endpoints(mesh(), "production", [unknown_subset, unknown_host, unknown_port])
    )
    assert set(found) == {unknown_subset, unknown_host, unknown_port}
    assert all(not a.endpoints for a in found.values())


def test_services_not_exported_to_the_namespace_have_no_endpoints() -> None:
    private = mesh(export_to=frozenset({"."}))
    (here,) = generate_endpoints(private, "production", [DEFAULT])
    (there,) = generate_endpoints(private, "shop", [DEFAULT])
    assert addresses(here) and not there.endpoints


def test_only_outbound_names_get_assignments() -> None:
    names = ["inbound|8080||", "BlackHoleCluster", DEFAULT, DEFAULT]
    assert [a.cluster_name for a in generate_endpoints(mesh(), "production", names)] == [DEFAULT]


def test_every_eds_cluster_gets_exactly_one_assignment() -> None:
    snapshot, proxy = mesh_from_yaml(
        """
apiVersion: v1
kind: Service
metadata: {name: inventory-service, namespace: production}
spec: {selector: {app: inventory}, ports: [{name: http, port: 8080}]}
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: external, namespace: production}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: inventory-service, namespace: production}
spec:
  host: inventory-service
  subsets: [{name: v1, labels: {version: v1}}]
"""
    )
    eds = eds_cluster_names(generate_clusters(snapshot, proxy))
    assert eds == [V1, DEFAULT]  # the DNS ServiceEntry carries its endpoints inline
    assert [a.cluster_name for a in generate_endpoints(snapshot, proxy.namespace, eds)] == eds
