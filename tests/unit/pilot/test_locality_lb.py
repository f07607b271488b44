"""DestinationRule loadBalancer `warmup` and `localityLbSetting` (and MeshConfig's), as
Istio translates them: slow start on the cluster; endpoint priorities and locality weights
per proxy place, computed the way Istio's loadbalancer package computes them (several
cases are those of its loadbalancer_test.go); and the caches keyed by that place."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from _build import mesh_from_yaml
from envoy.config.core.v3 import base_pb2

from isthmus.api.mesh_config import parse_mesh_config
from isthmus.api.networking import (
    LoadBalancerSettings,
    LocalityLoadBalancerSetting,
    TrafficPolicy,
)
from isthmus.model.locality_lb import LocalityLbSetting
from isthmus.model.snapshot import MeshConfig, MeshSnapshot
from isthmus.model.topology import Locality, pod_locality, proxy_locality
from isthmus.model.types import Endpoint, Proxy
from isthmus.pilot.envoy.cluster import Cluster, new_cluster
from isthmus.pilot.envoy.endpoint import ClusterLoadAssignment, LocalityLbEndpoints
from isthmus.pilot.envoy.load_balancer import apply_load_balancer
from isthmus.pilot.envoy.locality_lb import apply_locality_lb, locality_matches
from isthmus.pilot.generators.clusters import generate_clusters
from isthmus.pilot.generators.endpoints import generate_endpoints
from isthmus.pilot.locality_lb import ProxyPlace, effective_setting
from isthmus.pilot.naming import outbound_cluster_name
from isthmus.pilot.profile import ConfigGenerator
from isthmus.pilot.proxy import proxy_from_node
from isthmus.pilot.resources import CLUSTER, ENDPOINT, Layers, Snapshot
from isthmus.testing.validate import validate_snapshot

HOST = "reviews.production.svc.cluster.local"
PROXY = Locality("region1", "zone1", "subzone1")


def _lb(**fields: object) -> LoadBalancerSettings:
    return LoadBalancerSettings.model_validate(fields, by_alias=True)


def _eds(policy: LoadBalancerSettings | None = None, outlier: bool = False) -> Cluster:
    draft = new_cluster("c", Cluster.EDS)
    if outlier:
        draft.cluster.outlier_detection.consecutive_5xx.value = 3
    setting = effective_setting(MeshConfig(), TrafficPolicy(load_balancer=policy))
    apply_load_balancer(draft.cluster, policy, setting)
    return draft.cluster


# --- warmup ----------------------------------------------------------------------------


def test_warmup_is_slow_start_with_istio_defaults() -> None:
    cluster = _eds(_lb(simple="ROUND_ROBIN", warmup={"duration": "30s"}))
    config = cluster.round_robin_lb_config.slow_start_config
    assert config.slow_start_window.ToTimedelta() == timedelta(seconds=30)
    # Istio's setWarmup: aggression 1 (linear), minimum weight 10%, a runtime key no
    # runtime sets.
    assert (config.aggression.default_value, config.aggression.runtime_key) == (1.0, "(")
    assert config.min_weight_percent.value == 10.0


def test_warmup_as_written_on_least_request_and_the_default() -> None:
    for simple in ("LEAST_REQUEST", "LEAST_CONN", None):
        fields: dict[str, object] = {
            "warmup": {"duration": "2m", "minimumPercent": 0, "aggression": 1.5}
        }
        if simple:
            fields["simple"] = simple
        cluster = _eds(_lb(**fields))
        assert cluster.lb_policy == Cluster.LEAST_REQUEST
        config = cluster.least_request_lb_config.slow_start_config
        assert config.slow_start_window.ToTimedelta() == timedelta(minutes=2)
        assert config.aggression.default_value == 1.5
        assert config.HasField("min_weight_percent") and config.min_weight_percent.value == 0


def test_warmup_duration_secs_sets_the_window_only() -> None:
    cluster = _eds(_lb(simple="ROUND_ROBIN", warmupDurationSecs="15s"))
    config = cluster.round_robin_lb_config.slow_start_config
    assert config.slow_start_window.ToTimedelta() == timedelta(seconds=15)
    assert not config.HasField("aggression") and not config.HasField("min_weight_percent")


def test_no_warmup_no_lb_config() -> None:
    assert not _eds(_lb(simple="ROUND_ROBIN")).HasField("round_robin_lb_config")
    assert not _eds(None).HasField("least_request_lb_config")


# --- the cluster's locality config -----------------------------------------------------


def test_locality_weighted_lb_config_as_istio_sets_it() -> None:
    failover = {"localityLbSetting": {"failover": [{"from": "r1", "to": "r2"}]}}
    priority = {"localityLbSetting": {"failoverPriority": ["app"]}}
    distribute = {"localityLbSetting": {"distribute": [{"from": "r1/*", "to": {"r1/*": 100}}]}}

    def weighted(cluster: Cluster) -> bool:
        return cluster.common_lb_config.HasField("locality_weighted_lb_config")

    assert weighted(_eds(_lb(**failover), outlier=True))
    assert weighted(_eds(_lb(**priority), outlier=True))
    assert weighted(_eds(_lb(**distribute)))  # distribute needs no outlier detection
    assert not weighted(_eds(_lb(**failover)))  # failover without outlier detection
    assert not weighted(_eds(None, outlier=True))  # MeshConfig's default: enabled only
    off = {"localityLbSetting": {"enabled": False, "failoverPriority": ["app"]}}
    assert not weighted(_eds(_lb(**off), outlier=True))


def test_effective_setting_dr_over_mesh_and_disabled() -> None:
    rule = _lb(localityLbSetting={"failover": [{"from": "a", "to": "b"}]})
    mesh = MeshConfig()
    assert mesh.locality_lb_setting == LocalityLbSetting(enabled=True)  # Istio's default
    assert effective_setting(mesh, TrafficPolicy(load_balancer=rule)) == LocalityLbSetting(
        failover=(("a", "b"),)
    )
    assert effective_setting(mesh, None) == LocalityLbSetting(enabled=True)
    off = TrafficPolicy(load_balancer=_lb(localityLbSetting={"enabled": False}))
    assert effective_setting(mesh, off) is None  # the rule's `enabled: false` wins
    quiet = dataclasses.replace(mesh, locality_lb_setting=LocalityLbSetting(enabled=False))
    assert effective_setting(quiet, None) is None
    assert effective_setting(quiet, TrafficPolicy(load_balancer=rule)) is not None


# --- assignments, as Istio's loadbalancer_test.go builds them --------------------------


def _group(region: str, zone: str = "", subzone: str = "", *addresses: str) -> LocalityLbEndpoints:
    group = LocalityLbEndpoints()
    group.locality.region, group.locality.zone, group.locality.sub_zone = region, zone, subzone
    for address in addresses:
        endpoint = group.lb_endpoints.add()
        endpoint.endpoint.address.socket_address.address = address
        endpoint.load_balancing_weight.value = 1
    return group


def _istio_fake_cluster() -> ClusterLoadAssignment:
    """buildFakeCluster: groups without a weight of their own."""
    return ClusterLoadAssignment(
        cluster_name="c",
        endpoints=[
            _group("region1", "zone1", "subzone1"),
            _group("region1", "zone1", "subzone1"),
            _group("region1", "zone1", "subzone2"),
            _group("region1", "zone1", "subzone3"),
            _group("region1", "zone2"),
            _group("region2"),
            _group("region3"),
        ],
    )


def test_distribute_between_subzones() -> None:
    assignment = _istio_fake_cluster()
    setting = LocalityLbSetting(
        distribute=(
            (
                "region1/zone1/subzone1",
                (
                    ("region1/zone1/subzone1", 80),
                    ("region1/zone1/subzone2", 15),
                    ("region1/zone1/subzone3", 5),
                ),
            ),
        )
    )
    apply_locality_lb(assignment, [[]] * 7, setting, True, PROXY, {})
    weights = [g.load_balancing_weight.value for g in assignment.endpoints]
    assert weights == [40, 40, 15, 5, 0, 0, 0]


def test_distribute_applies_only_the_first_matching_from_and_empties_the_rest() -> None:
    assignment = ClusterLoadAssignment(
        endpoints=[
            _group("region1", "zone1", "", "10.0.0.1"),
            _group("region1", "zone2", "", "10.0.0.2", "10.0.0.3"),
            _group("region2", "zone9", "", "10.0.0.4"),
        ]
    )
    for group in assignment.endpoints:
        group.load_balancing_weight.value = len(group.lb_endpoints)
    setting = LocalityLbSetting(
        distribute=(
            ("region9/*", (("region2/*", 100),)),
            ("region1/zone1/*", (("region1/*", 100),)),
            ("region1/*", (("region2/*", 100),)),
        )
    )
    apply_locality_lb(assignment, [[]] * 3, setting, False, Locality("region1", "zone1"), {})
    # region1/* matches two groups of weights 1 and 2: 100 is shared 1:2, rounded up.
    weights = [g.load_balancing_weight.value for g in assignment.endpoints]
    assert weights == [34, 67, 1]
    assert [len(g.lb_endpoints) for g in assignment.endpoints] == [1, 2, 0]


def _failover_setting() -> LocalityLbSetting:
    return LocalityLbSetting(failover=(("region1", "region2"),))


def test_failover_all_priorities() -> None:
    assignment = _istio_fake_cluster()
    apply_locality_lb(assignment, [[]] * 7, _failover_setting(), True, PROXY, {})
    assert [g.priority for g in assignment.endpoints] == [0, 0, 1, 1, 2, 3, 4]


def test_failover_priorities_without_gaps_and_unknown_localities() -> None:
    assignment = ClusterLoadAssignment(
        endpoints=[LocalityLbEndpoints(), _group("region1", "zone1", "subzone2"), _group("region2")]
    )
    apply_locality_lb(assignment, [[]] * 3, _failover_setting(), True, PROXY, {})
    # Istio's "priorities with some nil localities": unknown is another region (4 -> 2).
    assert [g.priority for g in assignment.endpoints] == [2, 0, 1]


def test_failover_needs_outlier_detection_distribute_does_not() -> None:
    assignment = _istio_fake_cluster()
    apply_locality_lb(assignment, [[]] * 7, _failover_setting(), False, PROXY, {})
    assert {g.priority for g in assignment.endpoints} == {0}


def _endpoint(address: str, **labels: str) -> Endpoint:
    return Endpoint(address, 80, tuple(sorted(labels.items())), "sa", "ns")


def test_failover_priority_match_network_label() -> None:
    """Istio's "match network label" case: a differing network only lowers priority."""
    net, cluster = "topology.istio.io/network", "topology.istio.io/cluster"
    groups = [
        [
            _endpoint("1.1.1.1", **{net: "n1", cluster: "c1"}),
            _endpoint("2.2.2.2", key="value", **{net: "n2", cluster: "c2"}),
        ],
        [
            _endpoint("3.3.3.3", key="value", **{net: "n1", cluster: "c3"}),
            _endpoint("4.4.4.4", key="value", **{net: "n2", cluster: "c4"}),
        ],
    ]
    assignment = ClusterLoadAssignment(
        endpoints=[
            _group("region1", "zone1", "subzone1", "1.1.1.1", "2.2.2.2"),
            _group("region2", "zone2", "subzone2", "3.3.3.3", "4.4.4.4"),
        ]
    )
    setting = LocalityLbSetting(failover_priority=(net, cluster))
    apply_locality_lb(assignment, groups, setting, True, PROXY, {net: "n1", cluster: "test"})
    found = [
        (
            g.locality.region,
            [e.endpoint.address.socket_address.address for e in g.lb_endpoints],
            g.priority,
            g.load_balancing_weight.value,
        )
        for g in assignment.endpoints
    ]
    assert found == [
        ("region1", ["1.1.1.1"], 0, 1),
        ("region1", ["2.2.2.2"], 1, 1),
        ("region2", ["3.3.3.3"], 0, 1),
        ("region2", ["4.4.4.4"], 1, 1),
    ]


def test_failover_priority_override_value_then_failover() -> None:
    groups = [[_endpoint("1.1.1.1", key="a")], [_endpoint("2.2.2.2", key="b")]]
    assignment = ClusterLoadAssignment(
        endpoints=[_group("region3", "", "", "1.1.1.1"), _group("region2", "", "", "2.2.2.2")]
    )
    # `key=b`: compare endpoints with b, not with the proxy's label; then region failover
    # on top (priority * 5 + distance, compacted).
    setting = LocalityLbSetting(failover=(("region1", "region2"),), failover_priority=("key=b",))
    apply_locality_lb(assignment, groups, setting, True, PROXY, {"key": "a"})
    assert [(g.locality.region, g.priority) for g in assignment.endpoints] == [
        ("region3", 1),
        ("region2", 0),
    ]


def test_locality_match_is_istios() -> None:
    here = Locality("r", "z", "s")
    assert locality_matches(here, "r")
    assert locality_matches(here, "r/*")
    assert locality_matches(here, "*")
    assert locality_matches(here, "r/z/s")
    assert not locality_matches(here, "r/y")
    assert not locality_matches(base_pb2.Locality(), "r/*")


# --- where a proxy is ------------------------------------------------------------------


def test_pod_and_proxy_locality() -> None:
    assert pod_locality({"istio-locality": "us.east.a"}) == Locality("us", "east", "a")
    topology = {"topology.kubernetes.io/region": "us", "topology.kubernetes.io/zone": "b"}
    assert pod_locality(topology) == Locality("us", "b")
    # The locality label wins over the (node's, here the pod's) topology labels.
    assert pod_locality({**topology, "topology.istio.io/locality": "eu.west"}) == Locality(
        "eu", "west"
    )
    assert proxy_locality({}, Locality("node", "zone")) == Locality("node", "zone")
    assert proxy_locality(topology, Locality("node", "zone")) == Locality("us", "b")


def test_proxy_from_node_reads_locality_from_labels_then_node() -> None:
    node = base_pb2.Node(id="sidecar~10.44.0.9~p.ns~ns.svc.cluster.local")
    node.locality.region, node.locality.zone = "r-node", "z-node"
    assert proxy_from_node(node).locality == Locality("r-node", "z-node")
    node.metadata.update({"LABELS": {"istio-locality": "r1.z1"}})
    assert proxy_from_node(node).locality == Locality("r1", "z1")


# --- through the generators and the shared caches --------------------------------------

MESH = """\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: production}
spec:
  clusterIP: 10.96.0.40
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-a, namespace: production}
spec: {address: 10.44.3.1, locality: r1/zone-a, labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-b, namespace: production}
spec: {address: 10.44.3.2, locality: r1/zone-b, labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy, namespace: production}
spec:
  hosts: [db.example.com]
  resolution: DNS
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints:
  - {address: db-a.example.com, locality: r1/zone-a}
  - {address: db-b.example.com, locality: r1/zone-b}
"""
RULES = """\
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: production}
spec:
  host: reviews
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: legacy, namespace: production}
spec:
  host: db.example.com
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 1}}
"""
DNS = "outbound|5432||db.example.com"
EDS = outbound_cluster_name(9080, None, HOST)


def _proxy(zone: str, pod: str) -> Proxy:
    return Proxy(
        id=f"sidecar~10.44.0.9~{pod}.production~production.svc.cluster.local",
        namespace="production",
        labels=(("app", "productpage"),),
        locality=Locality("r1", zone),
    )


def _first(assignment: ClusterLoadAssignment) -> str:
    (group,) = [g for g in assignment.endpoints if g.priority == 0]
    return group.locality.zone


def _assignment(snapshot: Snapshot) -> ClusterLoadAssignment:
    found = ClusterLoadAssignment()
    snapshot.of_type(ENDPOINT)[EDS].any.Unpack(found)
    return found


def _dns(snapshot: Snapshot) -> Cluster:
    found = Cluster()
    snapshot.of_type(CLUSTER)[DNS].any.Unpack(found)
    return found


def _mesh(text: str) -> MeshSnapshot:
    return mesh_from_yaml(text)[0]


def test_generators_rank_by_the_proxys_zone() -> None:
    mesh = _mesh(MESH + RULES)
    for zone in ("zone-a", "zone-b"):
        place = ProxyPlace.of(_proxy(zone, "p"))
        (assignment,) = generate_endpoints(mesh, "production", [EDS], place=place)
        assert _first(assignment) == zone
        (dns,) = [c for c in generate_clusters(mesh, _proxy(zone, "p")) if c.name == DNS]
        assert _first(dns.load_assignment) == zone


def test_proxies_in_two_zones_never_share_assignments_or_dns_clusters() -> None:
    """One generator, two proxies alike but for their zone (same namespace, Sidecar scope
    and labels): each gets endpoints ranked from its own zone; proxies in one zone share."""
    generator = ConfigGenerator()
    mesh = _mesh(MESH + RULES)
    a, b, a2 = _proxy("zone-a", "p1"), _proxy("zone-b", "p2"), _proxy("zone-a", "p3")
    snapshots = {p.id: generator.snapshot(mesh, p) for p in (a, b, a2)}
    for proxy, zone in ((a, "zone-a"), (b, "zone-b"), (a2, "zone-a")):
        snapshot = snapshots[proxy.id]
        assert _first(_assignment(snapshot)) == zone
        assert _first(_dns(snapshot).load_assignment) == zone
        validate_snapshot(snapshot)
    assert snapshots[a.id].of_type(ENDPOINT)[EDS] is snapshots[a2.id].of_type(ENDPOINT)[EDS]
    assert snapshots[a.id].of_type(ENDPOINT)[EDS] is not snapshots[b.id].of_type(ENDPOINT)[EDS]


def test_without_locality_load_balancing_zones_share_everything() -> None:
    """No outlier detection: Istio's default locality setting changes nothing, so the
    endpoint view is not split by zone."""
    generator = ConfigGenerator()
    mesh = _mesh(MESH)
    a = generator.snapshot(mesh, _proxy("zone-a", "p1"))
    b = generator.snapshot(mesh, _proxy("zone-b", "p2"))
    for type_url in (CLUSTER, ENDPOINT):
        layers_a, layers_b = a.of_type(type_url), b.of_type(type_url)
        assert isinstance(layers_a, Layers) and isinstance(layers_b, Layers)
        assert all(x is y for x, y in zip(layers_a.layers, layers_b.layers, strict=True))


def test_a_rule_change_reaches_proxies_in_both_zones() -> None:
    generator = ConfigGenerator()
    a, b = _proxy("zone-a", "p1"), _proxy("zone-b", "p2")
    for text in (MESH, MESH + RULES, MESH):
        mesh = _mesh(text)
        fresh = ConfigGenerator()
        for proxy in (a, b):
            old = generator.snapshot(mesh, proxy)
            new = fresh.snapshot(mesh, proxy)
            for type_url in (CLUSTER, ENDPOINT):
                assert {n: r.version for n, r in old.of_type(type_url).items()} == {
                    n: r.version for n, r in new.of_type(type_url).items()
                }


def test_mesh_config_locality_setting_from_file() -> None:
    file = parse_mesh_config("localityLbSetting: {failover: [{from: r1, to: r2}]}\n", "mesh.yaml")
    config = MeshConfig().with_file(file)
    assert config.locality_lb_setting == LocalityLbSetting(failover=(("r1", "r2"),))
    assert LocalityLbSetting.of(LocalityLoadBalancerSetting()) == LocalityLbSetting()
