"""A static Envoy that enforces AuthorizationPolicies the way an isthmus sidecar's inbound does,
and mTLS clients to call it (for test_authz_table).

One listener, named `virtualInbound` as a sidecar's is (so `isthmus x authz check` finds it in
the config dump), listens on one loopback port per policy set and serves each port with its own
filter chain, matched by destination port: TLS with a certificate of the test CA, client
certificates verified against that CA but not required (a client without one has no
principal), and isthmus's inbound HttpConnectionManager with the set's RBAC filters first. The
route answers 200 itself.

Every answer (Envoy's local replies, the RBAC denial and the route's direct response alike)
reports in response headers what Envoy's RBAC filters wrote into dynamic metadata: the
enforced engine result and effective policy, the dry-run (shadow) ones, and the AUDIT (LOG)
filter's access log hint. That is Envoy's own account of which policy decided.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from isthmus.agent.bootstrap import sidecar_bootstrap
from isthmus.agent.identity import ProxyIdentity
from isthmus.ca import CertificateAuthority
from isthmus.pilot.authz.rbac import SHADOW_ALLOW_STAT_PREFIX, SHADOW_DENY_STAT_PREFIX
from isthmus.pilot.envoy.http_connection_manager import inline_connection_manager
from isthmus.pilot.envoy.typed import pack
from isthmus.testing.ports import LOOPBACK
from isthmus.testing.protojson import message_to_dict

TRUST_DOMAIN = "cluster.local"
INBOUND_LISTENER = "virtualInbound"
APP_BODY = b"app"
RBAC_DENIED_BODY = b"RBAC: access denied"
# Only guards against a hung connection; no outcome depends on how long anything takes.
SOCKET_TIMEOUT_S = 10.0
CERT_TTL = timedelta(hours=1)

_DOWNSTREAM_TLS = (
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
)
_RBAC_METADATA = "envoy.filters.http.rbac"

# Response header -> the dynamic metadata Envoy's RBAC filters set. The HTTP RBAC filter
# writes `<rules_stat_prefix>enforced_effective_policy_id` when its rules let a request through
# (isthmus sets no prefix; a denial leaves it as an earlier filter wrote it) and
# `<shadow_rules_stat_prefix>shadow_*` for its dry-run rules; a LOG (AUDIT) filter sets
# envoy.common's access_log_hint.
ENFORCED_POLICY = "x-rbac-enforced-policy"
AUDIT_HINT = "x-rbac-audit-hint"
DRY_RUN_RESULT = {
    "DENY": "x-rbac-dry-run-deny-result",
    "ALLOW": "x-rbac-dry-run-allow-result",
}
DRY_RUN_POLICY = {
    "DENY": "x-rbac-dry-run-deny-policy",
    "ALLOW": "x-rbac-dry-run-allow-policy",
}
_SHADOW_PREFIX = {"DENY": SHADOW_DENY_STAT_PREFIX, "ALLOW": SHADOW_ALLOW_STAT_PREFIX}
REPORTED: dict[str, str] = {
    ENFORCED_POLICY: f"{_RBAC_METADATA}:enforced_effective_policy_id",
    AUDIT_HINT: "envoy.common:access_log_hint",
    **{
        DRY_RUN_RESULT[action]: f"{_RBAC_METADATA}:{prefix}shadow_engine_result"
        for action, prefix in _SHADOW_PREFIX.items()
    },
    **{
        DRY_RUN_POLICY[action]: f"{_RBAC_METADATA}:{prefix}shadow_effective_policy_id"
        for action, prefix in _SHADOW_PREFIX.items()
    },
}
# The local reply's response code details: `rbac_access_denied_matched_policy[<id>]` (or
# `[none]`) when an RBAC filter refused the request.
DETAILS_HEADER = "x-response-code-details"


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago (all bound at once, so the
    kernel cannot hand out one twice)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def spiffe(namespace: str, service_account: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}"


class Pki:
    """The test CA, a server certificate for Envoy and client certificates on demand.

    Certificates are signed from CSRs (one URI SAN) exactly as the mesh CA signs a
    workload's, and written as PEM files in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = CertificateAuthority.load_or_create(directory / "ca", TRUST_DOMAIN)
        self.root_path = directory / "root.pem"
        self.root_path.write_text(self.ca.root_pem)
        self.server = self.issue("production", "app")
        self._clients: dict[tuple[str, str], ssl.SSLContext] = {}

    def issue(self, namespace: str, service_account: str) -> tuple[Path, Path]:
        """(certificate chain file, private key file) for that workload identity."""
        identity = spiffe(namespace, service_account)
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        chain = self.ca.sign_workload(
            csr.public_bytes(serialization.Encoding.PEM), identity, CERT_TTL
        )
        stem = f"{namespace}.{service_account}"
        cert_path = self.directory / f"{stem}.crt"
        key_path = self.directory / f"{stem}.key"
        cert_path.write_text("".join(chain))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_path, key_path

    def client_context(self, principal: tuple[str, str] | None) -> ssl.SSLContext:
        """A TLS client that trusts the CA and presents `principal`'s certificate, if any."""
        if principal is not None and principal in self._clients:
            return self._clients[principal]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False  # mesh certificates name a SPIFFE id, not a host
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(self.root_path))
        if principal is not None:
            cert_path, key_path = self.issue(*principal)
            context.load_cert_chain(str(cert_path), str(key_path))
            self._clients[principal] = context
        return context


def _route_config() -> route_pb2.RouteConfiguration:
    answer = rc.DirectResponseAction(
        status=200, body=base_pb2.DataSource(inline_string=APP_BODY.decode())
    )
    route = rc.Route(match=rc.RouteMatch(prefix="/"), direct_response=answer)
    host = rc.VirtualHost(name="app", domains=["*"], routes=[route])
    return route_pb2.RouteConfiguration(name="inbound|8080||", virtual_hosts=[host])


def _reporting(manager_filter: Any) -> dict[str, Any]:
    """isthmus's HCM plus a local reply mapper that copies the RBAC metadata into response
    headers. Both the RBAC denial and the direct response are local replies; the mapper
    changes neither status nor body."""
    manager = hcm.HttpConnectionManager()
    assert manager_filter.typed_config.Unpack(manager)
    mapper = hcm.ResponseMapper(
        filter=accesslog_pb2.AccessLogFilter(
            not_health_check_filter=accesslog_pb2.NotHealthCheckFilter()
        ),
        headers_to_add=[
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=name, value=f"%DYNAMIC_METADATA({key})%")
            )
            for name, key in REPORTED.items()
        ]
        + [
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=DETAILS_HEADER, value="%RESPONSE_CODE_DETAILS%")
            )
        ],
    )
    manager.local_reply_config.mappers.append(mapper)
    manager_filter.typed_config.CopyFrom(pack(manager))
    return message_to_dict(manager_filter)


def _tls_socket(pki: Pki) -> dict[str, Any]:
    cert_path, key_path = pki.server
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": _DOWNSTREAM_TLS,
            "common_tls_context": {
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": str(cert_path)},
                        "private_key": {"filename": str(key_path)},
                    }
                ],
                "validation_context": {"trusted_ca": {"filename": str(pki.root_path)}},
            },
            "require_client_certificate": False,
        },
    }


def inbound_bootstrap(
    chains: Mapping[int, Sequence[Any]], pki: Pki, namespace: str = "production"
) -> dict[str, Any]:
    """One `virtualInbound` listener: per port in `chains`, an address and a chain whose
    connection manager runs those HTTP RBAC filters first."""
    ports = sorted(chains)
    filter_chains = []
    for port in ports:
        manager = inline_connection_manager(
            f"inbound_{port}", _route_config(), list(chains[port]), peer_certificate=True
        )
        filter_chains.append(
            {
                "name": f"inbound_{port}",
                "filter_chain_match": {"destination_port": port},
                "transport_socket": _tls_socket(pki),
                "filters": [_reporting(manager)],
            }
        )

    def address(port: int) -> dict[str, Any]:
        return {"socket_address": {"address": LOOPBACK, "port_value": port}}

    listener = {
        "name": INBOUND_LISTENER,
        "address": address(ports[0]),
        "additional_addresses": [{"address": address(port)} for port in ports[1:]],
        "filter_chains": filter_chains,
    }
    identity = ProxyIdentity("app-0", namespace, LOOPBACK, {}, "default", "app", (8080,))
    runtime = sidecar_bootstrap(identity, "/nonexistent/xds.sock")["layered_runtime"]
    return {"static_resources": {"listeners": [listener]}, "layered_runtime": runtime}


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def reported(self) -> dict[str, str | None]:
        """Envoy's RBAC metadata as the response headers carry it (None where unset: Envoy
        adds no header for an empty value)."""
        return {name: self.headers.get(name) for name in [*REPORTED, DETAILS_HEADER]}


def send(
    context: ssl.SSLContext,
    port: int,
    *,
    method: str,
    target: str,
    host: str,
    headers: Sequence[tuple[str, str]] = (),
    source_ip: str = LOOPBACK,
) -> Answer:
    """One raw HTTP/1.1 request over TLS from `source_ip`, read up to its Content-Length."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append("Connection: close")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    raw = socket.create_connection(
        (LOOPBACK, port), timeout=SOCKET_TIMEOUT_S, source_address=(source_ip, 0)
    )
    with context.wrap_socket(raw) as connection:
        connection.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            received += _receive(connection)
        head, _, body = received.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        answer_headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            answer_headers[name.strip().lower()] = value.strip()
        length = int(answer_headers["content-length"])
        while len(body) < length:
            body += _receive(connection)
    return Answer(int(status_line.split(" ")[1]), answer_headers, body)


def _receive(connection: ssl.SSLSocket) -> bytes:
    chunk = connection.recv(65536)
    if not chunk:
        raise ConnectionError("Envoy closed the connection before a complete answer")
    return chunk
