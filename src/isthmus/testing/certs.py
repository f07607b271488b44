"""Certificates and keys for tests, made with `cryptography`: a CA, server certificates it
signs (or self-signed ones) of any key type, expired ones, and the Secret YAML a
Gateway's `credentialName` names (kubernetes.io/tls or Istio's generic form).

Nothing here is a real secret; the keys are fresh per process and never written to disk
except by a test that asks to.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

__all__ = ["KeyPair", "Pki", "b64", "make_key", "secret_yaml"]

_ONE_DAY = datetime.timedelta(days=1)


def make_key(kind: str = "ec256") -> CertificateIssuerPrivateKeyTypes:
    """A fresh private key: rsaBITS (`rsa2048`), ec256 / ec384 / ec521 / secp256k1, ed25519."""
    if kind.startswith("rsa"):
        return rsa.generate_private_key(65537, int(kind[3:]))
    curves: Mapping[str, ec.EllipticCurve] = {
        "ec256": ec.SECP256R1(),
        "ec384": ec.SECP384R1(),
        "ec521": ec.SECP521R1(),
        "secp256k1": ec.SECP256K1(),
    }
    if kind in curves:
        return ec.generate_private_key(curves[kind])
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key kind {kind}")


def _pem_key(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _hash_for(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate (chain) and the PEM private key of its first certificate."""

    certificate: bytes
    key: bytes

    def encrypted_key(self, password: bytes = b"secret") -> bytes:
        """The key as PKCS#8 encrypted with `password`."""
        loaded = serialization.load_pem_private_key(self.key, None)
        return loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )


class Pki:
    """A self-signed CA and the certificates it signs."""

    def __init__(self, name: str = "isthmus test CA") -> None:
        self.ca_key = make_key("ec256")
        self._crl: bytes | None = None
        now = datetime.datetime.now(datetime.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.ca = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _ONE_DAY)
            .not_valid_after(now + 30 * _ONE_DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )

    @property
    def ca_pem(self) -> bytes:
        return self.ca.public_bytes(serialization.Encoding.PEM)

    def crl(self) -> bytes:
        """A PEM revocation list of this CA, revoking nothing (fixed for one Pki)."""
        if self._crl is None:
            now = datetime.datetime.now(datetime.UTC)
            self._crl = (
                x509.CertificateRevocationListBuilder()
                .issuer_name(self.ca.subject)
                .last_update(now - _ONE_DAY)
                .next_update(now + 7 * _ONE_DAY)
                .sign(self.ca_key, hashes.SHA256())
                .public_bytes(serialization.Encoding.PEM)
            )
        return self._crl

    def server(
        self,
        host: str = "bookinfo.example.com",
        key_kind: str = "ec256",
        *,
        self_signed: bool = False,
        valid_from: datetime.datetime | None = None,
        valid_until: datetime.datetime | None = None,
    ) -> KeyPair:
        """A server certificate for `host` (with the CA appended: a chain), or self-signed."""
        key = make_key(key_kind)
        now = datetime.datetime.now(datetime.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
        issuer_key: CertificateIssuerPrivateKeyTypes = key if self_signed else self.ca_key
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject if self_signed else self.ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid_from or now - _ONE_DAY)
            .not_valid_after(valid_until or now + 7 * _ONE_DAY)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(issuer_key, _hash_for(issuer_key))
        )
        chain = certificate.public_bytes(serialization.Encoding.PEM)
        if not self_signed:
            chain += self.ca_pem
        return KeyPair(chain, _pem_key(key))


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def secret_yaml(
    name: str,
    data: Mapping[str, bytes],
    *,
    namespace: str = "istio-system",
    secret_type: str | None = "kubernetes.io/tls",
    string_data: Mapping[str, str] | None = None,
    immutable: bool | None = None,
) -> str:
    """One Secret document: `data` base64-encoded as Kubernetes wants it."""
    lines = ["apiVersion: v1", "kind: Secret", "metadata:", f"  name: {name}"]
    lines.append(f"  namespace: {namespace}")
    if secret_type is not None:
        lines.append(f"type: {secret_type}")
    if immutable is not None:
        lines.append(f"immutable: {'true' if immutable else 'false'}")
    if data:
        lines.append("data:")
        lines.extend(f"  {key}: '{b64(value)}'" for key, value in data.items())
    if string_data:
        lines.append("stringData:")
        for key, text in string_data.items():
            lines.append(f"  {key}: |")
            lines.extend(f"    {line}" for line in text.splitlines())
    return "\n".join(lines) + "\n"
