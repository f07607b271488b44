"""Istio's protocol selection for Kubernetes Service ports (kube.ConvertProtocol)."""

from __future__ import annotations

import pytest

from isthmus.model.protocol import parse_protocol, select_protocol
from isthmus.model.types import Protocol


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("http", Protocol.HTTP),
        ("HTTP", Protocol.HTTP),
        ("http-web", Protocol.HTTP),
        ("http2", Protocol.HTTP2),
        ("http2-api", Protocol.HTTP2),
        ("grpc", Protocol.GRPC),
        ("grpc-admin", Protocol.GRPC),
        ("grpc-web", Protocol.GRPC_WEB),
        ("grpc-web-ui", Protocol.GRPC_WEB),
        ("https", Protocol.HTTPS),
        ("tls-passthrough", Protocol.TLS),
        ("tcp", Protocol.TCP),
        ("tcp-redis", Protocol.TCP),
        ("mongo", Protocol.MONGO),
        ("redis-cache", Protocol.REDIS),
        ("mysql", Protocol.MYSQL),
        ("web", Protocol.UNSUPPORTED),
        ("httpx", Protocol.UNSUPPORTED),  # a prefix is the part before "-", not a substring
        ("web-http", Protocol.UNSUPPORTED),
        ("", Protocol.UNSUPPORTED),
        (None, Protocol.UNSUPPORTED),
    ],
)
def test_port_name_prefix(name: str | None, expected: Protocol) -> None:
    assert select_protocol(name, port=8080) is expected


@pytest.mark.parametrize(
    ("name", "app_protocol", "expected"),
    [
        ("tcp", "http", Protocol.HTTP),
        ("http", "grpc", Protocol.GRPC),
        ("web", "HTTP2", Protocol.HTTP2),
        ("web", "grpc-web", Protocol.GRPC_WEB),
        ("web", "kubernetes.io/h2c", Protocol.HTTP2),
        ("web", "kubernetes.io/ws", Protocol.HTTP),
        ("web", "kubernetes.io/wss", Protocol.HTTPS),
        # A set appProtocol is used instead of the name, never as well.
        ("http", "custom.example.com/proto", Protocol.UNSUPPORTED),
        ("http", "", Protocol.UNSUPPORTED),
        ("http", "h2c", Protocol.UNSUPPORTED),
    ],
)
def test_app_protocol_replaces_the_port_name(
    name: str, app_protocol: str, expected: Protocol
) -> None:
    assert select_protocol(name, app_protocol, port=8080) is expected


@pytest.mark.parametrize("port", [25, 53, 3306, 27017])
def test_well_known_server_first_ports_default_to_tcp(port: int) -> None:
    assert select_protocol(None, port=port) is Protocol.TCP
    assert select_protocol("database", port=port) is Protocol.TCP
    assert select_protocol("http", port=port) is Protocol.HTTP  # a declared protocol wins


def test_udp_ports_are_udp_whatever_their_name() -> None:
    assert select_protocol("http", None, "UDP", 8080) is Protocol.UDP
    assert select_protocol("dns", "http", "udp", 53) is Protocol.UDP


def test_sctp_ports_go_by_name() -> None:
    assert select_protocol("tcp-signal", None, "SCTP", 9000) is Protocol.TCP


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("HTTP", Protocol.HTTP),
        ("Mongo", Protocol.MONGO),
        ("GRPC-Web", Protocol.GRPC_WEB),
        ("http-foo", Protocol.UNSUPPORTED),  # ServiceEntry protocols are whole names
        (None, Protocol.UNSUPPORTED),
    ],
)
def test_parse_protocol(value: str | None, expected: Protocol) -> None:
    assert parse_protocol(value) is expected


def test_http_families() -> None:
    http = {p for p in Protocol if p.is_http}
    assert http == {Protocol.HTTP, Protocol.HTTP2, Protocol.GRPC, Protocol.GRPC_WEB}
    assert {p for p in Protocol if p.is_http2} == {
        Protocol.HTTP2,
        Protocol.GRPC,
        Protocol.GRPC_WEB,
    }
