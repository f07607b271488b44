"""Checks of a Secret: Kubernetes' (keys, base64, size, kubernetes.io/tls needs tls.crt
and tls.key) and, for the keys Istio reads as a gateway credential, that Envoy can serve
what they hold: PEM certificates that parse, an unencrypted private key that parses and
matches its certificate, a key type Envoy serves.

Istio reads a credential from a Secret of any type (pilot/pkg/credentials/kube,
ExtractCertInfo and ExtractRoot): `tls.crt`+`tls.key` (with `ca.crt`, `ca.crl`) or the
generic `cert`+`key` (with `cacert`, `crl`). So `tls.*`, `ca.crt`, `ca.crl` and `cacert`
are checked whenever present and not empty; the generic `cert`/`key`/`crl`, common names
in other Secrets, only when `cert` and `key` (or `cacert`, for `crl`) make a credential.
Empty values are accepted, as Kubernetes accepts them (Istio then finds no credential).

No message ever holds a byte of a value: problems name the key and what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from isthmus.api.errors import FieldPath, Problems, short_repr
from isthmus.api.secret import (
    SECRET_TYPE_OPAQUE,
    SECRET_TYPE_TLS,
    TLS_CERT_KEY,
    TLS_PRIVATE_KEY_KEY,
    Secret,
    decode_data_value,
)

__all__ = [
    "MAX_SECRET_BYTES",
    "check_secret",
    "check_secret_update",
    "secret_key_error",
    "secret_warnings",
]

MAX_SECRET_BYTES = 1024 * 1024  # Kubernetes' MaxSecretSize: keys and values together
ACCEPTED_TYPES = (SECRET_TYPE_OPAQUE, SECRET_TYPE_TLS)

_KEY_MAX = 253
_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_KEY_SHOWN_MAX = 64
_DATA = FieldPath("data")
_STRING_DATA = FieldPath("stringData")

# A PEM block: its label and the whole block (begin to end line).
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?\r?\n-----END \1-----", re.DOTALL)
# Envoy (BoringSSL) serves these ECDSA curves only.
_ENVOY_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_ENVOY_MIN_RSA_BITS = 2048


def secret_key_error(key: str) -> str | None:
    """Kubernetes' IsConfigMapKey, the rule for Secret and ConfigMap keys."""
    if len(key) > _KEY_MAX:
        return f"must be no more than {_KEY_MAX} characters"
    if not _KEY.fullmatch(key):
        return (
            "a valid secret key must consist of alphanumeric characters, '-', '_' or '.' "
            "(e.g. 'key.name', or 'KEY_NAME', or 'key-name')"
        )
    if key in (".", ".."):
        return f"must not be '{key}'"
    if key.startswith(".."):
        return "must not start with '..'"
    return None


@dataclass(frozen=True)
class _Value:
    path: FieldPath
    raw: bytes


def check_secret(secret: Secret, problems: Problems) -> None:
    if secret.secret_type not in ACCEPTED_TYPES:
        problems.add(
            "type",
            f"Secret type {short_repr(secret.secret_type)} is not supported yet "
            f"(isthmus accepts {' and '.join(ACCEPTED_TYPES)})",
        )
    values = _values(secret, problems)
    total = sum(len(key) + len(value.raw) for key, value in values.items())
    if total > MAX_SECRET_BYTES:
        problems.add(_DATA, f"must hold at most {MAX_SECRET_BYTES} bytes in all (has {total})")
    if secret.secret_type == SECRET_TYPE_TLS:
        for key in (TLS_CERT_KEY, TLS_PRIVATE_KEY_KEY):
            if key not in secret.data and key not in secret.string_data:
                problems.add(_DATA.key(key), f"is required for type {SECRET_TYPE_TLS}")
    _check_credential(values, problems)


def secret_warnings(secret: Secret, now: datetime | None = None) -> list[str]:
    """Warnings about a valid Secret (the apply goes ahead): a certificate Istio would
    serve or trust that is expired or not valid yet (Istio logs "invalid certificates")."""
    at = now or datetime.now(UTC)
    out = []
    meta = secret.metadata
    for key, raw in secret.decoded.items():
        if not raw or key not in _CERTIFICATE_KEYS or not _read_as_credential(key, secret):
            continue
        certificates = _certificates(raw)
        if not isinstance(certificates, list):
            continue
        first = certificates[0]
        path = _path_of(secret, key)
        label = f"Secret {meta.namespace or 'default'}/{meta.name}: {path}"
        if first.not_valid_after_utc < at:
            out.append(
                f"{label}: the certificate expired at {_when(first.not_valid_after_utc)}; "
                "clients will refuse it"
            )
        elif first.not_valid_before_utc > at:
            out.append(
                f"{label}: the certificate is not valid before "
                f"{_when(first.not_valid_before_utc)}; clients will refuse it until then"
            )
    return out


_CERTIFICATE_KEYS = frozenset({TLS_CERT_KEY, "ca.crt", "cert", "cacert"})


def _read_as_credential(key: str, secret: Secret) -> bool:
    if key != "cert":
        return True
    return bool(secret.decoded.get("key"))


def _path_of(secret: Secret, key: str) -> FieldPath:
    return (_STRING_DATA if key in secret.string_data else _DATA).key(_shown(key))


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _shown(key: str) -> str:
    return key if len(key) <= _KEY_SHOWN_MAX else key[: _KEY_SHOWN_MAX - 3] + "..."


def _values(secret: Secret, problems: Problems) -> dict[str, _Value]:
    """Every well-formed value by key, stringData winning; problems for the others."""
    values: dict[str, _Value] = {}
    for key, text in secret.data.items():
        path = _DATA.key(_shown(key))
        key_problem = secret_key_error(key)
        raw = decode_data_value(text)
        if key_problem:
            problems.add(path, key_problem)
        elif raw is None:
            problems.add(
                path,
                "must be base64-encoded (as Kubernetes stores Secret data); "
                "write plain text under stringData instead",
            )
        else:
            values[key] = _Value(path, raw)
    for key, text in secret.string_data.items():
        path = _STRING_DATA.key(_shown(key))
        key_problem = secret_key_error(key)
        if key_problem:
            problems.add(path, key_problem)
        else:
            values[key] = _Value(path, text.encode())
    return values


def _check_credential(values: Mapping[str, _Value], problems: Problems) -> None:
    def present(key: str) -> _Value | None:
        value = values.get(key)
        return value if value is not None and value.raw else None

    _check_pair(present(TLS_CERT_KEY), present(TLS_PRIVATE_KEY_KEY), problems)
    generic = present("cert") is not None and present("key") is not None
    if generic:
        _check_pair(present("cert"), present("key"), problems)
    for key in ("ca.crt", "cacert"):
        ca = present(key)
        if ca is not None:
            _check_certificates(ca, problems)
    crls = [present("ca.crl")]
    if generic or present("cacert") is not None:
        crls.append(present("crl"))
    for crl in crls:
        if crl is not None:
            _check_crl(crl, problems)


def _check_pair(chain: _Value | None, key: _Value | None, problems: Problems) -> None:
    leaf = _check_certificates(chain, problems, serving=True) if chain is not None else None
    private = _check_private_key(key, problems) if key is not None else None
    if chain is None or key is None or leaf is None or private is None:
        return
    if _public_der(private.public_key()) != _public_der(leaf.public_key()):
        problems.add(key.path, f"the private key does not match the certificate in {chain.path}")


def _check_certificates(
    value: _Value, problems: Problems, *, serving: bool = False
) -> x509.Certificate | None:
    """Problems of a PEM certificate bundle; its first certificate if every one parses."""
    found = _certificates(value.raw)
    if isinstance(found, str):
        problems.add(value.path, found)
        return None
    leaf = found[0]
    if serving:
        problem = _serving_key_problem(leaf)
        if problem:
            problems.add(value.path, problem)
            return None
    return leaf


def _certificates(raw: bytes) -> list[x509.Certificate] | str:
    """The certificates of a PEM bundle (other PEM blocks are skipped, as Envoy skips
    them), or what is wrong with it."""
    blocks = [m.group(0) for m in _PEM_BLOCK.finditer(raw) if m.group(1) == b"CERTIFICATE"]
    if not blocks:
        return "must hold PEM certificates (-----BEGIN CERTIFICATE-----)"
    out = []
    for position, block in enumerate(blocks, 1):
        try:
            out.append(x509.load_pem_x509_certificate(block))
        except (ValueError, UnsupportedAlgorithm):
            which = "the certificate" if len(blocks) == 1 else f"certificate {position}"
            return f"{which} does not parse as an X.509 certificate"
    return out


def _serving_key_problem(certificate: x509.Certificate) -> str | None:
    """Why Envoy would not serve this certificate's key type, if it would not."""
    try:
        key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return "the certificate's key algorithm is not supported (use RSA, ECDSA or Ed25519)"
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < _ENVOY_MIN_RSA_BITS:
            return (
                f"the certificate's RSA key has {key.key_size} bits; Envoy serves only RSA "
                f"keys of at least {_ENVOY_MIN_RSA_BITS} bits"
            )
        return None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _ENVOY_CURVES:
            return (
                f"the certificate's ECDSA curve {key.curve.name} is not supported by Envoy "
                "(use P-256, P-384 or P-521)"
            )
        return None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return None
    return (
        f"the certificate's key type ({_key_type(key)}) is not supported by Envoy "
        "(use RSA, ECDSA or Ed25519)"
    )


def _key_type(key: object) -> str:
    return type(key).__name__.removeprefix("_").removesuffix("PublicKey") or "unknown"


def _check_private_key(value: _Value, problems: Problems) -> PrivateKeyTypes | None:
    labels = {m.group(1) for m in _PEM_BLOCK.finditer(value.raw)}
    if b"ENCRYPTED PRIVATE KEY" in labels or b"Proc-Type: 4,ENCRYPTED" in value.raw:
        problems.add(value.path, _ENCRYPTED)
        return None
    if not any(label.endswith(b"PRIVATE KEY") for label in labels):
        problems.add(value.path, "must hold a PEM private key (-----BEGIN PRIVATE KEY-----)")
        return None
    try:
        return serialization.load_pem_private_key(value.raw, password=None)
    except TypeError:  # a password is needed
        problems.add(value.path, _ENCRYPTED)
    except UnsupportedAlgorithm:
        problems.add(value.path, "the private key's algorithm is not supported")
    except ValueError:
        problems.add(value.path, "the private key does not parse")
    return None


_ENCRYPTED = "the private key is encrypted; Istio's gateways need it unencrypted"


def _check_crl(value: _Value, problems: Problems) -> None:
    blocks = [m.group(0) for m in _PEM_BLOCK.finditer(value.raw) if m.group(1) == b"X509 CRL"]
    if not blocks:
        problems.add(value.path, "must hold PEM revocation lists (-----BEGIN X509 CRL-----)")
        return
    for position, block in enumerate(blocks, 1):
        try:
            x509.load_pem_x509_crl(block)
        except ValueError:
            which = "the CRL" if len(blocks) == 1 else f"CRL {position}"
            problems.add(value.path, f"{which} does not parse")
            return


def _public_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_secret_update(
    stored: Mapping[str, Any], new: Mapping[str, Any], problems: Problems
) -> None:
    """Kubernetes' ValidateSecretUpdate on two stored bodies (data merged and canonical):
    the type never changes; an immutable Secret keeps its data and stays immutable."""
    if (stored.get("type") or SECRET_TYPE_OPAQUE) != (new.get("type") or SECRET_TYPE_OPAQUE):
        problems.add("type", f"field is immutable; {_RECREATE}")
    if stored.get("immutable") is True:
        if new.get("immutable") is not True:
            problems.add("immutable", f"field is immutable when `immutable` is set; {_RECREATE}")
        if (stored.get("data") or {}) != (new.get("data") or {}):
            problems.add("data", f"field is immutable when `immutable` is set; {_RECREATE}")


_RECREATE = "delete the Secret and create it again to change it"
