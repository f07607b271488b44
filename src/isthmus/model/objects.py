"""Stored objects with their parsed models, parsed once per resource version.

The mesh is rebuilt after every debounced change and the runtime reconciles every second;
both read every stored object. Re-validating thousands of unchanged bodies with pydantic
each time is wasted work, so parsed models are kept per object key and resource version.
"""

from __future__ import annotations

from isthmus.api.base import Resource
from isthmus.api.loader import parse_resource
from isthmus.store import ObjectKey, ResourceStore, StoredObject


class ParsedObjects:
    def __init__(self, store: ResourceStore) -> None:
        self._store = store
        self._parsed: dict[ObjectKey, tuple[int, Resource]] = {}

    def list(
        self, kind: str | None = None, namespace: str | None = None
    ) -> list[tuple[StoredObject, Resource]]:
        out = []
        for obj in self._store.list(kind=kind, namespace=namespace):
            cached = self._parsed.get(obj.key)
            if cached is None or cached[0] != obj.resource_version:
                cached = (obj.resource_version, parse_resource(obj.body))
                self._parsed[obj.key] = cached
            out.append((obj, cached[1]))
        if namespace is None:  # a full listing (of one kind or all): forget deleted objects
            live = {obj.key for obj, _ in out}
            stale = [k for k in self._parsed if k not in live and kind in (None, k.kind)]
            for key in stale:
                del self._parsed[key]
        return out
