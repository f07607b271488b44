"""Certificates for the bare Envoy pair with mTLS, made the way the mesh makes its own: a
root from `isthmus.ca.CertificateAuthority` (RSA 2048 by default, as isthmusd's), a
workload key and CSR from the agent's own functions (`new_private_key`,
`certificate_request`), signed by `sign_workload` and split into what Envoy reads (leaf
chain, key, trust bundle) by the agent's `WorkloadCertificate`. The only difference from a
sidecar is that Envoy reads them from files instead of over SDS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from isthmus.agent.certificates import (
    KeyType,
    WorkloadCertificate,
    certificate_request,
    new_private_key,
)
from isthmus.ca import CertificateAuthority

TRUST_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class TlsFiles:
    """One Envoy's certificate chain (leaf first, no root), its key and the trust bundle."""

    identity: str
    chain: Path
    key: Path
    root: Path


def _write(path: Path, data: bytes, mode: int) -> Path:
    """Created with `mode`: a key is never readable by others, not even for a moment."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return path


def pair_certificates(
    directory: Path, namespace: str, accounts: tuple[str, str], key_type: KeyType = "RSA"
) -> tuple[TlsFiles, TlsFiles]:
    """Files for a client and a server workload (service accounts `accounts`), signed by a
    fresh root kept in `directory`."""
    authority = CertificateAuthority.load_or_create(directory / "ca", TRUST_DOMAIN)
    root = _write(directory / "root-cert.pem", authority.root_pem.encode("ascii"), 0o644)
    out = []
    for account in accounts:
        identity = f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{account}"
        key = new_private_key(key_type)
        chain = authority.sign_workload(certificate_request(key, identity), identity, None)
        cert = WorkloadCertificate.from_chain(key, identity, chain)
        out.append(
            TlsFiles(
                identity=identity,
                chain=_write(directory / f"{account}-chain.pem", cert.certificate_chain, 0o644),
                key=_write(directory / f"{account}-key.pem", cert.key_pem, 0o600),
                root=root,
            )
        )
    return out[0], out[1]
