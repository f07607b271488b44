"""proxy_from_node: Istio's node id and metadata conventions, and refusal of bad nodes."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from google.protobuf import json_format, struct_pb2

from isthmus.model.types import Proxy
from isthmus.pilot.proxy import InvalidNode, proxy_from_node

NODE_ID = "sidecar~10.44.0.7~order-7d9f.production~production.svc.cluster.local"


def _node(node_id: str = NODE_ID, metadata: dict[str, Any] | None = None) -> base_pb2.Node:
    node = base_pb2.Node(id=node_id)
    if metadata is not None:
        node.metadata.CopyFrom(json_format.ParseDict(metadata, struct_pb2.Struct()))
    return node


def test_full_metadata() -> None:
    proxy = proxy_from_node(
        _node(
            metadata={
                "NAMESPACE": "production",
                "LABELS": {"app": "order", "version": "v1"},
                "SERVICE_ACCOUNT": "order",
                "WORKLOAD_NAME": "order",
                "PROXY_HTTP_PORT": "15080",
                "INBOUND_PORTS": "9090, 8080,8080",
            }
        )
    )
    assert proxy == Proxy(
        id=NODE_ID,
        namespace="production",
        ip="10.44.0.7",
        labels=(("app", "order"), ("version", "v1")),
        service_account="order",
        workload_name="order",
        http_proxy_port=15080,
        inbound_ports=(8080, 9090),
    )


def test_without_metadata_the_id_says_enough() -> None:
    node_id = "sidecar~10.44.0.9~cart-5c4d.shop~shop.svc.cluster.local"
    proxy = proxy_from_node(_node(node_id))
    assert (proxy.namespace, proxy.ip, proxy.workload_name) == ("shop", "10.44.0.9", "cart-5c4d")
    assert (proxy.labels, proxy.service_account, proxy.inbound_ports) == ((), "default", ())
    assert proxy.http_proxy_port is None


def test_mesh_default_http_proxy_port_unless_the_node_says_otherwise() -> None:
    assert proxy_from_node(_node(), default_http_proxy_port=15080).http_proxy_port == 15080
    node = _node(metadata={"PROXY_HTTP_PORT": "0"})
    assert proxy_from_node(node, default_http_proxy_port=15080).http_proxy_port is None


def test_struct_numbers_are_ports_too() -> None:
    """A Struct stores every number as a double; 15080 must not read as "15080.0"."""
    assert proxy_from_node(_node(metadata={"PROXY_HTTP_PORT": 15080})).http_proxy_port == 15080


def test_instance_ips_win_over_the_id() -> None:
    node = _node(metadata={"INSTANCE_IPS": "10.44.1.1,fd00::1"})
    assert proxy_from_node(node).ip == "10.44.1.1"


def test_an_ipv6_id() -> None:
    node_id = "sidecar~fd00::7~order.production~production.svc.cluster.local"
    assert proxy_from_node(_node(node_id)).ip == "fd00::7"


def test_invalid_instance_ips_fall_back_to_the_id() -> None:
    assert proxy_from_node(_node(metadata={"INSTANCE_IPS": "not-an-ip"})).ip == "10.44.0.7"


@pytest.mark.parametrize(
    ("node_id", "metadata", "complaint"),
    [
        ("", None, "is not sidecar~IP"),
        ("sidecar~10.44.0.7~order.production", None, "is not sidecar~IP"),
        ("ingress~10.44.0.7~gw.istio-system~istio-system.svc.cluster.local", None, "sidecar~IP"),
        ("sidecar~10.44.0.7~a~b~c", None, "is not sidecar~IP"),
        ("sidecar~not-an-ip~order.production~production.svc.cluster.local", None, "no valid IP"),
        ("sidecar~~order.production~production.svc.cluster.local", None, "no valid IP"),
        ("sidecar~10.44.0.7~~production.svc.cluster.local", None, "names no pod"),
        ("sidecar~10.44.0.7~order~", None, "has no namespace"),
        (NODE_ID, {"LABELS": ["app=order"]}, "LABELS must be a map"),
        (NODE_ID, {"LABELS": {"replicas": 3}}, "LABELS values must be strings"),
        (NODE_ID, {"INBOUND_PORTS": "8080,http"}, "INBOUND_PORTS has a bad port"),
        (NODE_ID, {"INBOUND_PORTS": "70000"}, "out of range"),
        (NODE_ID, {"INBOUND_PORTS": "0"}, "out of range"),
        (NODE_ID, {"PROXY_HTTP_PORT": "proxy"}, "PROXY_HTTP_PORT has a bad port"),
        (NODE_ID, {"PROXY_HTTP_PORT": 15080.5}, "PROXY_HTTP_PORT has a bad port"),
    ],
)
def test_invalid_nodes(node_id: str, metadata: dict[str, Any] | None, complaint: str) -> None:
    with pytest.raises(InvalidNode, match=complaint) as raised:
        proxy_from_node(_node(node_id, metadata))
    assert isinstance(raised.value, ValueError)


def test_interception_mode_none_binds_no_capture_listeners() -> None:
    from google.protobuf import struct_pb2

    from isthmus.model.build import build_snapshot
    from isthmus.pilot.profile import ConfigGenerator
    from isthmus.pilot.resources import LISTENER

    node = base_pb2.Node(id="sidecar~127.0.0.1~client-1.production~production.svc.cluster.local")
    meta = struct_pb2.Struct()
    meta.update({"INTERCEPTION_MODE": "NONE", "PROXY_HTTP_PORT": "15080"})
    node.metadata.CopyFrom(meta)
    proxy = proxy_from_node(node)
    assert proxy.capture is False
    names = set(ConfigGenerator().snapshot(build_snapshot([]), proxy).of_type(LISTENER))
    assert names == {"127.0.0.1_15080"}
    meta.update({"INTERCEPTION_MODE": "TPROXY"})
    node.metadata.CopyFrom(meta)
    with pytest.raises(InvalidNode, match="INTERCEPTION_MODE"):
        proxy_from_node(node)
