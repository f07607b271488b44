"""The workload's key and CSR, the CA client that turns them into a certificate, and the
certificate as a value.

As Istio's agent does: the key is made in memory, never written to disk, and leaves the
process only as the SDS secret Envoy uses; the CSR has an empty subject and the pod's
SPIFFE id as its only SAN; the CA is Istio's IstioCertificateService on isthmusd's unix
socket, and the caller proves who it is with the pod's bearer token, read from its file
on every request because the runtime may replace it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from isthmus.certificate_service import (
    AUTHORIZATION,
    BEARER,
    METHOD_PATH,
    IstioCertificateRequest,
    IstioCertificateResponse,
)
from isthmus.model.identity import spiffe_uri

KeyType = Literal["RSA", "ECDSA"]
KEY_TYPES: tuple[KeyType, ...] = ("RSA", "ECDSA")
DEFAULT_TRUST_DOMAIN = "cluster.local"
RSA_KEY_BITS = 2048
DEFAULT_CA_TIMEOUT_S = 10.0

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

# The same rules the CA applies, so a name it would refuse is refused at startup.
_TRUST_DOMAIN_RE = re.compile(r"[a-z0-9._-]+")
_SEGMENT_RE = re.compile(r"[A-Za-z0-9._-]+")


class CaRequestFailed(RuntimeError):
    """The CA could not be asked, refused, or answered with an unusable chain."""


def check_trust_domain(trust_domain: str) -> None:
    """Raise ValueError unless `trust_domain` can be a SPIFFE trust domain."""
    if not _TRUST_DOMAIN_RE.fullmatch(trust_domain) or trust_domain in (".", ".."):
        raise ValueError(
            f"trust domain {trust_domain!r} must be lower-case letters, digits, '.', '_', '-'"
        )


def spiffe_identity(trust_domain: str, namespace: str, service_account: str) -> str:
    """The pod's identity as Istio names it: spiffe://<td>/ns/<namespace>/sa/<account>."""
    check_trust_domain(trust_domain)
    for what, value in (("namespace", namespace), ("service account", service_account)):
        if not _SEGMENT_RE.fullmatch(value) or value in (".", ".."):
            raise ValueError(f"{what} {value!r} can not be part of a SPIFFE id")
    return spiffe_uri(trust_domain, namespace, service_account)


def new_private_key(key_type: KeyType = "RSA") -> PrivateKey:
    """A fresh workload key: RSA 2048 (Istio's default) or ECDSA P-256."""
    if key_type == "ECDSA":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    raise ValueError(f"key type must be RSA or ECDSA, not {key_type!r}")


def certificate_request(key: PrivateKey, identity: str) -> str:
    """A PEM CSR with an empty subject and `identity` as its only (critical) SAN."""
    san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)])
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(san, critical=True)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _private_key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _spki(public_key: Any) -> bytes:
    der: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _uri_sans(certificate: x509.Certificate) -> list[str]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


@dataclass(frozen=True)
class WorkloadCertificate:
    """A signed workload certificate with its key; what the SDS server hands to Envoy."""

    identity: str
    chain_pem: tuple[str, ...]  # the leaf first, then intermediates; no root
    roots_pem: tuple[str, ...]
    serial: int
    not_before: datetime
    not_after: datetime
    key_pem: bytes = field(repr=False)

    @classmethod
    def from_chain(
        cls, key: PrivateKey, identity: str, cert_chain: Sequence[str]
    ) -> WorkloadCertificate:
        """Check Istio's cert_chain (leaf first, root last) against what was asked for."""
        if len(cert_chain) < 2:
            raise CaRequestFailed(
                f"CA answered {len(cert_chain)} certificate(s); expected the leaf and the root"
            )
        try:
            leaf = x509.load_pem_x509_certificate(cert_chain[0].encode("ascii"))
            for pem in cert_chain[1:]:
                x509.load_pem_x509_certificate(pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as error:
            raise CaRequestFailed(f"CA answered an unreadable certificate: {error}") from None
        if _spki(leaf.public_key()) != _spki(key.public_key()):
            raise CaRequestFailed("CA answered a certificate for a different key")
        sans = _uri_sans(leaf)
        if sans != [identity]:
            raise CaRequestFailed(f"CA answered a certificate for {sans}, not [{identity!r}]")
        return cls(
            identity=identity,
            chain_pem=tuple(cert_chain[:-1]),
            roots_pem=(cert_chain[-1],),
            serial=leaf.serial_number,
            not_before=leaf.not_valid_before_utc,
            not_after=leaf.not_valid_after_utc,
            key_pem=_private_key_pem(key),
        )

    @property
    def certificate_chain(self) -> bytes:
        """The chain Envoy presents: leaf then intermediates, concatenated PEM."""
        return "".join(_with_newline(pem) for pem in self.chain_pem).encode("ascii")

    @property
    def trust_bundle(self) -> bytes:
        """The roots Envoy verifies peers against, concatenated PEM."""
        return "".join(_with_newline(pem) for pem in self.roots_pem).encode("ascii")

    @property
    def serial_hex(self) -> str:
        """The serial as `openssl x509 -serial` prints it."""
        return f"{self.serial:X}"


def _with_newline(pem: str) -> str:
    return pem if pem.endswith("\n") else pem + "\n"


class CaClient:
    """Calls IstioCertificateService/CreateCertificate on the CA's unix socket."""

    def __init__(
        self, socket_path: str, token_file: Path, *, timeout: float = DEFAULT_CA_TIMEOUT_S
    ) -> None:
        self.socket_path = socket_path
        self.token_file = token_file
        self._timeout = timeout
        self._channel: grpc.aio.Channel | None = None

    def _token(self) -> str:
        try:
            token = self.token_file.read_text().strip()
        except OSError as error:
            raise CaRequestFailed(
                f"token file {self.token_file}: {error.strerror or error}"
            ) from None
        if not token:
            raise CaRequestFailed(f"token file {self.token_file} is empty")
        return token

    async def sign(self, csr_pem: str, ttl: timedelta) -> list[str]:
        """Istio's cert_chain for `csr_pem`: leaf first, root last."""
        token = self._token()
        if self._channel is None:  # made here: a grpc.aio channel belongs to the running loop
            self._channel = grpc.aio.insecure_channel(f"unix:{self.socket_path}")
        call = self._channel.unary_unary(
            METHOD_PATH,
            request_serializer=IstioCertificateRequest.SerializeToString,
            response_deserializer=IstioCertificateResponse.FromString,
        )
        request = IstioCertificateRequest(csr=csr_pem, validity_duration=int(ttl.total_seconds()))
        try:
            response = await call(
                request, timeout=self._timeout, metadata=((AUTHORIZATION, BEARER + token),)
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE:
                # A new channel connects on the next attempt; the old one would wait out
                # gRPC's own reconnect backoff (up to 120 s) after the CA comes back.
                await self.close()
            raise CaRequestFailed(
                f"CA at {self.socket_path}: {error.code().name}: {error.details()}"
            ) from None
        return list(response.cert_chain)

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()
