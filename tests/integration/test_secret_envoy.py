"""A Secret's credential is accepted exactly when the real Envoy serves it: for each key
type and each broken pair, `isthmus.api` checks and `envoy --mode validate` (a listener
whose DownstreamTlsContext holds the certificate and key inline) agree."""

from __future__ import annotations

from typing import Any

import pytest

from isthmus.api.errors import ApiError
from isthmus.api.loader import load_documents
from isthmus.testing.certs import KeyPair, Pki, b64, secret_yaml
from isthmus.testing.validate import EnvoyRejected, validate_bootstrap

PKI = Pki()
_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
_TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def serving(pair: KeyPair) -> dict[str, Any]:
    """A bootstrap whose one listener serves `pair`."""
    tls_context = {
        "@type": _TLS,
        "common_tls_context": {
            "tls_certificates": [
                {
                    "certificate_chain": {"inline_bytes": b64(pair.certificate)},
                    "private_key": {"inline_bytes": b64(pair.key)},
                }
            ]
        },
    }
    listener = {
        "name": "gateway",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.tcp_proxy",
                        "typed_config": {"@type": _TCP_PROXY, "stat_prefix": "t", "cluster": "c"},
                    }
                ],
                "transport_socket": {
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": tls_context,
                },
            }
        ],
    }
    cluster = {"name": "c", "type": "STATIC", "load_assignment": {"cluster_name": "c"}}
    return {"static_resources": {"listeners": [listener], "clusters": [cluster]}}


def isthmus_accepts(pair: KeyPair) -> bool:
    text = secret_yaml("s", {"tls.crt": pair.certificate, "tls.key": pair.key})
    try:
        load_documents(text, "secret.yaml")
    except ApiError:
        return False
    return True


def envoy_accepts(pair: KeyPair) -> bool:
    try:
        validate_bootstrap(serving(pair))
    except EnvoyRejected:
        return False
    return True


@pytest.mark.parametrize(
    "key_kind", ["rsa1024", "rsa2048", "rsa3072", "ec256", "ec384", "ec521", "secp256k1", "ed25519"]
)
def test_key_types_are_accepted_as_envoy_serves_them(key_kind: str) -> None:
    pair = PKI.server(key_kind=key_kind)

    assert isthmus_accepts(pair) == envoy_accepts(pair)
    expected = key_kind not in ("rsa1024", "secp256k1")
    assert isthmus_accepts(pair) is expected


def test_a_mismatched_or_encrypted_key_is_refused_by_both() -> None:
    server, other = PKI.server(), PKI.server("other.example.com")
    mismatched = KeyPair(server.certificate, other.key)
    encrypted = KeyPair(server.certificate, server.encrypted_key())

    for pair in (mismatched, encrypted):
        assert not isthmus_accepts(pair)
        assert not envoy_accepts(pair)
    assert isthmus_accepts(server) and envoy_accepts(server)
