"""validate_resources folds xDS resources into a bootstrap that the real Envoy checks."""

from __future__ import annotations

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2

from isthmus.pilot.resources import PreparedResource, Snapshot
from isthmus.testing.protojson import unpack
from isthmus.testing.validate import (
    EnvoyRejected,
    validate_bootstrap,
    validate_resources,
    validate_snapshot,
    validation_bootstrap,
)

CLUSTER = "outbound|8080||inventory-service.production.svc.cluster.local"
ROUTE = "8080"


def _cluster(sds_secret: str | None = "default") -> cluster_pb2.Cluster:
    cluster = cluster_pb2.Cluster(name=CLUSTER, type=cluster_pb2.Cluster.EDS)
    cluster.eds_cluster_config.eds_config.ads.SetInParent()
    cluster.connect_timeout.FromMilliseconds(1000)
    if sds_secret is not None:
        tls = tls_pb2.UpstreamTlsContext(sni=CLUSTER)
        reference = tls.common_tls_context.tls_certificate_sds_secret_configs.add(name=sds_secret)
        reference.sds_config.ads.SetInParent()
        cluster.transport_socket.name = "envoy.transport_sockets.tls"
        cluster.transport_socket.typed_config.Pack(tls)
    return cluster


def _assignment(address: str = "10.44.0.7") -> endpoint_pb2.ClusterLoadAssignment:
    assignment = endpoint_pb2.ClusterLoadAssignment(cluster_name=CLUSTER)
    socket = assignment.endpoints.add().lb_endpoints.add().endpoint.address.socket_address
    socket.address = address
    socket.port_value = 8080
    return assignment


def _route(name: str = ROUTE, regex: str | None = None) -> route_pb2.RouteConfiguration:
    route = route_pb2.RouteConfiguration(name=name)
    host = route.virtual_hosts.add(name="inventory", domains=["inventory-service", "*"])
    entry = host.routes.add()
    if regex is None:
        entry.match.prefix = "/"
    else:
        entry.match.safe_regex.regex = regex
    entry.route.cluster = CLUSTER
    return route


def _listener(route_name: str = ROUTE) -> listener_pb2.Listener:
    manager = hcm_pb2.HttpConnectionManager(stat_prefix="outbound_0.0.0.0_8080")
    manager.rds.route_config_name = route_name
    manager.rds.config_source.ads.SetInParent()
    router = manager.http_filters.add(name="envoy.filters.http.router")
    router.typed_config.Pack(router_pb2.Router())
    listener = listener_pb2.Listener(name="0.0.0.0_8080")
    listener.address.socket_address.address = "0.0.0.0"
    listener.address.socket_address.port_value = 8080
    network = listener.filter_chains.add().filters.add(
        name="envoy.filters.network.http_connection_manager"
    )
    network.typed_config.Pack(manager)
    return listener


def _manager(listener: listener_pb2.Listener) -> hcm_pb2.HttpConnectionManager:
    message = unpack(listener.filter_chains[0].filters[0].typed_config)
    assert isinstance(message, hcm_pb2.HttpConnectionManager)
    return message


def test_bootstrap_inlines_routes_and_endpoints() -> None:
    bootstrap = validation_bootstrap(
        listeners=[_listener()], clusters=[_cluster()], routes=[_route()], endpoints=[_assignment()]
    )

    manager = _manager(bootstrap.static_resources.listeners[0])
    assert manager.WhichOneof("route_specifier") == "route_config"
    assert manager.route_config.name == ROUTE
    assert manager.route_config.validate_clusters.value is False
    cluster = bootstrap.static_resources.clusters[0]
    assert cluster.type == cluster_pb2.Cluster.STATIC
    assert not cluster.HasField("eds_cluster_config")
    assert (
        cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address
        == "10.44.0.7"
    )
    assert bootstrap.static_resources.listeners[0].address.socket_address.port_value == 8080


def test_bootstrap_wraps_unreferenced_routes_and_endpoints() -> None:
    other = endpoint_pb2.ClusterLoadAssignment(
        cluster_name="outbound|9080||reviews.default.svc.cluster.local"
    )
    bootstrap = validation_bootstrap(routes=[_route("9080")], endpoints=[other])
    assert [listener.name for listener in bootstrap.static_resources.listeners] == [
        "isthmus-validate-route|9080"
    ]
    assert [cluster.name for cluster in bootstrap.static_resources.clusters] == [
        "isthmus-validate-eds|outbound|9080||reviews.default.svc.cluster.local",
        "zipkin",  # the sidecar bootstrap's span relay, which tracers may name
    ]


@pytest.mark.envoy
def test_valid_bundle_is_accepted() -> None:
    validate_resources(
        listeners=[_listener()],
        clusters=[_cluster()],
        routes=[_route()],
        endpoints=[_assignment()],
    )


@pytest.mark.envoy
def test_invalid_regex_is_rejected_with_envoys_reason() -> None:
    with pytest.raises(EnvoyRejected) as rejected:
        validate_resources(listeners=[_listener()], routes=[_route(regex="([a-z")])
    assert rejected.value.message == "missing ]: [a-z"
    assert "[critical]" in rejected.value.output


@pytest.mark.envoy
def test_route_alone_is_still_checked() -> None:
    with pytest.raises(EnvoyRejected, match="missing"):
        validate_resources(routes=[_route(regex="[")])


@pytest.mark.envoy
def test_endpoint_alone_is_still_checked() -> None:
    with pytest.raises(EnvoyRejected, match="not-an-ip"):
        validate_resources(endpoints=[_assignment(address="not-an-ip")])


@pytest.mark.envoy
def test_missing_route_cluster_is_an_error_only_when_asked() -> None:
    validate_resources(routes=[_route()])
    with pytest.raises(EnvoyRejected, match="unknown cluster"):
        validate_resources(routes=[_route()], check_route_clusters=True)
    validate_resources(
        clusters=[_cluster()],
        routes=[_route()],
        endpoints=[_assignment()],
        check_route_clusters=True,
    )


@pytest.mark.envoy
def test_bundled_secret_replaces_the_sds_reference() -> None:
    # The bundled secret is really used: its broken key makes Envoy refuse the cluster.
    secret = secret_pb2.Secret(name="default")
    secret.tls_certificate.certificate_chain.inline_string = "not a certificate"
    secret.tls_certificate.private_key.inline_string = "not a key"
    validate_resources(clusters=[_cluster()])
    with pytest.raises(EnvoyRejected):
        validate_resources(clusters=[_cluster()], secrets=[secret])


@pytest.mark.envoy
def test_bootstrap_dict_is_checked() -> None:
    validate_bootstrap({"node": {"id": "n", "cluster": "c"}})
    with pytest.raises(EnvoyRejected, match="no_such_field"):
        validate_bootstrap({"node": {"id": "n", "cluster": "c"}, "no_such_field": 1})


@pytest.mark.envoy
def test_bootstrap_message_is_checked() -> None:
    bootstrap = bootstrap_pb2.Bootstrap()
    bootstrap.node.id = "sidecar~10.44.0.7~order-7d9f.production~production.svc.cluster.local"
    bootstrap.node.cluster = "order.production"
    bootstrap.static_resources.clusters.append(_cluster(sds_secret=None))
    validate_bootstrap(bootstrap)
    bootstrap.static_resources.clusters[0].ClearField("eds_cluster_config")
    with pytest.raises(EnvoyRejected, match="EDS cluster without an EDS config"):
        validate_bootstrap(bootstrap)


@pytest.mark.envoy
def test_snapshot_is_checked() -> None:
    snapshot = Snapshot(
        resources={
            PreparedResource.of(CLUSTER, _cluster()).type_url: {
                CLUSTER: PreparedResource.of(CLUSTER, _cluster())
            },
            PreparedResource.of(ROUTE, _route()).type_url: {
                ROUTE: PreparedResource.of(ROUTE, _route(regex="(("))
            },
        }
    )
    with pytest.raises(EnvoyRejected, match="missing"):
        validate_snapshot(snapshot)
