"""The CA signs exactly the identity asked for, with Istio's rules, from a root it keeps."""

from __future__ import annotations

import base64
import stat
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from isthmus.ca import (
    CaError,
    CaOptions,
    CertificateAuthority,
    CsrRejected,
    parse_spiffe_id,
    spiffe_id,
)

TD = "cluster.local"
IDENTITY = "spiffe://cluster.local/ns/production/sa/inventory"
Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
E = TypeVar("E", bound=x509.ExtensionType)


# --- helpers -----------------------------------------------------------------------


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(key: Key, *names: x509.GeneralName) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def uri_csr(key: Key | None = None, uri: str = IDENTITY) -> str:
    return make_csr(key or ec_key(), x509.UniformResourceIdentifier(uri))


def load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def ca_cert(
    key: Key,
    name: str,
    issuer: x509.Certificate | None = None,
    issuer_key: Key | None = None,
    lifetime: timedelta = timedelta(days=30),
    is_ca: bool = True,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(issuer_key or key, hashes.SHA256())
    )


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def write_cacerts(
    directory: Path,
    signer: x509.Certificate,
    signer_key: Key,
    chain: list[x509.Certificate],
    root: x509.Certificate,
) -> Path:
    directory.mkdir()
    (directory / "ca-cert.pem").write_bytes(pem(signer))
    (directory / "ca-key.pem").write_bytes(key_pem(signer_key))
    (directory / "ca-key.pem").chmod(0o600)
    (directory / "cert-chain.pem").write_bytes(pem(*chain))
    (directory / "root-cert.pem").write_bytes(pem(root))
    return directory


def extension(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path_factory.mktemp("home") / "ca", TD)


# --- SPIFFE ids --------------------------------------------------------------------


def test_spiffe_id_round_trips() -> None:
    assert spiffe_id(TD, "production", "inventory") == IDENTITY
    assert parse_spiffe_id(IDENTITY) == (TD, "production", "inventory")


@pytest.mark.parametrize(
    "uri",
    [
        "spiffe://cluster.local/ns/production",
        "spiffe://cluster.local/ns/a/sa/b/extra",
        "https://cluster.local/ns/a/sa/b",
        "spiffe://Cluster.local/ns/a/sa/b",
        "spiffe://cluster.local/ns/../sa/b",
        "spiffe://cluster.local/ns/a/sa/b\n",
        "spiffe:///ns/a/sa/b",
    ],
)
def test_parse_spiffe_id_refuses(uri: str) -> None:
    with pytest.raises(ValueError):
        parse_spiffe_id(uri)


# --- self-signed root --------------------------------------------------------------


def test_self_signed_root_files_and_modes(tmp_path: Path) -> None:
    directory = tmp_path / "ca"
    authority = CertificateAuthority.load_or_create(directory, TD)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "ca-key.pem").stat().st_mode) == 0o600
    assert (directory / "root-cert.pem").read_text() == authority.root_pem
    assert authority.trust_domain == TD
    assert sorted(p.name for p in directory.iterdir()) == ["ca-key.pem", "root-cert.pem"]


def test_root_is_a_ca_named_after_the_trust_domain(ca: CertificateAuthority) -> None:
    root = load(ca.root_pem)
    assert root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == TD
    root.verify_directly_issued_by(root)
    constraints = extension(root, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = extension(root, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    extension(root, x509.SubjectKeyIdentifier)
    root_key = root.public_key()
    assert isinstance(root_key, rsa.RSAPublicKey)
    assert root_key.key_size == 2048
    lifetime = root.not_valid_after_utc - root.not_valid_before_utc
    assert timedelta(days=3650) <= lifetime <= timedelta(days=3650, minutes=2)


def test_root_is_reused_after_a_restart(tmp_path: Path) -> None:
    first = CertificateAuthority.load_or_create(tmp_path / "ca", TD)
    second = CertificateAuthority.load_or_create(tmp_path / "ca", TD)
    assert first.root_pem == second.root_pem
    leaf = load(second.sign_workload(uri_csr(), IDENTITY, None)[0])
    leaf.verify_directly_issued_by(load(first.root_pem))


def test_ecdsa_option_makes_a_p256_root(tmp_path: Path) -> None:
    authority = CertificateAuthority.load_or_create(
        tmp_path / "ca", TD, CaOptions(key_type="ECDSA")
    )
    root_key = load(authority.root_pem).public_key()
    assert isinstance(root_key, ec.EllipticCurvePublicKey)
    assert root_key.curve.name == "secp256r1"
    chain = authority.sign_workload(uri_csr(rsa_key()), IDENTITY, None)
    load(chain[0]).verify_directly_issued_by(load(authority.root_pem))


def test_loose_key_permissions_are_refused(tmp_path: Path) -> None:
    CertificateAuthority.load_or_create(tmp_path / "ca", TD)
    key = tmp_path / "ca" / "ca-key.pem"
    key.chmod(0o640)
    with pytest.raises(CaError, match=r"ca-key\.pem: permissions 0640 are looser than 0600"):
        CertificateAuthority.load_or_create(tmp_path / "ca", TD)


def test_missing_half_of_the_root_is_refused(tmp_path: Path) -> None:
    CertificateAuthority.load_or_create(tmp_path / "ca", TD)
    (tmp_path / "ca" / "root-cert.pem").unlink()
    with pytest.raises(CaError, match=r"root-cert\.pem: missing next to"):
        CertificateAuthority.load_or_create(tmp_path / "ca", TD)


def test_invalid_trust_domain_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CaError, match="not a valid SPIFFE trust domain"):
        CertificateAuthority.load_or_create(tmp_path / "ca", "bad/domain")


# --- signing -----------------------------------------------------------------------


@pytest.mark.parametrize("key", [rsa_key(), ec_key()], ids=["rsa", "ecdsa"])
def test_signed_chain_is_leaf_then_root(ca: CertificateAuthority, key: Key) -> None:
    chain = ca.sign_workload(uri_csr(key), IDENTITY, timedelta(hours=1))
    assert len(chain) == 2
    assert chain[-1] == ca.root_pem
    leaf = load(chain[0])
    leaf.verify_directly_issued_by(load(ca.root_pem))
    assert leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_leaf_extensions(ca: CertificateAuthority) -> None:
    leaf = load(ca.sign_workload(uri_csr(), IDENTITY, None)[0])
    assert leaf.subject == x509.Name([])
    san = extension(leaf, x509.SubjectAlternativeName)
    assert san.critical
    assert list(san.value) == [x509.UniformResourceIdentifier(IDENTITY)]
    constraints = extension(leaf, x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = extension(leaf, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.key_encipherment
    assert not usage.value.key_cert_sign
    eku = extension(leaf, x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    root_ski = extension(load(ca.root_pem), x509.SubjectKeyIdentifier).value
    aki = extension(leaf, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest
    assert 0 < leaf.serial_number < 2**128
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA256)


def test_serials_differ(ca: CertificateAuthority) -> None:
    csr = uri_csr()
    serials = {load(ca.sign_workload(csr, IDENTITY, None)[0]).serial_number for _ in range(5)}
    assert len(serials) == 5


def lifetime_of(ca: CertificateAuthority, ttl: timedelta | None) -> timedelta:
    leaf = load(ca.sign_workload(uri_csr(), IDENTITY, ttl)[0])
    now = datetime.now(UTC)
    assert now - timedelta(minutes=1, seconds=5) <= leaf.not_valid_before_utc <= now
    return leaf.not_valid_after_utc - leaf.not_valid_before_utc


@pytest.mark.parametrize(
    ("ttl", "expected"),
    [
        (timedelta(hours=2), timedelta(hours=2)),
        (timedelta(days=90), timedelta(days=90)),
        (None, timedelta(hours=24)),
        (timedelta(0), timedelta(hours=24)),
        (timedelta(seconds=-5), timedelta(hours=24)),
        (timedelta(seconds=10), timedelta(minutes=1)),
    ],
    ids=["asked", "max", "none", "zero", "negative", "below-min"],
)
def test_ttl(ca: CertificateAuthority, ttl: timedelta | None, expected: timedelta) -> None:
    assert lifetime_of(ca, ttl) == expected + timedelta(minutes=1)


def test_ttl_above_max_is_refused(ca: CertificateAuthority) -> None:
    message = "requested TTL 100d is greater than the max allowed TTL 90d"
    with pytest.raises(CsrRejected, match=message):
        ca.sign_workload(uri_csr(), IDENTITY, timedelta(days=100))


def test_ttl_options_are_honoured(tmp_path: Path) -> None:
    options = CaOptions(
        default_workload_ttl=timedelta(hours=1), max_workload_ttl=timedelta(hours=12)
    )
    authority = CertificateAuthority.load_or_create(tmp_path / "ca", TD, options)
    assert lifetime_of(authority, None) == timedelta(hours=1, minutes=1)
    with pytest.raises(CsrRejected, match="greater than the max allowed TTL 12h"):
        authority.sign_workload(uri_csr(), IDENTITY, timedelta(hours=13))


def test_inconsistent_options_are_refused() -> None:
    with pytest.raises(ValueError, match="min <= default <= max"):
        CaOptions(default_workload_ttl=timedelta(days=100))


def tampered(csr_pem: str) -> str:
    der = x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER)
    der = der[:-1] + bytes([der[-1] ^ 0x01])
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


@pytest.mark.parametrize(
    ("csr", "identity", "reason"),
    [
        (
            uri_csr(uri="spiffe://cluster.local/ns/production/sa/admin"),
            IDENTITY,
            "is not exactly",
        ),
        (
            make_csr(
                ec_key(),
                x509.UniformResourceIdentifier(IDENTITY),
                x509.DNSName("inventory.production.svc"),
            ),
            IDENTITY,
            "may hold only the workload's URI",
        ),
        (
            make_csr(
                ec_key(),
                x509.UniformResourceIdentifier(IDENTITY),
                x509.UniformResourceIdentifier("spiffe://cluster.local/ns/production/sa/other"),
            ),
            IDENTITY,
            "is not exactly",
        ),
        (make_csr(ec_key()), IDENTITY, "no SubjectAlternativeName"),
        (
            uri_csr(uri="spiffe://other.domain/ns/production/sa/inventory"),
            "spiffe://other.domain/ns/production/sa/inventory",
            "not in trust domain 'cluster.local'",
        ),
        (uri_csr(), "spiffe://cluster.local/ns/production", "is not spiffe://"),
        (tampered(uri_csr(rsa_key())), IDENTITY, "signature does not verify"),
        (tampered(uri_csr(ec_key())), IDENTITY, "signature does not verify"),
        (uri_csr(rsa_key(1024)), IDENTITY, "RSA key has 1024 bits"),
        (
            uri_csr(ec.generate_private_key(ec.SECP521R1())),
            IDENTITY,
            "EC key is on secp521r1",
        ),
        ("not a csr", IDENTITY, "not a PEM certificate request"),
    ],
    ids=[
        "foreign-uri",
        "extra-dns",
        "two-uris",
        "no-san",
        "other-trust-domain",
        "not-spiffe",
        "tampered-rsa",
        "tampered-ec",
        "rsa-1024",
        "p521",
        "garbage",
    ],
)
def test_refusals(ca: CertificateAuthority, csr: str, identity: str, reason: str) -> None:
    with pytest.raises(CsrRejected, match=reason):
        ca.sign_workload(csr, identity, None)


def test_csr_as_bytes_is_accepted(ca: CertificateAuthority) -> None:
    chain = ca.sign_workload(uri_csr().encode(), IDENTITY, None)
    load(chain[0]).verify_directly_issued_by(load(ca.root_pem))


# --- plugged-in CA (Istio's cacerts) ------------------------------------------------


class Pki:
    """A root and two intermediates; `int2` signs, as a cluster's istiod would."""

    def __init__(self, int2_lifetime: timedelta = timedelta(days=30)) -> None:
        self.root_key, self.int1_key, self.int2_key = ec_key(), ec_key(), ec_key()
        self.root = ca_cert(self.root_key, "root", lifetime=timedelta(days=365))
        self.int1 = ca_cert(self.int1_key, "int1", self.root, self.root_key)
        self.int2 = ca_cert(self.int2_key, "int2", self.int1, self.int1_key, int2_lifetime)


def test_plugged_chain_is_leaf_intermediates_root(tmp_path: Path) -> None:
    pki = Pki()
    cacerts = write_cacerts(
        tmp_path / "cacerts", pki.int2, pki.int2_key, [pki.int2, pki.int1, pki.root], pki.root
    )
    authority = CertificateAuthority.load_or_create(tmp_path / "ca", TD, plugged=cacerts)
    chain = [load(p) for p in authority.sign_workload(uri_csr(), IDENTITY, None)]
    assert chain[1:] == [pki.int2, pki.int1, pki.root]
    for child, issuer in pairwise(chain):
        child.verify_directly_issued_by(issuer)
    assert authority.root_pem == pem(pki.root).decode()
    assert not (tmp_path / "ca").exists()


def test_plugged_chain_without_ca_cert_and_root(tmp_path: Path) -> None:
    pki = Pki()
    cacerts = write_cacerts(tmp_path / "cacerts", pki.int2, pki.int2_key, [pki.int1], pki.root)
    authority = CertificateAuthority.load_or_create(tmp_path / "ca", TD, plugged=cacerts)
    chain = [load(p) for p in authority.sign_workload(uri_csr(), IDENTITY, None)]
    assert chain[1:] == [pki.int2, pki.int1, pki.root]


def test_plugged_root_signing_directly(tmp_path: Path) -> None:
    pki = Pki()
    cacerts = write_cacerts(tmp_path / "cacerts", pki.root, pki.root_key, [], pki.root)
    authority = CertificateAuthority.load_or_create(tmp_path / "ca", TD, plugged=cacerts)
    chain = [load(p) for p in authority.sign_workload(uri_csr(), IDENTITY, None)]
    assert chain[1:] == [pki.root]
    chain[0].verify_directly_issued_by(pki.root)


def test_plugged_leaf_never_outlives_its_signer(tmp_path: Path) -> None:
    pki = Pki(int2_lifetime=timedelta(days=2))
    cacerts = write_cacerts(
        tmp_path / "cacerts", pki.int2, pki.int2_key, [pki.int2, pki.int1], pki.root
    )
    authority = CertificateAuthority.load_or_create(tmp_path / "ca", TD, plugged=cacerts)
    leaf = load(authority.sign_workload(uri_csr(), IDENTITY, timedelta(days=10))[0])
    assert leaf.not_valid_after_utc == pki.int2.not_valid_after_utc.replace(microsecond=0)


def test_plugged_mismatched_key_is_refused(tmp_path: Path) -> None:
    pki = Pki()
    cacerts = write_cacerts(tmp_path / "cacerts", pki.int2, pki.int1_key, [pki.int1], pki.root)
    with pytest.raises(CaError, match=r"ca-key\.pem: the private key does not match"):
        CertificateAuthority.load_or_create(tmp_path / "ca", TD, plugged=cacerts)


def test_plugged_broken_chain_is_refused(tmp_path: Path) -> None:
    pki, other = Pki(), Pki()
    cacerts = write_cacerts(tmp_path / "cacerts", pki.int2, pki.int2_key, [other.int1], pki.root)
    with pytest.raises(CaError, match=r"cert-chain\.pem: 'CN=int2' is not issued by 'CN=int1'"):
        CertificateAuthority.load_or_create(tmp_path / "ca", TD, plugged=cacerts)


def test_plugged_chain_to_another_root_is_refused(tmp_path: Path) -> None:
    pki, other = Pki(), Pki()
    cacerts = write_cacerts(
        tmp_path / "cacerts", pki.int2, pki.int2_key, [pki.int2, pki.int1], other.root
    )
    with pytest.raises(CaError, match=r"cert-chain\.pem: 'CN=int1' is not issued by 'CN=root'"):
        CertificateAuthority.load_or_create(tmp_path / "ca", TD, plugged=cacerts)


def test_plugged_ca_cert_must_be_a_ca(tmp_path: Path) -> None:
    pki = Pki()
    leafish = ca_cert(pki.int2_key, "int2", pki.int1, pki.int1_key, is_ca=False)
    cacerts = write_cacerts(tmp_path / "cacerts", leafish, pki.int2_key, [pki.int1], pki.root)
    with pytest.raises(CaError, match=r"ca-cert\.pem: not a CA certificate"):
        CertificateAuthority.load_or_create(tmp_path / "ca", TD, plugged=cacerts)


def test_plugged_expired_ca_cert_is_refused(tmp_path: Path) -> None:
    pki = Pki()
    expired = ca_cert(pki.int2_key, "int2", pki.int1, pki.int1_key, timedelta(minutes=-1))
    cacerts = write_cacerts(tmp_path / "cacerts", expired, pki.int2_key, [pki.int1], pki.root)
    with pytest.raises(CaError, match=r"ca-cert\.pem: 'CN=int2' expired at"):
        CertificateAuthority.load_or_create(tmp_path / "ca", TD, plugged=cacerts)


def test_plugged_root_must_be_self_signed(tmp_path: Path) -> None:
    pki = Pki()
    cacerts = write_cacerts(tmp_path / "cacerts", pki.int2, pki.int2_key, [], pki.int1)
    with pytest.raises(CaError, match=r"root-cert\.pem: 'CN=int1' is not self-signed"):
        CertificateAuthority.load_or_create(tmp_path / "ca", TD, plugged=cacerts)


def test_plugged_missing_file_is_named(tmp_path: Path) -> None:
    pki = Pki()
    cacerts = write_cacerts(tmp_path / "cacerts", pki.int2, pki.int2_key, [pki.int1], pki.root)
    (cacerts / "cert-chain.pem").unlink()
    with pytest.raises(CaError, match=r"cert-chain\.pem: missing"):
        CertificateAuthority.load_or_create(tmp_path / "ca", TD, plugged=cacerts)


def test_plugged_loose_key_permissions_are_refused(tmp_path: Path) -> None:
    pki = Pki()
    cacerts = write_cacerts(tmp_path / "cacerts", pki.int2, pki.int2_key, [pki.int1], pki.root)
    (cacerts / "ca-key.pem").chmod(0o644)
    with pytest.raises(CaError, match=r"ca-key\.pem: permissions 0644"):
        CertificateAuthority.load_or_create(tmp_path / "ca", TD, plugged=cacerts)
