"""Versioned object storage with watch: the mesh's source of truth.

Objects are plain JSON-able dicts keyed by (kind, namespace, name); the store knows
nothing of their schema (that is `isthmus.api`'s job). Every backend passes the one
contract suite in tests/unit/store.
"""

from isthmus.store.types import (
    Conflict,
    Event,
    EventType,
    NotFound,
    ObjectKey,
    ResourceStore,
    StoredObject,
)

__all__ = [
    "Conflict",
    "Event",
    "EventType",
    "NotFound",
    "ObjectKey",
    "ResourceStore",
    "StoredObject",
]
