"""Single-aspect cluster builders: names, load balancer, hash policy, pool, outlier."""

from __future__ import annotations

from datetime import timedelta

import pytest
from _build import mesh_from_yaml

from isthmus.api.networking import (
    ConnectionPoolSettings,
    ConsistentHashLB,
    HTTPCookie,
    LoadBalancerSettings,
    OutlierDetection,
    SimpleLB,
)
from isthmus.model.types import Endpoint
from isthmus.pilot.envoy.cluster import (
    HTTP_PROTOCOL_OPTIONS,
    Cluster,
    HttpProtocolOptions,
    apply_dns_resolution,
    new_cluster,
    set_load_assignment,
)
from isthmus.pilot.envoy.connection_pool import UNLIMITED, apply_connection_pool
from isthmus.pilot.envoy.endpoint import locality_lb_endpoints
from isthmus.pilot.envoy.load_balancer import apply_load_balancer, hash_policy_for
from isthmus.pilot.envoy.outlier import apply_outlier_detection
from isthmus.pilot.generators.clusters import eds_cluster_names, generate_clusters
from isthmus.pilot.naming import (
    ClusterKey,
    TrafficDirection,
    inbound_cluster_name,
    outbound_cluster_name,
    parse_cluster_name,
)

HOST = "inventory-service.production.svc.cluster.local"


# --- names -------------------------------------------------------------------------


def test_cluster_names_as_istio_spells_them() -> None:
    assert outbound_cluster_name(8080, "v1", HOST) == f"outbound|8080|v1|{HOST}"
    assert outbound_cluster_name(8080, None, HOST) == f"outbound|8080||{HOST}"
    assert outbound_cluster_name(8080, "", HOST) == f"outbound|8080||{HOST}"
    assert inbound_cluster_name(8080) == "inbound|8080||"


def test_cluster_names_parse_back() -> None:
    assert parse_cluster_name(f"outbound|8080|v1|{HOST}") == ClusterKey(
        TrafficDirection.OUTBOUND, 8080, "v1", HOST
    )
    assert parse_cluster_name("inbound|8080||") == ClusterKey(
        TrafficDirection.INBOUND, 8080, "", ""
    )


@pytest.mark.parametrize(
    "name",
    ["BlackHoleCluster", "PassthroughCluster", "outbound|http|v1|h", "sideways|80||h", "a|b"],
)
def test_other_names_do_not_parse(name: str) -> None:
    assert parse_cluster_name(name) is None


# --- load balancer -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("simple", "expected"),
    [
        (None, Cluster.LEAST_REQUEST),
        (SimpleLB.UNSPECIFIED, Cluster.LEAST_REQUEST),
        (SimpleLB.LEAST_CONN, Cluster.LEAST_REQUEST),
        (SimpleLB.LEAST_REQUEST, Cluster.LEAST_REQUEST),
        (SimpleLB.ROUND_ROBIN, Cluster.ROUND_ROBIN),
        (SimpleLB.RANDOM, Cluster.RANDOM),
    ],
)
def test_simple_load_balancers(simple: SimpleLB | None, expected: int) -> None:
    cluster = Cluster(name="c", type=Cluster.EDS)
    apply_load_balancer(cluster, LoadBalancerSettings(simple=simple))
    assert cluster.lb_policy == expected


def test_passthrough_turns_a_dns_cluster_into_original_destination() -> None:
    draft = new_cluster("c", Cluster.STRICT_DNS)
    apply_dns_resolution(draft.cluster)
    endpoint = Endpoint("db.example.com", 5432, (), "", "production")
    set_load_assignment(draft.cluster, locality_lb_endpoints([endpoint]))
    apply_load_balancer(draft.cluster, LoadBalancerSettings(simple=SimpleLB.PASSTHROUGH))
    assert draft.cluster.type == Cluster.ORIGINAL_DST
    assert draft.cluster.lb_policy == Cluster.CLUSTER_PROVIDED
    assert not draft.cluster.HasField("load_assignment")


def test_original_destination_clusters_keep_the_cluster_provided_policy() -> None:
    cluster = Cluster(name="c", type=Cluster.ORIGINAL_DST)
    apply_load_balancer(cluster, LoadBalancerSettings(simple=SimpleLB.RANDOM))
    assert cluster.lb_policy == Cluster.CLUSTER_PROVIDED


def test_consistent_hash_is_a_ring_hash() -> None:
    cluster = Cluster(name="c", type=Cluster.EDS)
    lb = LoadBalancerSettings(consistent_hash=ConsistentHashLB(http_header_name="x-user"))
    apply_load_balancer(cluster, lb)
    assert cluster.lb_policy == Cluster.RING_HASH
    assert cluster.ring_hash_lb_config.minimum_ring_size.value == 1024


def test_hash_policies_for_each_hash_key() -> None:
    (header,) = hash_policy_for(ConsistentHashLB(http_header_name="x-user"))
    assert header.header.header_name == "x-user"

    cookie_lb = ConsistentHashLB(
        http_cookie=HTTPCookie(name="session", path="/", ttl=timedelta(seconds=60))
    )
    (cookie,) = hash_policy_for(cookie_lb)
    assert (cookie.cookie.name, cookie.cookie.path) == ("session", "/")
    assert cookie.cookie.ttl.seconds == 60

    (source,) = hash_policy_for(ConsistentHashLB(use_source_ip=True))
    assert source.connection_properties.source_ip is True

    (query,) = hash_policy_for(ConsistentHashLB(http_query_parameter_name="user"))
    assert query.query_parameter.name == "user"


def test_no_hash_key_no_hash_policy() -> None:
    assert hash_policy_for(None) == []
    assert hash_policy_for(ConsistentHashLB(minimum_ring_size=64)) == []


# --- connection pool -----------------------------------------------------------------


def test_thresholds_are_unlimited_unless_configured() -> None:
    draft = new_cluster("c", Cluster.EDS)
    apply_connection_pool(draft, None, timedelta(seconds=10))
    (thresholds,) = draft.cluster.circuit_breakers.thresholds
    for field in ("max_connections", "max_pending_requests", "max_requests", "max_retries"):
        assert getattr(thresholds, field).value == UNLIMITED == 2**32 - 1
    assert thresholds.track_remaining
    assert draft.cluster.connect_timeout.seconds == 10
    assert draft.http_options is None


def test_connection_pool_maps_to_thresholds_timeouts_and_http_options() -> None:
    pool = ConnectionPoolSettings.model_validate(
        {
            "tcp": {"maxConnections": 100, "connectTimeout": "250ms", "idleTimeout": "5m"},
            "http": {
                "http1MaxPendingRequests": 50,
                "http2MaxRequests": 1000,
                "maxRequestsPerConnection": 10,
                "maxRetries": 0,
            },
        }
    )
    draft = new_cluster("c", Cluster.EDS)
    apply_connection_pool(draft, pool, timedelta(seconds=10))
    (thresholds,) = draft.cluster.circuit_breakers.thresholds
    assert thresholds.max_connections.value == 100
    assert thresholds.max_pending_requests.value == 50
    assert thresholds.max_requests.value == 1000
    assert thresholds.max_retries.value == UNLIMITED  # 0 counts as unset, as in Istio
    assert draft.cluster.connect_timeout.ToTimedelta() == timedelta(milliseconds=250)
    assert draft.http_options is not None
    common = draft.http_options.common_http_protocol_options
    assert common.max_requests_per_connection.value == 10
    assert common.idle_timeout.ToTimedelta() == timedelta(minutes=5)  # from tcp, http has none


@pytest.mark.parametrize(
    ("protocol", "limited"),
    [
        ("grpc", "explicit_http_config"),  # HTTP/2 upstream
        ("", "use_downstream_protocol_config"),  # sniffed: the client's protocol
        ("http", None),  # HTTP/1 upstream: nothing to limit, as in Istio
    ],
)
def test_max_concurrent_streams_limits_http2_upstream_connections(
    protocol: str, limited: str | None
) -> None:
    name = f"{protocol}-api" if protocol else "api"
    mesh, proxy = mesh_from_yaml(f"""
apiVersion: v1
kind: Service
metadata: {{name: inventory-service, namespace: production}}
spec:
  clusterIP: 10.96.0.12
  ports: [{{name: {name}, port: 8080}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: inventory, namespace: production}}
spec:
  host: inventory-service
  trafficPolicy: {{connectionPool: {{http: {{maxConcurrentStreams: 7}}}}}}
""")
    (cluster,) = [c for c in generate_clusters(mesh, proxy) if c.name.endswith(HOST)]

    options = HttpProtocolOptions()
    cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].Unpack(options)
    for config_name in ("explicit_http_config", "use_downstream_protocol_config"):
        config = getattr(options, config_name)
        limit = config.http2_protocol_options.max_concurrent_streams
        assert limit.value == (7 if config_name == limited else 0)
        assert config.http2_protocol_options.HasField("max_concurrent_streams") == (
            config_name == limited
        )


# --- outlier detection ---------------------------------------------------------------


def test_outlier_detection_mapping() -> None:
    cluster = new_cluster("c", Cluster.EDS).cluster
    settings = OutlierDetection.model_validate(
        {
            "consecutive5xxErrors": 5,
            "interval": "10s",
            "baseEjectionTime": "30s",
            "maxEjectionPercent": 50,
        }
    )
    apply_outlier_detection(cluster, settings)
    out = cluster.outlier_detection
    assert (out.consecutive_5xx.value, out.enforcing_consecutive_5xx.value) == (5, 100)
    assert out.HasField("enforcing_success_rate") and out.enforcing_success_rate.value == 0
    assert not out.HasField("consecutive_gateway_failure")
    assert out.interval.seconds == 10 and out.base_ejection_time.seconds == 30
    assert out.max_ejection_percent.value == 50
    # Panic threshold set explicitly to 0, not left at Envoy's 50%.
    assert cluster.common_lb_config.HasField("healthy_panic_threshold")
    assert cluster.common_lb_config.healthy_panic_threshold.value == 0


def test_deprecated_consecutive_errors_is_ignored() -> None:
    cluster = new_cluster("c", Cluster.EDS).cluster
    apply_outlier_detection(cluster, OutlierDetection(consecutive_errors=7))
    out = cluster.outlier_detection
    assert not out.HasField("consecutive_5xx")
    assert not out.HasField("consecutive_gateway_failure")


def test_no_outlier_detection_leaves_the_panic_threshold_alone() -> None:
    cluster = new_cluster("c", Cluster.EDS).cluster
    apply_outlier_detection(cluster, None)
    assert not cluster.HasField("outlier_detection")
    assert not cluster.common_lb_config.HasField("healthy_panic_threshold")


# --- the generator -------------------------------------------------------------------

SEED = """
apiVersion: v1
kind: Service
metadata: {name: inventory-service, namespace: production}
spec: {ports: [{name: http, port: 8080}, {name: udp-stats, port: 8125}]}
---
apiVersion: v1
kind: Service
metadata: {name: secret, namespace: vault}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: inventory-service, namespace: production}
spec:
  host: inventory-service
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
"""


def test_generated_clusters_per_port_and_subset_plus_fixed_ones() -> None:
    mesh, proxy = mesh_from_yaml(SEED)
    names = [c.name for c in generate_clusters(mesh, proxy)]
    assert names == sorted(names)
    assert names == [
        "BlackHoleCluster",
        "InboundPassthroughCluster",
        "PassthroughCluster",
        f"outbound|8080|v1|{HOST}",
        f"outbound|8080|v2|{HOST}",
        f"outbound|8080||{HOST}",
        "outbound|8080||secret.vault.svc.cluster.local",
    ]  # no UDP port clusters
    assert eds_cluster_names(generate_clusters(mesh, proxy)) == names[3:]
