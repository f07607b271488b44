"""DestinationRule `tls` SIMPLE and MUTUAL against a real TLS server, through a real
sidecar configured by isthmusd: the app speaks plain HTTP, the sidecar originates TLS
with the rule's files, checks the server's certificate and, for MUTUAL, presents its own.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from isthmus.testing.daemon import wait_for
from isthmus.testing.mesh import NAMESPACE, Mesh
from isthmus.testing.ports import free_port

HOST = f"vault.{NAMESPACE}.svc.cluster.local"
SERVER_NAME = "vault.example.internal"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    dns: str | None = None,
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer[0].subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for SERVER_NAME and a client certificate."""
    directory = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("test-ca", ca_key, None)
    _write(directory / "ca", ca, ca_key)
    for name, dns in (("server", SERVER_NAME), ("client", None)):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(directory / name, _issue(f"{name}.test", key, (ca, ca_key), dns), key)
    return directory


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else {}
        subject = dict(x[0] for x in (peer or {}).get("subject", ()))
        body = json.dumps({"client": subject.get("commonName", "")}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        # The load helper reports this header: which client certificate the server saw.
        self.send_header("x-upstream", "vault:" + subject.get("commonName", "none"))
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def tls_server(pki: Path) -> Iterator[int]:
    """A TLS server that asks for a client certificate (optional) signed by the CA."""
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "server.crt", pki / "server.key")
    context.load_verify_locations(pki / "ca.crt")
    context.verify_mode = ssl.CERT_OPTIONAL
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield port
    server.shutdown()
    server.server_close()


def _registered(mesh: Mesh, port: int, tls: str) -> None:
    mesh.apply(
        f"""
apiVersion: v1
kind: Service
metadata: {{name: vault, namespace: {NAMESPACE}}}
spec:
  selector: {{app: vault}}
  ports: [{{name: http, port: 8443}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: vault-1, namespace: {NAMESPACE}}}
spec:
  address: 127.0.0.1
  labels: {{app: vault}}
  ports: {{http: {port}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: vault, namespace: {NAMESPACE}}}
spec:
  host: {HOST}
  trafficPolicy:
    tls: {tls}
"""
    )


def _answers(mesh: Mesh) -> tuple[int, str | None]:
    """The status, and the client certificate the TLS server saw ("vault:none": none)."""
    sample = mesh.get(f"{HOST}:8443").samples[0]
    return sample.status, sample.upstream


def test_simple_tls_checks_the_server_against_the_rules_ca_and_names(
    mesh: Mesh, pki: Path, tls_server: int
) -> None:
    _registered(
        mesh,
        tls_server,
        f"{{mode: SIMPLE, caCertificates: {pki / 'ca.crt'}, subjectAltNames: [{SERVER_NAME}]}}",
    )
    wait_for(
        lambda: _answers(mesh) == (200, "vault:none"), timeout=15, what="TLS through the sidecar"
    )

    _registered(
        mesh,
        tls_server,
        f"{{mode: SIMPLE, caCertificates: {pki / 'ca.crt'}, subjectAltNames: [other.example]}}",
    )
    wait_for(lambda: _answers(mesh)[0] == 503, timeout=15, what="a refused server name")


def test_mutual_tls_presents_the_rules_client_certificate(
    mesh: Mesh, pki: Path, tls_server: int
) -> None:
    _registered(
        mesh,
        tls_server,
        f"{{mode: MUTUAL, caCertificates: {pki / 'ca.crt'}, "
        f"clientCertificate: {pki / 'client.crt'}, privateKey: {pki / 'client.key'}}}",
    )
    wait_for(
        lambda: _answers(mesh) == (200, "vault:client.test"), timeout=15, what="mTLS by the rule"
    )
