"""ConfigGenerator: one view per namespace (and labels, where routes depend on them), built
and serialized once and handed out as the same objects; a new mesh version rebuilds only
the views whose inputs changed. The snapshot consistency check refuses a listener whose
route config is missing."""

from __future__ import annotations

from dataclasses import replace

from _build import mesh_from_yaml

from isthmus.model.snapshot import MeshSnapshot
from isthmus.model.types import Proxy
from isthmus.pilot.profile import ConfigGenerator
from isthmus.pilot.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot

MESH = """
apiVersion: v1
kind: Service
metadata: {name: inventory-service, namespace: production}
spec:
  clusterIP: 10.96.0.12
  selector: {app: inventory}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1beta1
kind: WorkloadEntry
metadata: {name: inventory-v1, namespace: production}
spec: {address: 10.44.0.7, labels: {app: inventory, version: v1}}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: inventory-service, namespace: production}
spec:
  host: inventory-service
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: inventory-service, namespace: production}
spec:
  hosts: [inventory-service]
  http:
  - name: all
    timeout: TIMEOUT
    route: [{destination: {host: inventory-service, subset: v1}}]
"""

SOURCE_LABELS = """
---
apiVersion: v1
kind: Service
metadata: {name: pricing, namespace: production}
spec:
  clusterIP: 10.96.0.13
  selector: {app: pricing}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: pricing, namespace: production}
spec:
  hosts: [pricing]
  http:
  - name: beta
    match: [{sourceLabels: {track: beta}}]
    route: [{destination: {host: pricing}}]
"""


def _mesh(timeout: str = "3s", extra: str = "") -> tuple[MeshSnapshot, Proxy]:
    return mesh_from_yaml(MESH.replace("TIMEOUT", timeout) + extra)


def _client(proxy: Proxy, pod: str, ip: str, **changes: object) -> Proxy:
    node_id = f"sidecar~{ip}~{pod}.{proxy.namespace}~{proxy.namespace}.svc.cluster.local"
    return replace(proxy, id=node_id, ip=ip, **changes)  # type: ignore[arg-type]


def _same_objects(a: Snapshot, b: Snapshot, type_url: str) -> bool:
    left, right = a.of_type(type_url), b.of_type(type_url)
    return left.keys() == right.keys() and all(left[n] is right[n] for n in left)


def test_proxies_of_one_namespace_share_every_prepared_resource() -> None:
    mesh, proxy = _mesh()
    generator = ConfigGenerator()
    first = generator.snapshot(mesh, _client(proxy, "order-1", "10.44.0.21"))
    second = generator.snapshot(mesh, _client(proxy, "order-2", "10.44.0.22"))
    assert first.of_type(CLUSTER) and first.of_type(ROUTE)
    for type_url in (CLUSTER, ENDPOINT, LISTENER, ROUTE):
        assert _same_objects(first, second, type_url), type_url
        assert first.version(type_url) == second.version(type_url)


def test_other_namespace_other_view() -> None:
    mesh, proxy = _mesh()
    generator = ConfigGenerator()
    production = generator.snapshot(mesh, proxy)
    shop = generator.snapshot(mesh, _client(proxy, "cart", "10.44.0.30", namespace="shop"))
    name = "outbound|8080||inventory-service.production.svc.cluster.local"
    assert production.of_type(CLUSTER)[name] is not shop.of_type(CLUSTER)[name]
    # Domains differ: only a proxy of production may say plain "inventory-service".
    assert production.of_type(ROUTE)["8080"].version != shop.of_type(ROUTE)["8080"].version


def test_labels_split_route_views_only_where_source_labels_are_used() -> None:
    mesh, proxy = _mesh(extra=SOURCE_LABELS)
    generator = ConfigGenerator()
    beta = generator.snapshot(mesh, _client(proxy, "a", "10.44.0.21", labels=(("track", "beta"),)))
    stable = generator.snapshot(mesh, _client(proxy, "b", "10.44.0.22", labels=(("x", "y"),)))
    assert beta.of_type(ROUTE)["8080"].version != stable.of_type(ROUTE)["8080"].version
    assert _same_objects(beta, stable, CLUSTER)

    plain_mesh, _ = _mesh()
    plain = ConfigGenerator()
    one = plain.snapshot(plain_mesh, _client(proxy, "a", "10.44.0.21", labels=(("track", "x"),)))
    two = plain.snapshot(plain_mesh, _client(proxy, "b", "10.44.0.22", labels=(("track", "y"),)))
    assert _same_objects(one, two, ROUTE)


def test_a_virtual_service_change_rebuilds_routes_only() -> None:
    mesh, proxy = _mesh("3s")
    generator = ConfigGenerator()
    before = generator.snapshot(mesh, proxy)

    rebuilt, _ = _mesh("3s")
    assert rebuilt is not mesh and rebuilt.version == mesh.version
    again = generator.snapshot(rebuilt, proxy)
    assert again is before

    changed, _ = _mesh("5s")
    assert changed.version != mesh.version
    after = generator.snapshot(changed, proxy)
    assert after.of_type(ROUTE)["8080"].version != before.of_type(ROUTE)["8080"].version
    # Clusters and endpoint assignments did not read VirtualServices: the same objects.
    for type_url in (CLUSTER, ENDPOINT):
        assert _same_objects(before, after, type_url), type_url
    assert after == ConfigGenerator().snapshot(changed, proxy)


def test_an_endpoint_change_rebuilds_endpoint_assignments_only() -> None:
    mesh, proxy = _mesh()
    generator = ConfigGenerator()
    before = generator.snapshot(mesh, proxy)
    more = """
---
apiVersion: networking.istio.io/v1beta1
kind: WorkloadEntry
metadata: {name: inventory-v1b, namespace: production}
spec: {address: 10.44.0.8, labels: {app: inventory, version: v1}}
"""
    scaled, _ = _mesh(extra=more)
    assert scaled.input_versions["endpoints"] != mesh.input_versions["endpoints"]
    assert scaled.input_versions["endpoint_facts"] == mesh.input_versions["endpoint_facts"]
    builds = generator.views.stats.builds
    after = generator.snapshot(scaled, proxy)
    assert after.of_type(ENDPOINT) != before.of_type(ENDPOINT)
    for type_url in (CLUSTER, LISTENER, ROUTE):
        assert _same_objects(before, after, type_url), type_url
    # The proxy's snapshot, its namespace's endpoint assignments and which EDS clusters
    # lack one; nothing else.
    assert generator.views.stats.builds - builds == 3
    assert after == ConfigGenerator().snapshot(scaled, proxy)


def test_explicit_proxy_listener_and_its_route_only_when_asked() -> None:
    mesh, proxy = _mesh()
    generator = ConfigGenerator()
    without = generator.snapshot(mesh, proxy)
    with_port = generator.snapshot(mesh, replace(proxy, http_proxy_port=15080))
    assert "127.0.0.1_15080" not in without.of_type(LISTENER)
    assert "http_proxy" not in without.of_type(ROUTE)
    assert "127.0.0.1_15080" in with_port.of_type(LISTENER)
    assert "http_proxy" in with_port.of_type(ROUTE)
    assert with_port.of_type(ROUTE)["8080"] is without.of_type(ROUTE)["8080"]


def test_consistent_snapshot_has_no_errors() -> None:
    mesh, proxy = _mesh()
    snapshot = ConfigGenerator().snapshot(mesh, proxy)
    assert snapshot.consistency_errors() == []


def test_consistency_check_catches_a_missing_route_config() -> None:
    mesh, proxy = _mesh()
    snapshot = ConfigGenerator().snapshot(mesh, proxy)
    routes = {n: r for n, r in snapshot.of_type(ROUTE).items() if n != "8080"}
    broken = Snapshot(resources={**snapshot.resources, ROUTE: routes})
    assert broken.consistency_errors() == [
        "listener 0.0.0.0_8080 uses route config '8080', which is missing"
    ]


def test_consistency_check_catches_a_missing_assignment() -> None:
    mesh, proxy = _mesh()
    snapshot = ConfigGenerator().snapshot(mesh, proxy)
    name = "outbound|8080|v1|inventory-service.production.svc.cluster.local"
    assignments = {n: r for n, r in snapshot.of_type(ENDPOINT).items() if n != name}
    broken = Snapshot(resources={**snapshot.resources, ENDPOINT: assignments})
    assert broken.consistency_errors() == [f"EDS cluster {name} has no ClusterLoadAssignment"]
