"""Hand-written Envoy resources and a SnapshotSource over them, for the ADS tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

from isthmus.pilot.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, PreparedResource, Snapshot
from isthmus.testing.ads_client import AdsClient
from isthmus.xds import ProxyRejected

ADS = config_source_pb2.ConfigSource(
    ads=config_source_pb2.AggregatedConfigSource(),
    resource_api_version=config_source_pb2.ApiVersion.V3,
)


def cluster(name: str, connect_timeout_s: int = 1) -> cluster_pb2.Cluster:
    return cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.EDS,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(eds_config=ADS),
        connect_timeout=duration_pb2.Duration(seconds=connect_timeout_s),
    )


def assignment(cluster_name: str, port: int) -> endpoint_pb2.ClusterLoadAssignment:
    address = address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=port)
    )
    endpoint = endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=address)
    )
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster_name,
        endpoints=[endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[endpoint])],
    )


def listener(name: str, port: int, route_name: str) -> listener_pb2.Listener:
    router = hcm_pb2.HttpFilter(name="envoy.filters.http.router")
    router.typed_config.Pack(router_pb2.Router())
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix=name,
        rds=hcm_pb2.Rds(config_source=ADS, route_config_name=route_name),
        http_filters=[router],
    )
    typed = any_pb2.Any()
    typed.Pack(manager)
    return listener_pb2.Listener(
        name=name,
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=port)
        ),
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[
                    listener_components_pb2.Filter(
                        name="envoy.filters.network.http_connection_manager", typed_config=typed
                    )
                ]
            )
        ],
    )


def route_config(name: str, cluster_name: str) -> route_pb2.RouteConfiguration:
    route = route_components_pb2.Route(
        match=route_components_pb2.RouteMatch(prefix="/"),
        route=route_components_pb2.RouteAction(cluster=cluster_name),
    )
    return route_pb2.RouteConfiguration(
        name=name,
        virtual_hosts=[route_components_pb2.VirtualHost(name="all", domains=["*"], routes=[route])],
    )


def prepare(message: Message) -> PreparedResource:
    name: str = getattr(message, "cluster_name", "") or message.name
    return PreparedResource.of(name, message)


View = dict[str, dict[str, PreparedResource]]
# The `proxy` fixture: makes a connected fake Envoy (AdsClient keyword options).
ClientFactory = Callable[..., Awaitable[AdsClient]]


class StaticSource:
    """A SnapshotSource over hand-written resources: one shared view, overridable per node."""

    def __init__(self, messages: Iterable[Message]) -> None:
        self.shared: View = {}
        self.per_node: dict[str, View] = {}
        self.rejected: dict[str, str] = {}
        self.calls = 0
        self.put(*messages)

    def view(self, node_id: str | None) -> View:
        if node_id is None:
            return self.shared
        if node_id not in self.per_node:
            self.per_node[node_id] = {t: dict(r) for t, r in self.shared.items()}
        return self.per_node[node_id]

    def put(self, *messages: Message, node_id: str | None = None) -> None:
        view = self.view(node_id)
        for message in messages:
            prepared = prepare(message)
            view.setdefault(prepared.type_url, {})[prepared.name] = prepared

    def remove(self, type_url: str, name: str, node_id: str | None = None) -> None:
        del self.view(node_id)[type_url][name]

    def snapshot_for(self, node: base_pb2.Node) -> Snapshot:
        self.calls += 1
        if node.id in self.rejected:
            raise ProxyRejected(self.rejected[node.id])
        view = self.per_node.get(node.id, self.shared)
        return Snapshot({t: dict(r) for t, r in view.items()})

    def version(self, type_url: str, node_id: str = "") -> str:
        return self.snapshot_for(base_pb2.Node(id=node_id)).version(type_url)


def mesh() -> list[Message]:
    """Two services: clusters with endpoints, one listener routing through RDS."""
    return [
        cluster("outbound|8080||reviews.default.svc.cluster.local"),
        cluster("outbound|9080||ratings.default.svc.cluster.local"),
        assignment("outbound|8080||reviews.default.svc.cluster.local", 18080),
        assignment("outbound|9080||ratings.default.svc.cluster.local", 19080),
        listener("0.0.0.0_8080", 18000, "8080"),
        route_config("8080", "outbound|8080||reviews.default.svc.cluster.local"),
    ]


REVIEWS = "outbound|8080||reviews.default.svc.cluster.local"
RATINGS = "outbound|9080||ratings.default.svc.cluster.local"
TYPES = (CLUSTER, ENDPOINT, LISTENER, ROUTE)
NODE_A = "sidecar~10.44.0.7~reviews-1.default~default.svc.cluster.local"
NODE_B = "sidecar~10.44.0.8~ratings-1.default~default.svc.cluster.local"
