"""Pod tokens: what kubelet's projected service-account token is to istiod.

The runtime hands each pod's agent a token naming the pod; the agent sends it with its
CSR, and the CA signs only for the service account the token names. Tokens are HMACed
with a key that never leaves isthmusd's home.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isthmus.ca.authority import CaError, read_private_file, write_file

TOKEN_VERSION = "v1"
KEY_BYTES = 32
MAX_TOKEN_CHARS = 4096
FIELDS = ("ns", "pod", "sa", "uid")

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]+")


class TokenRejected(CaError):
    """A token is malformed or not ours; the reason is meant for the caller's log."""


@dataclass(frozen=True)
class PodBinding:
    """The pod a token is bound to; `uid` tells a pod from a later one with its name."""

    namespace: str
    pod: str
    service_account: str
    uid: str


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    if not _B64URL_RE.fullmatch(text):
        raise TokenRejected(f"{what} is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise TokenRejected(f"{what} is not base64url") from None


def _load_payload(raw: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except ValueError:
        raise TokenRejected("payload is not JSON") from None
    if not isinstance(payload, dict):
        raise TokenRejected("payload is not a JSON object")
    return payload


def _binding(payload: dict[str, Any]) -> PodBinding:
    for field in FIELDS:
        value = payload.get(field)
        if not isinstance(value, str) or not value:
            raise TokenRejected(f"missing field {field!r}")
    iat = payload.get("iat")
    if not isinstance(iat, int) or isinstance(iat, bool):
        raise TokenRejected("missing field 'iat'")
    return PodBinding(
        namespace=payload["ns"],
        pod=payload["pod"],
        service_account=payload["sa"],
        uid=payload["uid"],
    )


class TokenIssuer:
    """Issues and verifies pod tokens with one HMAC-SHA256 key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"token key must be {KEY_BYTES} bytes, not {len(key)}")
        self._key = key

    @classmethod
    def load_or_create(cls, path: Path) -> TokenIssuer:
        """The key at `path` (created 0600 on first use), so tokens survive a restart."""
        if path.exists():
            key = read_private_file(path)
            if len(key) != KEY_BYTES:
                raise CaError(f"{path}: expected a {KEY_BYTES}-byte key, found {len(key)} bytes")
            return cls(key)
        key = secrets.token_bytes(KEY_BYTES)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_file(path, key, 0o600)
        return cls(key)

    def issue(self, binding: PodBinding) -> str:
        """`v1.<payload>.<hmac>`, both base64url without padding."""
        payload = {
            "ns": binding.namespace,
            "pod": binding.pod,
            "sa": binding.service_account,
            "uid": binding.uid,
            "iat": int(time.time()),
        }
        text = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
        signed = f"{TOKEN_VERSION}.{_b64encode(text)}"
        return f"{signed}.{_b64encode(self._mac(signed))}"

    def verify(self, token: str) -> PodBinding:
        """The pod `token` was issued for; raises TokenRejected otherwise.

        The token carries no expiry. As with Kubernetes' bound service-account tokens, it
        is valid only while the pod it names exists with the same uid: the caller must
        check that against the runtime before trusting the binding.
        """
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenRejected(f"token is longer than {MAX_TOKEN_CHARS} characters")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != TOKEN_VERSION:
            raise TokenRejected(f"wrong format: expected {TOKEN_VERSION}.<payload>.<signature>")
        _, payload_b64, signature_b64 = parts
        raw = _b64decode(payload_b64, "payload")
        signature = _b64decode(signature_b64, "signature")
        if not hmac.compare_digest(self._mac(f"{TOKEN_VERSION}.{payload_b64}"), signature):
            raise TokenRejected("signature does not verify")
        return _binding(_load_payload(raw))

    def _mac(self, signed: str) -> bytes:
        return hmac.new(self._key, signed.encode("ascii"), hashlib.sha256).digest()
