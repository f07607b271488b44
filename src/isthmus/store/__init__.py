"""Versioned object storage with watch: the mesh's source of truth.

Objects are plain JSON-able dicts keyed by (kind, namespace, name); the store knows
nothing of their schema (that is `isthmus.api`'s job). Every backend passes the one
contract suite in tests/unit/store.
"""

from isthmus.store.content import same_content
from isthmus.store.memory import MemoryStore
from isthmus.store.sqlite import SqliteStore
from isthmus.store.types import (
    Compacted,
    Conflict,
    Event,
    EventType,
    NotFound,
    ObjectKey,
    ResourceStore,
    StoredObject,
)

__all__ = [
    "Compacted",
    "Conflict",
    "Event",
    "EventType",
    "MemoryStore",
    "NotFound",
    "ObjectKey",
    "ResourceStore",
    "SqliteStore",
    "StoredObject",
    "same_content",
]
