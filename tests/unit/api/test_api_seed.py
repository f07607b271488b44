"""The seed article's DestinationRule and VirtualService load, from every served apiVersion."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from _apihelp import load

from isthmus.api.networking import DestinationRule, SimpleLB, VirtualService

SEED = (Path(__file__).parent / "data" / "seed.yaml").read_text()
VALID_ALL_KINDS = (Path(__file__).parent / "data" / "valid-all-kinds.yaml").read_text()


@pytest.mark.parametrize(
    "api_version",
    ["networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"],
)
def test_seed_loads_from_every_networking_api_version(api_version: str) -> None:
    text = SEED.replace("networking.istio.io/v1beta1", api_version)

    rule_object, vs_object = load(text, "seed.yaml")

    assert rule_object.key == ("DestinationRule", "production", "inventory-service")
    assert vs_object.key == ("VirtualService", "production", "inventory-service")
    assert (rule_object.line, rule_object.index) == (1, 0)
    assert (vs_object.line, vs_object.index) == (31, 1)
    rule, vs = rule_object.resource, vs_object.resource
    assert isinstance(rule, DestinationRule) and isinstance(vs, VirtualService)
    assert rule.api_version == api_version

    policy = rule.spec.traffic_policy
    assert policy is not None
    assert policy.load_balancer is not None and policy.load_balancer.simple is SimpleLB.LEAST_CONN
    assert policy.connection_pool is not None and policy.connection_pool.tcp is not None
    assert policy.connection_pool.tcp.max_connections == 100
    assert policy.connection_pool.http is not None
    assert policy.connection_pool.http.http1_max_pending_requests == 50
    assert policy.connection_pool.http.http2_max_requests == 1000
    assert policy.connection_pool.http.max_requests_per_connection == 10
    outlier = policy.outlier_detection
    assert outlier is not None
    assert outlier.consecutive_5xx_errors == 5
    assert outlier.interval == timedelta(seconds=10)
    assert outlier.base_ejection_time == timedelta(seconds=30)
    assert outlier.max_ejection_percent == 50
    assert [(s.name, s.labels) for s in rule.spec.subsets] == [
        ("v1", {"version": "v1"}),
        ("v2", {"version": "v2"}),
    ]

    beta, default = vs.spec.http
    assert beta.match[0].headers["x-beta-user"].exact == "true"
    assert beta.route[0].destination.subset == "v2"
    assert [(d.destination.subset, d.weight) for d in default.route] == [("v1", 95), ("v2", 5)]
    assert default.timeout == timedelta(seconds=3)
    assert default.retries is not None
    assert default.retries.attempts == 3
    assert default.retries.per_try_timeout == timedelta(seconds=1)
    assert default.retries.retry_on == "5xx,reset,connect-failure,retriable-4xx"


def test_seed_bodies_are_the_documents_as_written() -> None:
    rule_object, vs_object = load(SEED, "seed.yaml")

    assert vs_object.body["spec"]["http"][1]["retries"] == {
        "attempts": 3,
        "perTryTimeout": "1s",
        "retryOn": "5xx,reset,connect-failure,retriable-4xx",
    }
    assert rule_object.body["metadata"] == {"name": "inventory-service", "namespace": "production"}


def test_one_object_of_every_kind_loads() -> None:
    objects = load(VALID_ALL_KINDS, "all.yaml")

    assert [o.key[0] for o in objects] == [
        "Namespace",
        "ServiceAccount",
        "Service",
        "Deployment",
        "VirtualService",
        "DestinationRule",
        "ServiceEntry",
        "ServiceEntry",
        "WorkloadEntry",
    ]
    assert objects[0].key == ("Namespace", "", "production")
