"""The Secrets of the mesh, and a gateway server's credential resolved from them as Istio
resolves a Gateway server's `tls.credentialName` (pilot/pkg/credentials/kube/secrets.go):

- certificate and key (ExtractCertInfo): the generic form first, `cert` and `key` both
  non-empty (with `crl`), else `tls.crt` and `tls.key` both non-empty (with `ca.crl` and
  `tls.ocsp-staple`), whatever the Secret's type;
- the CA that client certificates are checked against (MUTUAL; GetCaCert on
  `<name>-cacert`): the Secret `<name>-cacert` if it exists, else `<name>` itself, and in
  it `cacert` (with `crl`) if non-empty, else `ca.crt` (with `ca.crl`). A `-cacert`
  Secret without a CA is an error, with no fall back to `<name>`, as in Istio.

Pure: no I/O, no logging. Secret bytes never reach a repr, a str or a message: SecretIndex
and ServerCredential print a keyed content digest, and `credential_problem` names keys.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from isthmus.api.secret import TLS_CERT_KEY, TLS_PRIVATE_KEY_KEY, Secret

__all__ = [
    "CA_SUFFIX",
    "CaCertificate",
    "SecretIndex",
    "ServerCredential",
    "ca_certificate",
    "credential_problem",
    "server_credential",
]

CA_SUFFIX = "-cacert"  # Istio's SdsCaSuffix

_GENERIC_CERT, _GENERIC_KEY, _GENERIC_CA, _GENERIC_CRL = "cert", "key", "cacert", "crl"
_TLS_CA, _TLS_CRL, _TLS_OCSP_STAPLE = "ca.crt", "ca.crl", "tls.ocsp-staple"

# Digests of secret content are keyed per process: stable for one isthmusd's caches and
# versions, useless for guessing a low-entropy value (a password in an Opaque Secret).
_DIGEST_KEY = os.urandom(32)


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.blake2b(key=_DIGEST_KEY, digest_size=12)
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def _secret_parts(secret: Secret) -> Iterator[bytes]:
    yield secret.secret_type.encode()
    yield b"immutable" if secret.immutable else b""
    for key, raw in secret.decoded.items():
        yield key.encode()
        yield raw


class SecretIndex(Mapping[tuple[str, str], Secret]):
    """Secrets by (namespace, name). Equal content, equal index; its repr is a keyed
    digest of the content (MeshSnapshot.input_versions hashes reprs), never a value."""

    __slots__ = ("_by_key", "_digest")

    def __init__(self, secrets: Iterable[Secret] = ()) -> None:
        by_key = {(s.metadata.namespace or "default", s.metadata.name): s for s in secrets}
        self._by_key = dict(sorted(by_key.items()))
        self._digest = _digest(
            part
            for (namespace, name), secret in self._by_key.items()
            for part in (namespace.encode(), name.encode(), _digest(_secret_parts(secret)).encode())
        )

    def __getitem__(self, key: tuple[str, str]) -> Secret:
        return self._by_key[key]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SecretIndex):
            return self._digest == other._digest
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._digest)

    def __repr__(self) -> str:
        return f"SecretIndex(secrets={len(self)}, content={self._digest})"

    __str__ = __repr__


@dataclass(frozen=True, repr=False)
class CaCertificate:
    """The PEM CA bundle client certificates are checked against, and its PEM CRL."""

    certificate: bytes
    crl: bytes | None = None

    def __repr__(self) -> str:
        return f"CaCertificate(content={_digest([self.certificate, self.crl or b''])})"


@dataclass(frozen=True, repr=False)
class ServerCredential:
    """What a gateway's TLS server presents (PEM chain, PEM key, optional OCSP staple in
    DER) and, when the Secrets hold one, the CA for client certificates (MUTUAL)."""

    certificate_chain: bytes
    private_key: bytes
    ca: CaCertificate | None = None
    ocsp_staple: bytes | None = None

    @property
    def ca_certificate(self) -> bytes | None:
        return self.ca.certificate if self.ca is not None else None

    def __repr__(self) -> str:
        content = _digest(
            [
                self.certificate_chain,
                self.private_key,
                self.ca_certificate or b"",
                self.ocsp_staple or b"",
            ]
        )
        return f"ServerCredential(content={content}, ca={self.ca is not None})"


def server_credential(
    secrets: Mapping[tuple[str, str], Secret], namespace: str, name: str
) -> ServerCredential | None:
    """The credential `credentialName: name` names in `namespace` (the gateway's), as Istio
    resolves it; None when Istio would find none (see `credential_problem` for why).

    `ca` is the CA resolved through the `<name>-cacert` companion, None when there is
    none; only a MUTUAL server needs it.
    """
    secret = secrets.get((namespace, name))
    if secret is None:
        return None
    data = secret.decoded
    if _has_values(data, _GENERIC_CERT, _GENERIC_KEY):
        chain, key, staple = data[_GENERIC_CERT], data[_GENERIC_KEY], None
    elif _has_values(data, TLS_CERT_KEY, TLS_PRIVATE_KEY_KEY):
        chain, key = data[TLS_CERT_KEY], data[TLS_PRIVATE_KEY_KEY]
        staple = data.get(_TLS_OCSP_STAPLE) or None
    else:
        return None
    return ServerCredential(chain, key, ca_certificate(secrets, namespace, name), staple)


def ca_certificate(
    secrets: Mapping[tuple[str, str], Secret], namespace: str, name: str
) -> CaCertificate | None:
    """The CA of `credentialName: name` (Istio's GetCaCert of `<name>-cacert`): from the
    Secret `<name>-cacert` if there is one, else from `<name>`; None if it holds none."""
    secret = secrets.get((namespace, name + CA_SUFFIX))
    if secret is None:
        secret = secrets.get((namespace, name))
    if secret is None:
        return None
    data = secret.decoded
    if _has_values(data, _GENERIC_CA):
        return CaCertificate(data[_GENERIC_CA], data.get(_GENERIC_CRL) or None)
    if _has_values(data, _TLS_CA):
        return CaCertificate(data[_TLS_CA], data.get(_TLS_CRL) or None)
    return None


def credential_problem(
    secrets: Mapping[tuple[str, str], Secret], namespace: str, name: str, *, mutual: bool
) -> str | None:
    """Why `credentialName: name` gives no usable credential, in Istio's words (the
    ones it logs), or None. `mutual`: the server also needs a CA. Names keys only."""
    secret = secrets.get((namespace, name))
    if secret is None:
        return f"secret {namespace}/{name} not found"
    data = secret.decoded
    if not (
        _has_values(data, _GENERIC_CERT, _GENERIC_KEY)
        or _has_values(data, TLS_CERT_KEY, TLS_PRIVATE_KEY_KEY)
    ):
        for pair in ((_GENERIC_CERT, _GENERIC_KEY), (TLS_CERT_KEY, TLS_PRIVATE_KEY_KEY)):
            if all(k in data for k in pair):
                return f'found keys "{pair[0]}" and "{pair[1]}", but they were empty'
        return (
            f"found secret, but didn't have expected keys ({_GENERIC_CERT} and {_GENERIC_KEY}) "
            f"or ({TLS_CERT_KEY} and {TLS_PRIVATE_KEY_KEY}); found: {_keys_found(data)}"
        )
    if not mutual or ca_certificate(secrets, namespace, name) is not None:
        return None
    companion = secrets.get((namespace, name + CA_SUFFIX))
    source = companion if companion is not None else secret
    where = f"{namespace}/{source.metadata.name}"
    for key in (_GENERIC_CA, _TLS_CA):
        if key in source.decoded:
            return f'secret {where}: found key "{key}", but it was empty'
    return (
        f"secret {where}: found secret, but didn't have expected keys {_GENERIC_CA} or "
        f"{_TLS_CA}; found: {_keys_found(source.decoded)}"
    )


def _has_values(data: Mapping[str, bytes], *keys: str) -> bool:
    return all(data.get(key) for key in keys)


def _keys_found(data: Mapping[str, bytes]) -> str:
    """Istio's truncatedKeysMessage."""
    keys = sorted(data)
    if len(keys) < 3:
        return ", ".join(keys)
    return f"{', '.join(keys[:3])}, and {len(keys) - 3} more..."
