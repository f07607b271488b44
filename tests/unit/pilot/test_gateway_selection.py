"""Gateway servers and VirtualService binding, as Istio: which servers a gateway pod
serves, which hosts a VirtualService may take from a server, how names resolve."""

from __future__ import annotations

import pytest
from _build import mesh_from_yaml
from envoy.config.core.v3 import base_pb2
from google.protobuf import struct_pb2

from isthmus.pilot.gateway.routes import intersect_hosts
from isthmus.pilot.gateway.servers import servers_by_port
from isthmus.pilot.generators.routes import resolve_gateway_name
from isthmus.pilot.proxy import InvalidNode, proxy_from_node


@pytest.mark.parametrize(
    ("name", "resolved"),
    [
        ("mesh", "mesh"),
        ("bookinfo-gateway", "shop/bookinfo-gateway"),
        ("istio-system/ingress", "istio-system/ingress"),
        ("ingress.istio-system.svc.cluster.local", "istio-system/ingress"),
        ("ingress.istio-system", "istio-system/ingress"),
    ],
)
def test_gateway_names_resolve_as_istio(name: str, resolved: str) -> None:
    assert resolve_gateway_name(name, "shop") == resolved


@pytest.mark.parametrize(
    ("server", "vs", "expected"),
    [
        (["*"], ["*"], ["*"]),
        (["*"], ["bookinfo.example.com"], ["bookinfo.example.com"]),
        (["*.example.com"], ["a.example.com", "b.other.com"], ["a.example.com"]),
        (["a.example.com"], ["*.example.com"], ["a.example.com"]),
        (["*.example.com"], ["*.a.example.com"], ["*.a.example.com"]),
        (["a.example.com"], ["b.example.com"], []),
        (["A.example.com"], ["a.example.com"], []),  # as written; hosts are lower case
    ],
)
def test_host_intersection_takes_the_more_specific_name(
    server: list[str], vs: list[str], expected: list[str]
) -> None:
    assert intersect_hosts(server, vs) == expected


SERVERS = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*/any.example.com", "./edge.example.com", "shop/shop.example.com", "bare.example.com"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: everyone, namespace: edge}
spec:
  servers:
  - port: {number: 81, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress, namespace: edge}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 82, name: http, protocol: HTTP}
    hosts: ["*"]
---
kind: Proxy
namespace: istio-system
labels: {istio: ingressgateway}
router: true
"""


def test_selector_picks_the_gateway_pods_and_an_empty_one_picks_all() -> None:
    mesh, proxy = mesh_from_yaml(SERVERS)

    by_port = servers_by_port(mesh, proxy)

    assert sorted(by_port) == [80, 81]
    assert [s.gateway for s in by_port[80]] == ["edge/public"]


def test_server_hosts_are_filtered_by_the_virtual_service_namespace() -> None:
    mesh, proxy = mesh_from_yaml(SERVERS)
    (server,) = servers_by_port(mesh, proxy)[80]

    assert server.hosts_for("edge") == ["any.example.com", "edge.example.com", "bare.example.com"]
    assert server.hosts_for("shop") == ["any.example.com", "shop.example.com", "bare.example.com"]
    assert server.hosts_for("other") == ["any.example.com", "bare.example.com"]


def _node(node_id: str, **meta: str) -> base_pb2.Node:
    metadata = struct_pb2.Struct()
    metadata.update(meta)
    return base_pb2.Node(id=node_id, metadata=metadata)


def test_a_router_node_is_a_gateway_pod_without_capture() -> None:
    proxy = proxy_from_node(
        _node(
            "router~10.44.0.9~istio-ingressgateway-1.istio-system~istio-system.svc.cluster.local",
            PUBLISHED_PORTS="18080:80, 18443:443",
            HOST_NETNS="/var/lib/isthmus/run/host-netns",
            INBOUND_PORTS="80",
        )
    )

    assert proxy.router and not proxy.capture
    assert proxy.published_ports == ((18080, 80), (18443, 443))
    assert proxy.host_netns == "/var/lib/isthmus/run/host-netns"


def test_a_sidecar_cannot_publish_and_a_published_port_needs_the_host_namespace() -> None:
    sidecar = proxy_from_node(
        _node("sidecar~10.44.0.9~a.shop~shop.svc.cluster.local", PUBLISHED_PORTS="1:2")
    )
    assert not sidecar.router and sidecar.published_ports == ()

    with pytest.raises(InvalidNode, match="HOST_NETNS"):
        proxy_from_node(
            _node(
                "router~10.44.0.9~g.istio-system~istio-system.svc.cluster.local",
                PUBLISHED_PORTS="18080:80",
            )
        )
    with pytest.raises(InvalidNode, match="HOSTPORT:PORT"):
        proxy_from_node(
            _node(
                "router~10.44.0.9~g.istio-system~istio-system.svc.cluster.local",
                PUBLISHED_PORTS="18080",
                HOST_NETNS="/x",
            )
        )
