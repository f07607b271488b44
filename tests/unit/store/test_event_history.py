"""EventHistory: bounded retention and waking watchers across threads."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from isthmus.store import Compacted, Event, EventType, MemoryStore, ObjectKey, StoredObject
from isthmus.store.history import EventHistory

KEY = ObjectKey("VirtualService", "default", "a")


def event(revision: int) -> Event:
    return Event(EventType.ADDED, StoredObject(KEY, revision, {"metadata": {}}, revision), revision)


def test_retains_at_least_capacity_events() -> None:
    history = EventHistory(floor=0, capacity=10)
    for revision in range(1, 101):
        history.publish([event(revision)])
        assert history.floor <= max(0, revision - 10)
    with pytest.raises(Compacted):
        history.check(history.floor - 1)


def test_rejects_events_out_of_order() -> None:
    history = EventHistory(floor=5)
    with pytest.raises(ValueError, match="does not follow 5"):
        history.publish([event(7)])


async def test_write_from_another_thread_wakes_the_watcher() -> None:
    store = MemoryStore()
    body: dict[str, Any] = {"metadata": {"name": "a"}}
    stream = store.watch(0)
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.01)
    writer = threading.Thread(target=store.apply, args=([(KEY, body)],))
    writer.start()
    writer.join()
    got = await asyncio.wait_for(waiting, 5)
    assert got.revision == 1
    store.close()
