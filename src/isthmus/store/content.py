"""Object bodies as the store sees them: JSON values with a few server-set metadata fields.

The store owns `metadata.resourceVersion` and `metadata.creationTimestamp`; whatever a
user writes there never makes an apply a change. Everything else is the user's.
"""

from __future__ import annotations

import json
from typing import Any

RESOURCE_VERSION = "resourceVersion"
CREATION_TIMESTAMP = "creationTimestamp"
SERVER_SET_FIELDS = frozenset({RESOURCE_VERSION, CREATION_TIMESTAMP})


def json_copy(body: Any) -> dict[str, Any]:
    """A private deep copy of `body`, which must be a JSON object with a metadata object.

    Going through JSON makes every backend accept exactly the same values (a memory store
    must not hold what SQLite could not) and detaches the caller's dict from the store.
    """
    if not isinstance(body, dict):
        raise ValueError(f"object body must be a mapping, got {type(body).__name__}")
    try:
        copied = json.loads(json.dumps(body, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"object body is not JSON: {exc}") from exc
    if not isinstance(copied.get("metadata"), dict):
        raise ValueError("object body has no metadata mapping")
    assert isinstance(copied, dict)
    return copied


def user_content(body: dict[str, Any]) -> dict[str, Any]:
    """`body` without the server-set metadata fields (a shallow view; do not mutate)."""
    meta = body.get("metadata")
    if not isinstance(meta, dict) or not SERVER_SET_FIELDS.intersection(meta):
        return body
    trimmed = {k: v for k, v in meta.items() if k not in SERVER_SET_FIELDS}
    return {**body, "metadata": trimmed}


def same_content(stored: dict[str, Any], incoming: dict[str, Any]) -> bool:
    """Whether applying `incoming` over `stored` would change nothing the user wrote."""
    return user_content(stored) == user_content(incoming)


def expected_version(body: dict[str, Any]) -> str | None:
    """The resourceVersion a body claims to update, if it names one."""
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        return None
    value = meta.get(RESOURCE_VERSION)
    if value is None or value == "":
        return None
    return str(value)
