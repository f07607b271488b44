"""WorkloadEntry (and ServiceEntry endpoint) `locality` and `network`, as Istio reads them:
EDS groups endpoints by locality; topology labels let subsets select by them; an entry
with a network and no address (reached only through a network gateway, which isthmus does
not have) gets no traffic, as in Istio without multi-network gateways."""

from __future__ import annotations

from _build import mesh_from_yaml

from isthmus.api.loader import load_documents
from isthmus.model.pods import PodView
from isthmus.model.topology import Locality
from isthmus.pilot.envoy.endpoint import ClusterLoadAssignment
from isthmus.pilot.generators.endpoints import generate_endpoints
from isthmus.pilot.naming import outbound_cluster_name
from isthmus.pilot.profile import ConfigGenerator
from isthmus.testing.validate import validate_snapshot

HOST = "payments.production.svc.cluster.local"
CONFIG = """\
apiVersion: v1
kind: Service
metadata: {name: payments, namespace: production}
spec:
  clusterIP: 10.96.0.40
  selector: {app: payments}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-east, namespace: production}
spec:
  address: 10.50.0.1
  labels: {app: payments}
  locality: us-east1/us-east1-b
  network: vm-network
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-west, namespace: production}
spec:
  address: 10.50.0.2
  labels: {app: payments, istio-locality: us-west1.us-west1-a.rack7}
  weight: 3
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-remote, namespace: production}
spec:
  network: remote-network
  labels: {app: payments}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payments, namespace: production}
spec:
  host: payments
  subsets:
  - {name: vm-network, labels: {topology.istio.io/network: vm-network}}
  - {name: west, labels: {topology.kubernetes.io/region: us-west1}}
"""


def _groups(assignment: ClusterLoadAssignment) -> list[tuple[str, list[str], int]]:
    return [
        (
            "/".join(p for p in (g.locality.region, g.locality.zone, g.locality.sub_zone) if p),
            [e.endpoint.address.socket_address.address for e in g.lb_endpoints],
            g.load_balancing_weight.value,
        )
        for g in assignment.endpoints
    ]


def _assignments() -> dict[str, ClusterLoadAssignment]:
    mesh, _ = mesh_from_yaml(CONFIG)
    names = [outbound_cluster_name(8080, subset, HOST) for subset in ("", "vm-network", "west")]
    return {a.cluster_name: a for a in generate_endpoints(mesh, "production", names)}


def test_the_config_is_valid_istio_yaml_including_an_entry_without_address() -> None:
    assert len(load_documents(CONFIG, "payments.yaml")) == 5


def test_endpoints_are_grouped_by_locality_and_the_addressless_entry_is_left_out() -> None:
    found = _assignments()

    assert _groups(found[outbound_cluster_name(8080, "", HOST)]) == [
        ("us-east1/us-east1-b", ["10.50.0.1"], 1),
        ("us-west1/us-west1-a/rack7", ["10.50.0.2"], 3),
    ]


def test_subsets_select_by_the_topology_labels_istio_adds() -> None:
    found = _assignments()

    assert _groups(found[outbound_cluster_name(8080, "vm-network", HOST)]) == [
        ("us-east1/us-east1-b", ["10.50.0.1"], 1)
    ]
    assert _groups(found[outbound_cluster_name(8080, "west", HOST)]) == [
        ("us-west1/us-west1-a/rack7", ["10.50.0.2"], 3)
    ]


def test_a_pod_takes_its_locality_from_the_istio_locality_label() -> None:
    labels = {"app": "payments", "istio-locality": "eu-west1.eu-west1-c"}
    pod = PodView(
        name="payments-1",
        namespace="production",
        node="local",
        deployment="payments",
        labels=labels,
        annotations={},
        service_account="payments",
        ip="10.44.0.5",
        phase="Running",
        ready=True,
        ready_since="",
        start_time="",
        containers=(),
        named_ports=(),
        deleting=False,
    )

    workload = pod.workload()

    assert workload.locality == Locality("eu-west1", "eu-west1-c")
    assert ("topology.kubernetes.io/zone", "eu-west1-c") in workload.labels


def test_envoy_accepts_the_localities() -> None:
    mesh, proxy = mesh_from_yaml(CONFIG)

    snapshot = ConfigGenerator().snapshot(mesh, proxy)

    assert snapshot.consistency_errors() == []
    validate_snapshot(snapshot)
