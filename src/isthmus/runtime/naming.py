"""Pod names as Kubernetes makes them: `<deployment>-<pod-template-hash>-<5 chars>`."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

# Kubernetes' SafeEncodeString alphabet: no vowels (no words) and no look-alike characters.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _safe_encode(data: bytes, length: int) -> str:
    number = int.from_bytes(data, "big")
    out = []
    for _ in range(length):
        number, digit = divmod(number, len(_ALPHABET))
        out.append(_ALPHABET[digit])
    return "".join(out)


def pod_template_hash(template: dict[str, Any]) -> str:
    """A stable hash of a pod template (like the ReplicaSet's pod-template-hash label).

    Kubernetes hashes the Go struct with FNV; we hash the canonical JSON of the template,
    which is stable across restarts and changes exactly when the template changes.
    """
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    return _safe_encode(hashlib.sha256(canonical).digest(), 9)


def pod_name(deployment: str, template_hash: str) -> str:
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(5))
    return f"{deployment}-{template_hash}-{suffix}"
