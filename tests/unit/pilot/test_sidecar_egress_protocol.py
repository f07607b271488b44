"""Sidecar `egress[].port.protocol`, as Istio: a port-specific egress listener builds its
port's outbound listener with its own protocol for every host it imports (listener.go
buildSidecarOutboundListeners: `listenPort.Protocol = protocol.Parse(port.protocol)`),
whatever the services declare; unset is protocol.Parse("") = UnsupportedProtocol, i.e.
sniffed. Route configurations follow the listener (every imported host on the port);
clusters keep the services' own protocols (CDS is built from the services)."""

from __future__ import annotations

from _build import mesh_from_yaml
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2

from isthmus.model.types import Protocol
from isthmus.pilot.envoy.cluster import HTTP_PROTOCOL_OPTIONS
from isthmus.pilot.profile import ConfigGenerator
from isthmus.pilot.resources import CLUSTER, LISTENER, ROUTE, Snapshot
from isthmus.pilot.sidecar_scope import sidecar_scope

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {clusterIP: 10.96.0.10, selector: {app: web}, ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: vault, namespace: shop}
spec: {clusterIP: 10.96.0.21, selector: {app: vault}, ports: [{name: tcp, port: 7000}]}
---
apiVersion: v1
kind: Service
metadata: {name: rpc, namespace: shop}
spec: {clusterIP: 10.96.0.22, selector: {app: rpc}, ports: [{name: grpc, port: 9090}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vault-1, namespace: shop}
spec: {address: 10.44.0.31, labels: {app: vault}}
"""
PROXY = "---\nkind: Proxy\nnamespace: shop\nlabels: {app: client}\n"


def snapshot(egress: str) -> Snapshot:
    sidecar = (
        "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\n"
        f"metadata: {{name: default, namespace: shop}}\nspec: {{egress: {egress}}}\n"
    )
    mesh, proxy = mesh_from_yaml(SERVICES + sidecar + PROXY)
    return ConfigGenerator().snapshot(mesh, proxy)


def listener(snap: Snapshot, name: str) -> listener_pb2.Listener:
    message = listener_pb2.Listener()
    snap.of_type(LISTENER)[name].any.Unpack(message)
    return message


def route_config(snap: Snapshot, name: str) -> route_pb2.RouteConfiguration:
    message = route_pb2.RouteConfiguration()
    snap.of_type(ROUTE)[name].any.Unpack(message)
    return message


def cluster(snap: Snapshot, name: str) -> cluster_pb2.Cluster:
    message = cluster_pb2.Cluster()
    snap.of_type(CLUSTER)[name].any.Unpack(message)
    return message


def test_http_on_a_tcp_service_port_routes_it() -> None:
    snap = snapshot("[{port: {number: 7000, protocol: HTTP}, hosts: ['./*']}, {hosts: ['./*']}]")
    assert "10.96.0.21_7000" not in snap.of_type(LISTENER)  # no tcp_proxy on the VIP
    port = listener(snap, "0.0.0.0_7000")
    (chain,) = port.filter_chains
    assert chain.filters[-1].name == "envoy.filters.network.http_connection_manager"
    vhosts = route_config(snap, "7000").virtual_hosts
    assert [v.name for v in vhosts] == ["vault.shop.svc.cluster.local:7000", "allow_any"]
    assert "10.96.0.21" in vhosts[0].domains
    # The cluster keeps the service's protocol: plain TCP, no HTTP options.
    assert not cluster(
        snap, "outbound|7000||vault.shop.svc.cluster.local"
    ).typed_extension_protocol_options


def test_tcp_on_an_http_service_port_proxies_connections() -> None:
    snap = snapshot("[{port: {number: 8080, protocol: TCP}, hosts: ['./*']}, {hosts: ['./*']}]")
    assert "0.0.0.0_8080" not in snap.of_type(LISTENER)
    assert "8080" not in snap.of_type(ROUTE)
    (chain,) = listener(snap, "10.96.0.10_8080").filter_chains
    assert chain.name == "outbound|8080||web.shop.svc.cluster.local"
    assert chain.filters[-1].name == "envoy.filters.network.tcp_proxy"


def test_an_unset_protocol_sniffs_the_port() -> None:
    """Istio's protocol.Parse("") is UnsupportedProtocol: the port is sniffed even where
    the services declare HTTP (so is an empty protocol, which validation accepts)."""
    for port in ("{number: 8080}", "{number: 8080, protocol: ''}"):
        snap = snapshot(f"[{{port: {port}, hosts: ['./*']}}, {{hosts: ['./*']}}]")
        sniffing = listener(snap, "0.0.0.0_8080")
        assert sniffing.listener_filters[0].name == "envoy.filters.listener.http_inspector"
        assert [c.name for c in sniffing.filter_chains] == [
            "0.0.0.0_8080",
            "0.0.0.0_8080|10.96.0.10",
            "outbound|8080||web.shop.svc.cluster.local",
        ]
        assert sniffing.default_filter_chain.name == "PassthroughCluster"
        vhosts = route_config(snap, "8080").virtual_hosts
        assert vhosts[0].name == "web.shop.svc.cluster.local:8080"


def test_the_protocol_applies_to_the_listeners_port_only() -> None:
    snap = snapshot("[{port: {number: 9090, protocol: TCP}, hosts: ['./*']}, {hosts: ['./*']}]")
    assert "10.96.0.22_9090" in snap.of_type(LISTENER)  # gRPC on 9090 proxied as TCP
    assert "0.0.0.0_8080" in snap.of_type(LISTENER)  # web's HTTP elsewhere untouched
    assert "10.96.0.21_7000" in snap.of_type(LISTENER)  # vault's TCP elsewhere untouched
    # The gRPC cluster keeps HTTP/2 upstream.
    rpc = cluster(snap, "outbound|9090||rpc.shop.svc.cluster.local")
    assert HTTP_PROTOCOL_OPTIONS in rpc.typed_extension_protocol_options


def test_udp_builds_no_listener() -> None:
    """Istio builds no outbound listener for UDP (or other non-TCP protocols)."""
    snap = snapshot("[{port: {number: 7000, protocol: UDP}, hosts: ['./*']}, {hosts: ['./*']}]")
    assert not [n for n in snap.of_type(LISTENER) if n.endswith("_7000")]


def test_the_scope_keeps_each_port_specific_listeners_protocol() -> None:
    mesh, _ = mesh_from_yaml(
        SERVICES + "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\n"
        "metadata: {name: default, namespace: shop}\nspec: {egress: ["
        "{port: {number: 7000, protocol: http}, hosts: ['./*']},"
        " {port: {number: 8080}, hosts: ['./*']}, {hosts: ['./*']}]}\n"
    )
    scope = sidecar_scope(mesh, "shop", ())
    assert scope.port_protocols() == {7000: Protocol.HTTP, 8080: Protocol.UNSUPPORTED}
