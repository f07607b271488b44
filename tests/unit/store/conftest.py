"""Every store backend, so the contract suite runs once per backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from isthmus.store import MemoryStore, SqliteStore
from isthmus.store.history import DEFAULT_HISTORY
from isthmus.store.indexed import IndexedStore

StoreFactory = Callable[..., IndexedStore]


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens stores of the parametrized backend; closes them all after the test."""
    opened: list[IndexedStore] = []

    def make(history: int = DEFAULT_HISTORY) -> IndexedStore:
        backend: IndexedStore
        if request.param == "memory":
            backend = MemoryStore(history=history)
        else:
            backend = SqliteStore(tmp_path / f"isthmus-{len(opened)}.db", history=history)
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        backend.close()


@pytest.fixture
def store(make_store: StoreFactory) -> IndexedStore:
    return make_store()
