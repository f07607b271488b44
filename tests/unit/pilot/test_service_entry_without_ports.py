"""A ServiceEntry without ports (Istio requires only `hosts`): accepted, and as in Istio it
gets no listener, cluster or route, so its traffic is traffic to an unknown destination."""

from __future__ import annotations

from _build import mesh_from_yaml

from isthmus.api.loader import load_documents
from isthmus.pilot.profile import ConfigGenerator
from isthmus.pilot.resources import CLUSTER, LISTENER, ROUTE
from isthmus.testing.validate import validate_snapshot

CONFIG = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-api, namespace: production}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: database, namespace: production}
spec:
  hosts: [db.internal]
  addresses: [10.5.0.9]
  resolution: STATIC
  endpoints: [{address: 10.5.0.10}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: external-api, namespace: production}
spec:
  hosts: [api.example.com]
  http:
  - timeout: 3s
    route: [{destination: {host: api.example.com}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: external-api, namespace: production}
spec:
  host: api.example.com
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 3}}}
---
apiVersion: v1
kind: Service
metadata: {name: inventory, namespace: production}
spec:
  clusterIP: 10.96.0.12
  selector: {app: inventory}
  ports: [{name: http, port: 8080}]
"""


def test_service_entries_without_ports_are_accepted() -> None:
    loaded = load_documents(CONFIG, "entries.yaml")

    assert [obj.key[2] for obj in loaded] == [
        "external-api",
        "database",
        "external-api",
        "external-api",
        "inventory",
    ]


def test_they_get_no_listener_cluster_or_route_and_envoy_accepts_the_rest() -> None:
    mesh, proxy = mesh_from_yaml(CONFIG)

    snapshot = ConfigGenerator().snapshot(mesh, proxy)

    clusters = sorted(snapshot.of_type(CLUSTER))
    assert not [name for name in clusters if "example.com" in name or "db.internal" in name]
    assert "outbound|8080||inventory.production.svc.cluster.local" in clusters
    assert "0.0.0.0_8080" in snapshot.of_type(LISTENER)
    assert all("example.com" not in name for name in snapshot.of_type(ROUTE))
    assert snapshot.consistency_errors() == []
    validate_snapshot(snapshot)
