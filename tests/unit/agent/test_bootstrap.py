"""The sidecar bootstrap: Envoy accepts it, and pilot reads back exactly the pod it describes."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from isthmus.agent.bootstrap import (
    SDS_CLUSTER,
    STATS_CLUSTER,
    STATS_PATH,
    XDS_CLUSTER,
    sidecar_bootstrap,
)
from isthmus.agent.identity import ProxyIdentity
from isthmus.api.re2 import MAX_PROGRAM_SIZE
from isthmus.model.types import Proxy
from isthmus.pilot.proxy import proxy_from_node
from isthmus.testing.protojson import dict_to_message
from isthmus.testing.validate import validate_bootstrap

XDS = "/var/run/isthmus/pods/order-7d9f/XDS"
SDS = "/var/run/isthmus/pods/order-7d9f/sds.sock"
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def identity(http_proxy_port: int | None = None) -> ProxyIdentity:
    return ProxyIdentity(
        pod="order-7d9f4b6c8-x2k8q",
        namespace="production",
        ip="10.44.0.7",
        labels={"version": "v1", "app": "order"},
        service_account="order",
        workload="order",
        inbound_ports=(9090, 8080),
        http_proxy_port=http_proxy_port,
    )


def _message(document: dict[str, Any]) -> bootstrap_pb2.Bootstrap:
    message = dict_to_message(document, bootstrap_pb2.Bootstrap())
    assert isinstance(message, bootstrap_pb2.Bootstrap)
    return message


@pytest.mark.envoy
@pytest.mark.parametrize("http_proxy_port", [None, 15080])
@pytest.mark.parametrize("sds", [None, SDS])
def test_envoy_accepts_the_bootstrap(http_proxy_port: int | None, sds: str | None) -> None:
    validate_bootstrap(
        sidecar_bootstrap(identity(http_proxy_port), XDS, 15000, 15090, sds_socket=sds)
    )


@pytest.mark.parametrize("http_proxy_port", [None, 15080])
def test_pilot_reads_back_the_pod(http_proxy_port: int | None) -> None:
    node = _message(sidecar_bootstrap(identity(http_proxy_port), XDS)).node
    assert proxy_from_node(node) == Proxy(
        id="sidecar~10.44.0.7~order-7d9f4b6c8-x2k8q.production~production.svc.cluster.local",
        namespace="production",
        ip="10.44.0.7",
        labels=(("app", "order"), ("version", "v1")),
        service_account="order",
        workload_name="order",
        http_proxy_port=http_proxy_port,
        inbound_ports=(8080, 9090),
    )
    assert node.cluster == "order.production"


def test_pod_without_inbound_ports_or_labels() -> None:
    pod = ProxyIdentity("job-1", "batch", "fd00::7", {}, "default", "job", ())
    proxy = proxy_from_node(_message(sidecar_bootstrap(pod, XDS)).node)
    assert (proxy.ip, proxy.labels, proxy.inbound_ports) == ("fd00::7", (), ())


def test_admin_listens_on_loopback_only() -> None:
    admin = _message(sidecar_bootstrap(identity(), XDS, admin_port=15999)).admin
    assert admin.address.socket_address.address == "127.0.0.1"
    assert admin.address.socket_address.port_value == 15999


def test_ads_over_the_unix_socket_waits_for_the_control_plane() -> None:
    bootstrap = _message(sidecar_bootstrap(identity(), XDS))
    ads = bootstrap.dynamic_resources.ads_config
    assert ads.api_type == ads.GRPC
    assert [g.envoy_grpc.cluster_name for g in ads.grpc_services] == [XDS_CLUSTER]
    for source in (bootstrap.dynamic_resources.cds_config, bootstrap.dynamic_resources.lds_config):
        assert source.HasField("ads")
        assert source.initial_fetch_timeout.ToMilliseconds() == 0
    (xds,) = [c for c in bootstrap.static_resources.clusters if c.name == XDS_CLUSTER]
    endpoint = xds.load_assignment.endpoints[0].lb_endpoints[0].endpoint
    assert endpoint.address.pipe.path == XDS


def test_stats_listener_forwards_only_prometheus_stats_to_admin() -> None:
    bootstrap = _message(sidecar_bootstrap(identity(), XDS, admin_port=15999, stats_port=15091))
    (listener,) = bootstrap.static_resources.listeners
    assert listener.address.socket_address.address == "0.0.0.0"
    assert listener.address.socket_address.port_value == 15091
    document = sidecar_bootstrap(identity(), XDS)["static_resources"]["listeners"][0]
    manager = document["filter_chains"][0]["filters"][0]["typed_config"]
    (route,) = manager["route_config"]["virtual_hosts"][0]["routes"]
    assert route == {"match": {"prefix": STATS_PATH}, "route": {"cluster": STATS_CLUSTER}}
    (stats,) = [c for c in bootstrap.static_resources.clusters if c.name == STATS_CLUSTER]
    address = stats.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address
    assert (address.socket_address.address, address.socket_address.port_value) == (
        "127.0.0.1",
        15999,
    )


def test_stats_address_can_be_loopback() -> None:
    document = sidecar_bootstrap(identity(), XDS, stats_address="127.0.0.1")
    address = document["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert address["address"] == "127.0.0.1"


def test_runtime_raises_re2_program_size_as_api_validation_allows() -> None:
    layers = _message(sidecar_bootstrap(identity(), XDS)).layered_runtime.layers
    static = layers[0].static_layer
    assert static["re2.max_program_size.error_level"] == MAX_PROGRAM_SIZE
    assert layers[1].HasField("admin_layer")


def test_without_mtls_there_is_no_sds() -> None:
    bootstrap = _message(sidecar_bootstrap(identity(), XDS))
    assert "SDS" not in bootstrap.node.metadata.fields
    assert SDS_CLUSTER not in [c.name for c in bootstrap.static_resources.clusters]


def test_with_mtls_the_sds_cluster_is_the_agents_socket_and_pilot_is_told() -> None:
    bootstrap = _message(sidecar_bootstrap(identity(), XDS, sds_socket=SDS))
    assert bootstrap.node.metadata["SDS"] == "true"
    (sds,) = [c for c in bootstrap.static_resources.clusters if c.name == SDS_CLUSTER]
    (xds,) = [c for c in bootstrap.static_resources.clusters if c.name == XDS_CLUSTER]
    assert sds.type == sds.STATIC
    endpoint = sds.load_assignment.endpoints[0].lb_endpoints[0].endpoint
    assert endpoint.address.pipe.path == SDS
    assert sds.load_assignment.cluster_name == SDS_CLUSTER
    # gRPC: HTTP/2 set explicitly, as on the xDS cluster.
    assert sds.typed_extension_protocol_options == xds.typed_extension_protocol_options
    options = http_protocol_options_pb2.HttpProtocolOptions()
    assert sds.typed_extension_protocol_options[_HTTP_OPTIONS].Unpack(options)
    assert options.explicit_http_config.HasField("http2_protocol_options")
    assert proxy_from_node(bootstrap.node).namespace == "production"
