"""MemoryStore: the store without durability, for tests and throwaway meshes."""

from __future__ import annotations

from isthmus.store.history import DEFAULT_HISTORY
from isthmus.store.indexed import IndexedStore


class MemoryStore(IndexedStore):
    """All objects and the event history in process memory; gone on exit."""

    def __init__(self, history: int = DEFAULT_HISTORY) -> None:
        super().__init__(history=history)
