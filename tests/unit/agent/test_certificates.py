"""The workload key and CSR are what Istio's agent sends; a CA answer is checked before use."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from isthmus.agent.certificates import (
    CaClient,
    CaRequestFailed,
    KeyType,
    WorkloadCertificate,
    certificate_request,
    new_private_key,
    spiffe_identity,
)
from isthmus.ca import CertificateAuthority

IDENTITY = "spiffe://cluster.local/ns/shop/sa/web"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # A unix socket path must fit in 107 bytes.
    with tempfile.TemporaryDirectory(prefix="isc-") as directory:
        yield Path(directory)


@pytest.mark.parametrize("key_type", ["RSA", "ECDSA"])
def test_csr_has_an_empty_subject_and_only_the_spiffe_uri(key_type: KeyType) -> None:
    key = new_private_key(key_type)
    csr = x509.load_pem_x509_csr(certificate_request(key, IDENTITY).encode())
    assert csr.is_signature_valid
    assert list(csr.subject) == []
    (extension,) = csr.extensions
    assert extension.critical
    assert isinstance(extension.value, x509.SubjectAlternativeName)
    assert list(extension.value) == [x509.UniformResourceIdentifier(IDENTITY)]


def test_key_types() -> None:
    rsa_key = new_private_key("RSA")
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    assert rsa_key.key_size == 2048
    ec_key = new_private_key("ECDSA")
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
    assert ec_key.curve.name == "secp256r1"
    with pytest.raises(ValueError, match="RSA or ECDSA"):
        new_private_key("DSA")  # type: ignore[arg-type]


def test_spiffe_identity_as_istio_names_it() -> None:
    assert spiffe_identity("cluster.local", "shop", "web") == IDENTITY
    with pytest.raises(ValueError, match=r"trust domain 'Cluster\.Local'"):
        spiffe_identity("Cluster.Local", "shop", "web")
    with pytest.raises(ValueError, match="service account 'we/b'"):
        spiffe_identity("cluster.local", "shop", "we/b")


@pytest.mark.parametrize("key_type", ["RSA", "ECDSA"])
def test_signed_chain_becomes_a_workload_certificate(
    authority: CertificateAuthority, key_type: KeyType
) -> None:
    key = new_private_key(key_type)
    chain = authority.sign_workload(
        certificate_request(key, IDENTITY), IDENTITY, timedelta(hours=1)
    )
    certificate = WorkloadCertificate.from_chain(key, IDENTITY, chain)
    leaf = x509.load_pem_x509_certificate(certificate.certificate_chain)
    assert certificate.chain_pem == (chain[0],)
    assert certificate.roots_pem == (authority.root_pem,)
    assert certificate.trust_bundle == authority.root_pem.encode()
    assert certificate.serial == leaf.serial_number
    assert certificate.serial_hex == f"{leaf.serial_number:X}"
    assert certificate.not_after - certificate.not_before == timedelta(hours=1, minutes=1)
    assert b"PRIVATE KEY" in certificate.key_pem
    assert "PRIVATE" not in repr(certificate)


def test_an_answer_for_another_key_or_identity_is_refused(
    authority: CertificateAuthority,
) -> None:
    key = new_private_key("ECDSA")
    chain = authority.sign_workload(certificate_request(key, IDENTITY), IDENTITY, None)
    with pytest.raises(CaRequestFailed, match="different key"):
        WorkloadCertificate.from_chain(new_private_key("ECDSA"), IDENTITY, chain)
    other = "spiffe://cluster.local/ns/shop/sa/admin"
    with pytest.raises(CaRequestFailed, match=r"for \['spiffe://cluster.local/ns/shop/sa/web'\]"):
        WorkloadCertificate.from_chain(key, other, chain)
    with pytest.raises(CaRequestFailed, match="expected the leaf and the root"):
        WorkloadCertificate.from_chain(key, IDENTITY, chain[:1])
    with pytest.raises(CaRequestFailed, match="unreadable certificate"):
        WorkloadCertificate.from_chain(key, IDENTITY, ["not a certificate", chain[-1]])


async def test_client_without_a_readable_token_fails_clearly(short_dir: Path) -> None:
    client = CaClient(str(short_dir / "ca.sock"), short_dir / "token")
    csr = certificate_request(new_private_key("ECDSA"), IDENTITY)
    with pytest.raises(CaRequestFailed, match=r"token file .*/token: No such file"):
        await client.sign(csr, timedelta(hours=1))
    (short_dir / "token").write_text("\n")
    with pytest.raises(CaRequestFailed, match="is empty"):
        await client.sign(csr, timedelta(hours=1))
    await client.close()


async def test_client_reports_an_unreachable_ca(short_dir: Path) -> None:
    (short_dir / "token").write_text("v1.token")
    client = CaClient(str(short_dir / "ca.sock"), short_dir / "token", timeout=5)
    csr = certificate_request(new_private_key("ECDSA"), IDENTITY)
    try:
        with pytest.raises(CaRequestFailed, match=r"CA at .*/ca.sock: UNAVAILABLE: "):
            await client.sign(csr, timedelta(hours=1))
    finally:
        await client.close()
