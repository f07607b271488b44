"""The ResourceStore protocol and its value types."""

from __future__ import annotations

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
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class StoredObject:
    """One object as stored: its key, the revision that last wrote it, and its body.

    `body` is the full manifest (apiVersion, kind, metadata, spec) as the user applied it,
    with metadata.resourceVersion set by the store.
    """

    key: ObjectKey
    resource_version: int
    body: dict[str, Any]


class EventType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True)
class Event:
    type: EventType
    object: StoredObject
    revision: int


class NotFound(KeyError):
    """Raised by delete/get for a key the store does not hold."""


class Conflict(Exception):
    """Raised when an expected resourceVersion does not match (optimistic concurrency)."""


class ResourceStore(Protocol):
    """Versioned objects with watch.

    `revision` is a store-wide counter that increases by one per written object; an
    object's resource_version is the revision that last wrote it. `apply` and `delete`
    are transactions: all objects are written or none is.
    """

    @property
    def revision(self) -> int: ...

    def get(self, key: ObjectKey) -> StoredObject | None: ...

    def list(self, kind: str | None = None, namespace: str | None = None) -> list[StoredObject]: ...

    def apply(self, bodies: Sequence[tuple[ObjectKey, dict[str, Any]]]) -> list[StoredObject]:
        """Create or update each object in one transaction; unchanged bodies are not rewritten."""
        ...

    def delete(self, keys: Sequence[ObjectKey]) -> list[StoredObject]:
        """Delete each object in one transaction; raises NotFound (changing nothing) if any is absent."""
        ...

    def watch(self, since: int = 0) -> AsyncIterator[Event]:
        """Events after revision `since`, then live events, in revision order."""
        ...

    def close(self) -> None: ...
