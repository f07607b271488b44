"""With tracing on, the sidecar bootstrap has the `zipkin` cluster a Zipkin tracer needs
(Envoy refuses the tracer without it), and tells pilot so in the node metadata."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2

from isthmus.agent.bootstrap import ZIPKIN_CLUSTER, ZIPKIN_METADATA, sidecar_bootstrap
from isthmus.agent.identity import ProxyIdentity
from isthmus.testing.protojson import dict_to_message
from isthmus.testing.validate import EnvoyRejected, validate_bootstrap

XDS = "/run/isthmus/m/production.order-7d9f/XDS"
ZIPKIN = "/run/isthmus/m/production.order-7d9f/ZIPKIN"
_HCM = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)


def identity() -> ProxyIdentity:
    return ProxyIdentity(
        pod="order-7d9f4b6c8-x2k8q",
        namespace="production",
        ip="10.44.0.7",
        labels={"app": "order"},
        service_account="order",
        workload="order",
        inbound_ports=(8080,),
    )


def with_traced_listener(bootstrap: dict[str, Any]) -> dict[str, Any]:
    """The bootstrap plus a listener whose connection manager reports to `zipkin`, as
    pilot configures one: Envoy checks the tracer's cluster when it loads the listener."""
    document = copy.deepcopy(bootstrap)
    manager = {
        "@type": _HCM,
        "stat_prefix": "traced",
        "tracing": {
            "random_sampling": {"value": 100},
            "provider": {
                "name": "envoy.tracers.zipkin",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig",
                    "collector_cluster": ZIPKIN_CLUSTER,
                    "collector_endpoint": "/api/v2/spans",
                    "collector_endpoint_version": "HTTP_JSON",
                    "trace_id_128bit": True,
                },
            },
        },
        "route_config": {"virtual_hosts": []},
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    document["static_resources"]["listeners"].append(
        {
            "name": "traced",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15099}},
            "filter_chains": [
                {
                    "filters": [
                        {
                            "name": "envoy.filters.network.http_connection_manager",
                            "typed_config": manager,
                        }
                    ]
                }
            ],
        }
    )
    return document


@pytest.mark.envoy
def test_envoy_accepts_a_zipkin_tracer_with_the_bootstrap_cluster() -> None:
    validate_bootstrap(
        with_traced_listener(sidecar_bootstrap(identity(), XDS, zipkin_socket=ZIPKIN))
    )


@pytest.mark.envoy
def test_without_the_cluster_envoy_refuses_the_tracer() -> None:
    with pytest.raises(EnvoyRejected, match="unknown cluster 'zipkin'"):
        validate_bootstrap(with_traced_listener(sidecar_bootstrap(identity(), XDS)))


def test_the_zipkin_cluster_is_plain_http_to_the_agents_socket_and_pilot_is_told() -> None:
    document = sidecar_bootstrap(identity(), XDS, zipkin_socket=ZIPKIN)
    bootstrap = dict_to_message(document, bootstrap_pb2.Bootstrap())
    assert isinstance(bootstrap, bootstrap_pb2.Bootstrap)
    assert bootstrap.node.metadata[ZIPKIN_METADATA] == "true"
    (zipkin,) = [c for c in bootstrap.static_resources.clusters if c.name == ZIPKIN_CLUSTER]
    assert zipkin.type == zipkin.STATIC
    assert zipkin.load_assignment.cluster_name == ZIPKIN_CLUSTER
    endpoint = zipkin.load_assignment.endpoints[0].lb_endpoints[0].endpoint
    assert endpoint.address.pipe.path == ZIPKIN
    assert not zipkin.typed_extension_protocol_options  # HTTP/1.1, Envoy's default


def test_without_tracing_there_is_no_zipkin_cluster_and_no_metadata() -> None:
    document = sidecar_bootstrap(identity(), XDS)
    assert ZIPKIN_METADATA not in document["node"]["metadata"]
    assert ZIPKIN_CLUSTER not in [c["name"] for c in document["static_resources"]["clusters"]]
