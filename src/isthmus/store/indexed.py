"""The store's semantics, shared by every backend: an in-memory index of all objects.

Reads are served from memory. A write is planned in full first (validation, conflicts,
new revisions), then handed to the backend's `_persist` as one transaction, and only
after that commits does the index change and do watchers see the events. So a failure
anywhere leaves the store exactly as it was.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from isthmus.store.content import (
    CREATION_TIMESTAMP,
    RESOURCE_VERSION,
    expected_version,
    json_copy,
    same_content,
)
from isthmus.store.history import DEFAULT_HISTORY, EventHistory
from isthmus.store.types import (
    Conflict,
    Event,
    EventType,
    NotFound,
    ObjectKey,
    StoredObject,
)


class IndexedStore:
    """A ResourceStore whose backend only has to persist committed changes."""

    def __init__(
        self,
        objects: Iterable[StoredObject] = (),
        revision: int = 0,
        history: int = DEFAULT_HISTORY,
    ) -> None:
        self._lock = threading.RLock()
        self._objects: dict[ObjectKey, StoredObject] = {o.key: o for o in objects}
        self._revision = revision
        self._history = EventHistory(floor=revision, capacity=history)
        self._closed = False

    @property
    def revision(self) -> int:
        with self._lock:
            return self._revision

    def get(self, key: ObjectKey) -> StoredObject | None:
        with self._lock:
            self._check_open()
            return self._objects.get(ObjectKey(*key))

    def list(self, kind: str | None = None, namespace: str | None = None) -> list[StoredObject]:
        with self._lock:
            self._check_open()
            found = [
                obj
                for key, obj in self._objects.items()
                if (kind is None or key.kind == kind)
                and (namespace is None or key.namespace == namespace)
            ]
        found.sort(key=lambda o: o.key)
        return found

    def apply(
        self, bodies: Sequence[tuple[ObjectKey, dict[str, Any]]]
    ) -> builtins.list[StoredObject]:
        with self._lock:
            self._check_open()
            staged: dict[ObjectKey, StoredObject] = {}
            events: builtins.list[Event] = []
            results: builtins.list[StoredObject] = []
            revision = self._revision
            now = _timestamp()
            for raw_key, body in bodies:
                key = ObjectKey(*raw_key)
                incoming = json_copy(body)
                current = staged.get(key) or self._objects.get(key)
                if current is not None and same_content(current.body, incoming):
                    results.append(current)
                    continue
                _check_expected_version(key, incoming, current)
                revision += 1
                stored = _stamp(key, incoming, revision, current, now)
                staged[key] = stored
                kind = EventType.ADDED if current is None else EventType.MODIFIED
                events.append(Event(kind, stored, revision))
                results.append(stored)
            if events:
                self._commit(revision, list(staged.values()), [], events)
            return results

    def delete(self, keys: Sequence[ObjectKey]) -> builtins.list[StoredObject]:
        with self._lock:
            self._check_open()
            unique = list(dict.fromkeys(ObjectKey(*k) for k in keys))
            for key in unique:
                if key not in self._objects:
                    raise NotFound(key)
            deleted = [self._objects[key] for key in unique]
            first = self._revision + 1
            events = [Event(EventType.DELETED, obj, first + i) for i, obj in enumerate(deleted)]
            if events:
                self._commit(self._revision + len(events), [], unique, events)
            return deleted

    def watch(self, since: int = 0) -> AsyncIterator[Event]:
        self._history.check(since)
        return self._history.follow(since)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close_backend()
            self._history.close()

    def _commit(
        self,
        revision: int,
        puts: builtins.list[StoredObject],
        deletes: builtins.list[ObjectKey],
        events: builtins.list[Event],
    ) -> None:
        self._persist(revision, puts, deletes)
        for obj in puts:
            self._objects[obj.key] = obj
        for key in deletes:
            del self._objects[key]
        self._revision = revision
        self._history.publish(events)

    def _persist(
        self, revision: int, puts: builtins.list[StoredObject], deletes: builtins.list[ObjectKey]
    ) -> None:
        """Make one change set durable, all or nothing; raise to abort it. Memory: nothing."""

    def _close_backend(self) -> None:
        """Release the backend's resources."""

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the store is closed")


def _check_expected_version(
    key: ObjectKey, incoming: dict[str, Any], current: StoredObject | None
) -> None:
    expected = expected_version(incoming)
    if expected is None or current is None:
        return  # no precondition, or a create (a copied manifest may carry an old version)
    if expected != str(current.resource_version):
        raise Conflict(
            f"{key}: the object has been modified (resourceVersion {expected} given, "
            f"{current.resource_version} stored); get it again and reapply"
        )


def _stamp(
    key: ObjectKey,
    body: dict[str, Any],
    revision: int,
    current: StoredObject | None,
    now: str,
) -> StoredObject:
    """Set the server-owned metadata on a private copy and wrap it as stored."""
    meta = body["metadata"]
    meta[RESOURCE_VERSION] = str(revision)
    if current is None:
        meta[CREATION_TIMESTAMP] = now
        created = revision
    else:
        meta[CREATION_TIMESTAMP] = current.body["metadata"].get(CREATION_TIMESTAMP, now)
        created = current.created_revision
    return StoredObject(key, revision, body, created)


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
