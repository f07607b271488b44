"""A mesh with Istio's plugged-in CA (an intermediate under the organisation's root, as
`cacerts`) and its own trust domain: sidecars get certificates chained to that root for
spiffe://example.org/... identities, mTLS works, and AuthorizationPolicies written for
cluster.local principals still match (Istio's trust-domain rewrite)."""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import E2EMesh, _need_root
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from test_e2e_security import NS, deployment, fetch, until

pytestmark = pytest.mark.root
TRUST_DOMAIN = "example.org"


def _ca(
    name: str, key: rsa.RSAPrivateKey, issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None
) -> x509.Certificate:
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)])
    signer = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    return builder.sign(signer, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def plugged() -> Iterator[tuple[E2EMesh, x509.Certificate]]:
    _need_root()
    home = Path(tempfile.mkdtemp(prefix="ie2e-ca-", dir="/tmp"))
    cacerts = home.parent / f"{home.name}-cacerts"
    cacerts.mkdir(mode=0o700)
    root_key = rsa.generate_private_key(65537, 2048)
    root = _ca("Example Org Root", root_key, None)
    intermediate_key = rsa.generate_private_key(65537, 2048)
    intermediate = _ca("Example Org Mesh", intermediate_key, (root, root_key))
    (cacerts / "root-cert.pem").write_bytes(_pem(root))
    (cacerts / "ca-cert.pem").write_bytes(_pem(intermediate))
    (cacerts / "cert-chain.pem").write_bytes(_pem(intermediate) + _pem(root))
    key = cacerts / "ca-key.pem"
    key.touch(mode=0o600)
    key.write_bytes(
        intermediate_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    mesh = E2EMesh(home, "e2eca" + secrets.token_hex(2))
    try:
        mesh.cli(
            *("up", "--mesh", mesh.name, "--no-ingress-gateway", "--cacerts", str(cacerts)),
            *("--trust-domain", TRUST_DOMAIN),
        )
        yield mesh, root
    finally:
        mesh.cli("down", check=False)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(cacerts, ignore_errors=True)


def test_plugged_in_ca_and_trust_domain(plugged: tuple[E2EMesh, x509.Certificate]) -> None:
    mesh, root = plugged
    mesh.apply(deployment("vault") + deployment("teller"))
    mesh.wait_pods({"vault": 1, "teller": 1})
    vault, teller = mesh.pod("vault"), mesh.pod("teller")

    answer = fetch(mesh, teller, "http://vault.production:8080/secrets")
    assert answer["status"] == 200, answer
    assert f"URI=spiffe://{TRUST_DOMAIN}/ns/{NS}/sa/teller" in answer["body"]["peer"]
    table = mesh.cli("proxy-config", "secret", vault["name"], "-n", NS).stdout
    rows = {r[0]: r for r in (re.split(r"\s{2,}", line) for line in table.splitlines()[1:])}
    assert rows["default"][5] == f"spiffe://{TRUST_DOMAIN}/ns/{NS}/sa/vault", table
    assert rows["ROOTCA"][4] == format(root.serial_number, "x"), table

    # A policy written for cluster.local principals matches the mesh's own trust domain.
    mesh.apply(
        f"""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: vault, namespace: {NS}}}
spec:
  selector: {{matchLabels: {{app: vault}}}}
  rules:
  - from:
    - source: {{principals: [cluster.local/ns/{NS}/sa/teller]}}
    to:
    - operation: {{methods: [GET]}}
"""
    )
    until(
        "POST is denied",
        lambda: fetch(mesh, teller, "http://vault.production:8080/s", "POST")["status"] == 403,
    )
    assert fetch(mesh, teller, "http://vault.production:8080/secrets")["status"] == 200
