"""The mesh's certificate authority: signs SPIFFE workload certificates from CSRs.

The signing material is either a self-signed root that isthmus creates once and keeps
(as istiod's self-signed CA) or Istio's plugged-in `cacerts` files used in place. The
rules for what gets signed, and the shape of the answer, follow istiod's CA server.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from isthmus.model.identity import spiffe_uri

ROOT_CERT = "root-cert.pem"
CA_CERT = "ca-cert.pem"
CA_KEY = "ca-key.pem"
CERT_CHAIN = "cert-chain.pem"

# Certificates start one minute in the past so that a peer whose clock is slightly
# behind still accepts them.
CLOCK_SKEW = timedelta(minutes=1)
MAX_CSR_BYTES = 64 * 1024
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
ALLOWED_CURVES = frozenset({"secp256r1", "secp384r1"})

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_TRUST_DOMAIN = r"[a-z0-9._-]+"
_SEGMENT = r"[A-Za-z0-9._-]+"
_SPIFFE_RE = re.compile(rf"spiffe://({_TRUST_DOMAIN})/ns/({_SEGMENT})/sa/({_SEGMENT})")
_TRUST_DOMAIN_RE = re.compile(_TRUST_DOMAIN)


class CaError(Exception):
    """The CA can not be loaded or can not sign; the message is one line naming the cause."""


class CsrRejected(CaError):
    """A signing request broke a rule; the reason is meant for the caller's log."""


@dataclass(frozen=True)
class CaOptions:
    """Key type and lifetimes; the defaults are istiod's."""

    key_type: Literal["RSA", "ECDSA"] = "RSA"
    root_ttl: timedelta = timedelta(days=3650)
    default_workload_ttl: timedelta = timedelta(hours=24)
    max_workload_ttl: timedelta = timedelta(days=90)
    min_workload_ttl: timedelta = timedelta(minutes=1)

    def __post_init__(self) -> None:
        if self.key_type not in ("RSA", "ECDSA"):
            raise ValueError(f"key_type must be RSA or ECDSA, not {self.key_type!r}")
        if self.root_ttl <= timedelta(0) or self.min_workload_ttl <= timedelta(0):
            raise ValueError("root_ttl and min_workload_ttl must be positive")
        if not self.min_workload_ttl <= self.default_workload_ttl <= self.max_workload_ttl:
            raise ValueError("workload TTLs must satisfy min <= default <= max")


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    """The workload identity Istio gives a service account: spiffe://td/ns/<ns>/sa/<sa>."""
    uri = spiffe_uri(trust_domain, namespace, service_account)
    parse_spiffe_id(uri)
    return uri


def parse_spiffe_id(uri: str) -> tuple[str, str, str]:
    """Split a workload SPIFFE id into (trust domain, namespace, service account)."""
    match = _SPIFFE_RE.fullmatch(uri)
    if match is None:
        raise ValueError(
            f"{uri!r} is not spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>"
        )
    trust_domain, namespace, account = match.groups()
    for part in (trust_domain, namespace, account):
        if part in (".", ".."):
            raise ValueError(f"{uri!r}: {part!r} is not allowed in a SPIFFE id")
    return trust_domain, namespace, account


def format_ttl(ttl: timedelta) -> str:
    """Durations in refusals as Istio writes them: 90d, 1d12h, 30m."""
    seconds = int(ttl.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or f"{ttl.total_seconds():g}s"


# --- files -------------------------------------------------------------------------


def check_private(path: Path) -> None:
    """Refuse a secret that others could already have read: its trust is gone."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise CaError(
            f"{path}: permissions {mode:04o} are looser than 0600 (run: chmod 600 {path})"
        )


def read_private_file(path: Path) -> bytes:
    """Read a secret after checking that only its owner can read it."""
    try:
        check_private(path)
        return path.read_bytes()
    except FileNotFoundError:
        raise CaError(f"{path}: missing") from None
    except OSError as exc:
        raise CaError(f"{path}: can not read: {exc.strerror}") from None


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Write atomically; the file is created with `mode`, so a key is never readable by
    others, not even between creation and a later chmod."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CaError(f"{path}: missing") from None
    except OSError as exc:
        raise CaError(f"{path}: can not read: {exc.strerror}") from None


def _read_certs(path: Path, allow_empty: bool = False) -> list[x509.Certificate]:
    data = _read_bytes(path)
    if allow_empty and not data.strip():
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CaError(f"{path}: holds no valid PEM certificate") from None


def _read_cert(path: Path) -> x509.Certificate:
    certs = _read_certs(path)
    if len(certs) != 1:
        raise CaError(f"{path}: expected one certificate, found {len(certs)}")
    return certs[0]


def _read_key(path: Path) -> SigningKey:
    data = read_private_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CaError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CaError(f"{path}: only RSA and ECDSA keys can sign, not {type(key).__name__}")
    return key


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _describe(cert: x509.Certificate) -> str:
    return repr(cert.subject.rfc4514_string() or "(empty subject)")


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _serial() -> int:
    """A random positive 128-bit serial, as RFC 5280 and the CA/B forum ask."""
    return secrets.randbelow(2**128 - 1) + 1


# --- checks of loaded material -----------------------------------------------------


def _spki(key: x509.Certificate | SigningKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_key_matches(
    key: SigningKey, key_path: Path, cert: x509.Certificate, cert_path: Path
) -> None:
    if _spki(key) != _spki(cert):
        raise CaError(f"{key_path}: the private key does not match the certificate {cert_path}")


def _check_is_ca(cert: x509.Certificate, path: Path) -> None:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise CaError(f"{path}: not a CA certificate (no BasicConstraints)") from None
    if not constraints.ca:
        raise CaError(f"{path}: not a CA certificate (BasicConstraints CA=false)")


def _check_current(cert: x509.Certificate, path: Path, now: datetime) -> None:
    if cert.not_valid_after_utc <= now:
        raise CaError(
            f"{path}: {_describe(cert)} expired at {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%SZ}"
        )


def _check_issued(child: x509.Certificate, issuer: x509.Certificate, path: Path) -> None:
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        raise CaError(f"{path}: {_describe(child)} is not issued by {_describe(issuer)}") from None


def _check_root(root: x509.Certificate, path: Path, now: datetime) -> None:
    _check_is_ca(root, path)
    try:
        root.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        raise CaError(f"{path}: {_describe(root)} is not self-signed") from None
    _check_current(root, path, now)


# --- self-signed root --------------------------------------------------------------


def _new_key(key_type: Literal["RSA", "ECDSA"]) -> SigningKey:
    if key_type == "ECDSA":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _self_signed_root(key: SigningKey, trust_domain: str, ttl: timedelta) -> x509.Certificate:
    """A root like istiod's: the trust domain as organization, valid for `ttl`."""
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain)])
    now = _now()
    usage = x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + ttl)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _ensure_private_dir(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        return
    directory.chmod(0o700)


def _load_or_create_root(
    directory: Path, trust_domain: str, options: CaOptions
) -> tuple[x509.Certificate, SigningKey]:
    """The same root on every start; created only when neither file exists yet."""
    _ensure_private_dir(directory)
    cert_path, key_path = directory / ROOT_CERT, directory / CA_KEY
    if not cert_path.exists() and not key_path.exists():
        key = _new_key(options.key_type)
        root = _self_signed_root(key, trust_domain, options.root_ttl)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_file(key_path, key_pem, 0o600)
        write_file(cert_path, _pem(root).encode("ascii"), 0o644)
        return root, key
    for present, absent in ((cert_path, key_path), (key_path, cert_path)):
        if not absent.exists():
            raise CaError(f"{absent}: missing next to {present} (remove both to create a new root)")
    key = _read_key(key_path)
    root = _read_cert(cert_path)
    _check_key_matches(key, key_path, root, cert_path)
    _check_root(root, cert_path, _now())
    return root, key


# --- plugged-in CA (Istio's cacerts) ------------------------------------------------


@dataclass(frozen=True)
class _Material:
    signer: x509.Certificate
    key: SigningKey
    between: tuple[x509.Certificate, ...]  # from the signer up to, without, the root
    root: x509.Certificate


def _between(
    ca_cert: x509.Certificate, chain: Sequence[x509.Certificate], root: x509.Certificate
) -> tuple[x509.Certificate, ...]:
    """Certificates from ca-cert up to the root, whether or not cert-chain.pem repeats
    ca-cert first and the root last (Istio's tooling writes both)."""
    if ca_cert == root:
        return ()
    rest = list(chain)
    if rest and rest[0] == ca_cert:
        rest.pop(0)
    while rest and rest[-1] == root:
        rest.pop()
    return (ca_cert, *rest)


def _load_plugged(directory: Path) -> _Material:
    """Istio's plugged-in CA files, checked link by link and used in place."""
    ca_path, key_path = directory / CA_CERT, directory / CA_KEY
    root_path, chain_path = directory / ROOT_CERT, directory / CERT_CHAIN
    ca_cert = _read_cert(ca_path)
    key = _read_key(key_path)
    root = _read_cert(root_path)
    chain = _read_certs(chain_path, allow_empty=True)  # empty when the root signs itself
    now = _now()
    _check_key_matches(key, key_path, ca_cert, ca_path)
    _check_is_ca(ca_cert, ca_path)
    _check_current(ca_cert, ca_path, now)
    _check_root(root, root_path, now)
    between = _between(ca_cert, chain, root)
    for child, issuer in pairwise((*between, root)):
        _check_issued(child, issuer, chain_path)
    for cert in between[1:]:
        _check_current(cert, chain_path, now)
    return _Material(signer=ca_cert, key=key, between=between, root=root)


# --- the authority -----------------------------------------------------------------


def _authority_key_id(signer: x509.Certificate, key: SigningKey) -> x509.AuthorityKeyIdentifier:
    try:
        ski = signer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _parse_csr(csr_pem: str | bytes) -> x509.CertificateSigningRequest:
    data = csr_pem.encode("utf-8", "replace") if isinstance(csr_pem, str) else csr_pem
    if len(data) > MAX_CSR_BYTES:
        raise CsrRejected(f"CSR is larger than {MAX_CSR_BYTES} bytes")
    try:
        return x509.load_pem_x509_csr(data)
    except ValueError:
        raise CsrRejected("CSR is not a PEM certificate request") from None


def _check_csr_key(csr: x509.CertificateSigningRequest) -> None:
    try:
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise CsrRejected("CSR public key can not be parsed") from None
    if isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            raise CsrRejected(
                f"CSR RSA key has {key.key_size} bits, allowed {MIN_RSA_BITS} to {MAX_RSA_BITS}"
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ALLOWED_CURVES:
            raise CsrRejected(f"CSR EC key is on {key.curve.name}, allowed P-256 and P-384")
    else:
        raise CsrRejected(f"CSR key type {type(key).__name__} is not RSA or EC")


def _check_csr_signature(csr: x509.CertificateSigningRequest) -> None:
    try:
        valid = csr.is_signature_valid
    except (ValueError, TypeError, UnsupportedAlgorithm):
        valid = False
    if not valid:
        raise CsrRejected("CSR signature does not verify")


def _check_csr_san(csr: x509.CertificateSigningRequest, identity: str) -> None:
    """The CSR may ask for the caller's identity and nothing else."""
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = list(san)
    except x509.ExtensionNotFound:
        raise CsrRejected("CSR has no SubjectAlternativeName") from None
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        raise CsrRejected("CSR extensions can not be parsed") from None
    uris = [name.value for name in names if isinstance(name, x509.UniformResourceIdentifier)]
    if len(names) != len(uris):
        raise CsrRejected("CSR SubjectAlternativeName may hold only the workload's URI")
    if uris != [identity]:
        raise CsrRejected(f"CSR SubjectAlternativeName {uris} is not exactly [{identity!r}]")


def _leaf_builder(
    signer: x509.Certificate, key: SigningKey, identity: str
) -> x509.CertificateBuilder:
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    # An empty subject makes the SAN the only name, which RFC 5280 then wants critical.
    san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)])
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(signer.subject)
        .serial_number(_serial())
        .add_extension(san, critical=True)
        .add_extension(usage, critical=True)
        .add_extension(eku, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_authority_key_id(signer, key), critical=False)
    )


class CertificateAuthority:
    """Signs workload certificates. Holds only immutable material, so any thread may sign."""

    def __init__(self, trust_domain: str, material: _Material, options: CaOptions) -> None:
        self._trust_domain = trust_domain
        self._material = material
        self._options = options
        self._root_pem = _pem(material.root)
        self._tail = tuple(_pem(cert) for cert in (*material.between, material.root))

    @classmethod
    def load_or_create(
        cls,
        directory: Path,
        trust_domain: str,
        options: CaOptions = CaOptions(),
        plugged: Path | None = None,
    ) -> CertificateAuthority:
        """Use Istio's cacerts in `plugged` if given, else the self-signed root kept in
        `directory` (created on the first call, reused afterwards)."""
        if not _TRUST_DOMAIN_RE.fullmatch(trust_domain) or trust_domain in (".", ".."):
            raise CaError(f"trust domain {trust_domain!r} is not a valid SPIFFE trust domain")
        if plugged is not None:
            material = _load_plugged(plugged)
        else:
            root, key = _load_or_create_root(directory, trust_domain, options)
            material = _Material(signer=root, key=key, between=(), root=root)
        return cls(trust_domain, material, options)

    @property
    def trust_domain(self) -> str:
        return self._trust_domain

    @property
    def root_pem(self) -> str:
        """The trust bundle workloads verify their peers against."""
        return self._root_pem

    def sign_workload(
        self, csr_pem: str | bytes, identity: str, ttl: timedelta | None
    ) -> list[str]:
        """Sign `csr_pem` for `identity` (already authenticated by the caller).

        Returns Istio's cert_chain: the leaf first, then the signing chain, the root last.
        Raises CsrRejected when the request breaks a rule.
        """
        self._check_identity(identity)
        lifetime = self._lifetime(ttl)
        csr = _parse_csr(csr_pem)
        _check_csr_key(csr)
        _check_csr_signature(csr)
        _check_csr_san(csr, identity)
        leaf = self._issue(csr, identity, lifetime)
        return [_pem(leaf), *self._tail]

    def _check_identity(self, identity: str) -> None:
        try:
            trust_domain, _, _ = parse_spiffe_id(identity)
        except ValueError as exc:
            raise CsrRejected(f"identity {exc}") from None
        if trust_domain != self._trust_domain:
            raise CsrRejected(
                f"identity {identity!r} is not in trust domain {self._trust_domain!r}"
            )

    def _lifetime(self, ttl: timedelta | None) -> timedelta:
        options = self._options
        if ttl is None or ttl <= timedelta(0):
            return options.default_workload_ttl
        if ttl > options.max_workload_ttl:
            raise CsrRejected(
                f"requested TTL {format_ttl(ttl)} is greater than the max allowed TTL "
                f"{format_ttl(options.max_workload_ttl)}"
            )
        return max(ttl, options.min_workload_ttl)

    def _issue(
        self, csr: x509.CertificateSigningRequest, identity: str, lifetime: timedelta
    ) -> x509.Certificate:
        signer = self._material.signer
        now = _now()
        not_before = now - CLOCK_SKEW
        not_after = min(not_before + CLOCK_SKEW + lifetime, signer.not_valid_after_utc)
        if not_after <= now:
            raise CaError(f"the signing certificate expired at {signer.not_valid_after_utc}")
        builder = (
            _leaf_builder(signer, self._material.key, identity)
            .public_key(csr.public_key())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
        )
        return builder.sign(self._material.key, hashes.SHA256())
