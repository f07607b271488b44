"""The ResourceStore protocol and its value types."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, Protocol


class ObjectKey(NamedTuple):
    """Identity of a stored object. Cluster-scoped kinds (Namespace) use namespace ""."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class StoredObject:
    """One object as stored: its key, the revisions that created and last wrote it, its body.

    `body` is the full manifest (apiVersion, kind, metadata, spec) as the user applied it,
    with metadata.resourceVersion and metadata.creationTimestamp set by the store. The
    body is shared with the store and every reader: treat it as read-only.
    `created_revision` orders objects by age (Istio's "oldest wins" precedence).
    """

    key: ObjectKey
    resource_version: int
    body: dict[str, Any]
    created_revision: int


class EventType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True)
class Event:
    """One committed change. For DELETED, `object` is the last stored state and
    `revision` the revision of the deletion."""

    type: EventType
    object: StoredObject
    revision: int


class NotFound(KeyError):
    """Raised by delete for a key the store does not hold."""

    def __init__(self, key: ObjectKey) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"{self.key} not found"


class Conflict(Exception):
    """Raised when an expected resourceVersion does not match (optimistic concurrency)."""


class Compacted(Exception):
    """Raised by watch when `since` is older than the retained event history.

    The caller missed events it can no longer get: list again, then watch from the
    store's current revision (as after an etcd compaction or a Kubernetes 410 Gone).
    """


class ResourceStore(Protocol):
    """Versioned objects with watch.

    `revision` is a store-wide counter that increases by one per written or deleted
    object; an object's resource_version is the revision that last wrote it. `apply`
    and `delete` are transactions: all objects are written or none is.
    """

    @property
    def revision(self) -> int: ...

    def get(self, key: ObjectKey) -> StoredObject | None: ...

    def list(self, kind: str | None = None, namespace: str | None = None) -> list[StoredObject]:
        """Objects matching the filters (None matches all), sorted by key."""
        ...

    def apply(
        self, bodies: Sequence[tuple[ObjectKey, dict[str, Any]]]
    ) -> builtins.list[StoredObject]:
        """Create or update each object in one transaction; unchanged bodies are not rewritten.

        Returns the stored state of each input, in order. Raises Conflict (changing
        nothing) if a body names a metadata.resourceVersion other than the stored one.
        """
        ...

    def delete(self, keys: Sequence[ObjectKey]) -> builtins.list[StoredObject]:
        """Delete each object in one transaction; NotFound (changing nothing) if any is absent."""
        ...

    def watch(self, since: int = 0) -> AsyncIterator[Event]:
        """Events after revision `since`, then live events, in revision order.

        Raises Compacted if events after `since` are no longer retained. Iteration
        ends when the store is closed.
        """
        ...

    def close(self) -> None: ...
