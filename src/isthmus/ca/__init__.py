"""isthmus.ca: the mesh's certificate authority and the pod tokens it trusts.

It owns the root (self-signed and kept under $ISTHMUS_HOME, or Istio's plugged-in
cacerts), the rules for signing SPIFFE workload certificates from CSRs, and the
HMAC pod tokens that bind a CSR to a pod. A pure library: no networking.
"""

from isthmus.ca.authority import (
    CaError,
    CaOptions,
    CertificateAuthority,
    CsrRejected,
    parse_spiffe_id,
    spiffe_id,
)
from isthmus.ca.tokens import PodBinding, TokenIssuer, TokenRejected

__all__ = [
    "CaError",
    "CaOptions",
    "CertificateAuthority",
    "CsrRejected",
    "PodBinding",
    "TokenIssuer",
    "TokenRejected",
    "parse_spiffe_id",
    "spiffe_id",
]
