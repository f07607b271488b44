"""A real isthmusd fetches the jwksUri a RequestAuthentication names and pushes the keys to
the sidecar's inbound listener (the jwt_authn filter's inline JWKS), as istiod does; a new
RequestAuthentication is fetched and pushed too. The sidecar here is the ADS test client
(a capture-mode node, so no Envoy binds the host's 15006); the key server is on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from isthmus.pilot.resources import LISTENER
from isthmus.pilot.security.jwt import PUBLIC_ONLY_JWKS
from isthmus.testing.ads_client import AdsClient
from isthmus.testing.daemon import DaemonProcess, node_id
from isthmus.testing.jwt import JwksServer, RsaIssuer

FIRST = RsaIssuer("https://first.example.com", kid="first")
SECOND = RsaIssuer("https://second.example.com", kid="second")
WAIT_S = 30.0  # guards a hang only

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: inventory-service, namespace: production}
spec:
  selector: {app: inventory-service}
  ports: [{name: http, port: 8080}]
"""


def authentication(name: str, issuer: RsaIssuer, uri: str) -> str:
    return f"""\
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: {name}, namespace: production}}
spec:
  selector: {{matchLabels: {{app: inventory-service}}}}
  jwtRules: [{{issuer: "{issuer.issuer}", jwksUri: "{uri}"}}]
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    with DaemonProcess(tmp_path / "home") as process:
        yield process


def key_sets(listener: listener_pb2.Listener) -> dict[str, str]:
    """issuer -> inline JWKS of the jwt_authn filter on the inbound HTTP chain of 8080."""
    for chain in listener.filter_chains:
        if chain.filter_chain_match.destination_port.value != 8080:
            continue
        for network_filter in chain.filters:
            manager = hcm.HttpConnectionManager()
            if not network_filter.typed_config.Unpack(manager):
                continue
            for http_filter in manager.http_filters:
                config = jwt_pb2.JwtAuthentication()
                if http_filter.typed_config.Unpack(config):
                    return {p.issuer: p.local_jwks.inline_string for p in config.providers.values()}
    return {}


async def until_keys(client: AdsClient, wanted: dict[str, str]) -> None:
    """Read LDS pushes (ACKing each) until the inbound listener carries `wanted`."""
    async with asyncio.timeout(WAIT_S):
        while True:
            response = await client.next(LISTENER, timeout=WAIT_S)
            client.ack(response)
            listener = listener_pb2.Listener()
            response.resources["virtualInbound"].Unpack(listener)
            if key_sets(listener) == wanted:
                return


async def test_isthmusd_fetches_and_pushes_the_keys(daemon: DaemonProcess) -> None:
    with JwksServer({"/first": (200, FIRST.jwks()), "/second": (200, SECOND.jwks())}) as keys:
        daemon.apply(SERVICE + "---\n" + authentication("first", FIRST, keys.url("/first")))
        client = AdsClient(
            f"unix:{daemon.xds_socket}", node_id("10.44.0.7", "inventory-0", "production")
        )
        labels = {"app": "inventory-service"}
        client.node.metadata.update(
            {"NAMESPACE": "production", "LABELS": labels, "INBOUND_PORTS": "8080"}
        )
        async with client:
            client.subscribe(LISTENER)
            await until_keys(client, {FIRST.issuer: FIRST.jwks()})

            daemon.apply(authentication("second", SECOND, keys.url("/second")))
            await until_keys(client, {FIRST.issuer: FIRST.jwks(), SECOND.issuer: SECOND.jwks()})

            daemon.apply(authentication("second", SECOND, keys.url("/gone")))
            await until_keys(client, {FIRST.issuer: FIRST.jwks(), SECOND.issuer: PUBLIC_ONLY_JWKS})

    assert "jwks fetch_failed" in daemon.log_text()
