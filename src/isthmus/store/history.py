"""A bounded, in-memory history of committed events that any number of watchers follow.

Writers append under the store's lock and never wait for readers: each watcher keeps its
own cursor into the shared history and sleeps on a future until something newer is
appended. A watcher that falls further behind than the history holds gets Compacted
instead of a silent gap.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence

from isthmus.store.types import Compacted, Event

DEFAULT_HISTORY = 10_000


class EventHistory:
    """Events with consecutive revisions floor+1 .. floor+len, oldest trimmed first."""

    def __init__(self, floor: int, capacity: int = DEFAULT_HISTORY) -> None:
        if capacity < 1:
            raise ValueError("event history capacity must be at least 1")
        self._lock = threading.Lock()
        self._floor = floor  # every event with revision > floor is retained
        self._events: list[Event] = []
        self._capacity = capacity
        self._waiters: set[asyncio.Future[None]] = set()
        self._closed = False

    @property
    def floor(self) -> int:
        """The oldest revision a watcher may start after."""
        with self._lock:
            return self._floor

    def publish(self, events: Sequence[Event]) -> None:
        """Append committed events (revisions continuing the history) and wake watchers."""
        with self._lock:
            expected = self._floor + len(self._events) + 1
            for event in events:
                if event.revision != expected:
                    raise ValueError(
                        f"event revision {event.revision} does not follow {expected - 1}"
                    )
                expected += 1
            self._events.extend(events)
            excess = len(self._events) - self._capacity
            # Trim in chunks so appends stay amortized O(1).
            if excess > self._capacity // 2:
                self._floor = self._events[excess - 1].revision
                del self._events[:excess]
            self._wake_all()

    def close(self) -> None:
        """End every watch once it has read what is already retained."""
        with self._lock:
            self._closed = True
            self._wake_all()

    def check(self, since: int) -> None:
        """Raise Compacted unless events after `since` are all still retained."""
        with self._lock:
            self._check(since)

    async def follow(self, since: int) -> AsyncIterator[Event]:
        """Yield events after `since` in revision order, then wait for new ones."""
        cursor = since
        while True:
            batch, waiter = self._read_after(cursor)
            for event in batch:
                yield event
                cursor = event.revision
            if batch:
                continue
            if waiter is None:
                return
            try:
                await waiter
            finally:
                with self._lock:
                    self._waiters.discard(waiter)

    def _read_after(self, cursor: int) -> tuple[list[Event], asyncio.Future[None] | None]:
        """Retained events after `cursor`; if none, a future resolved by the next publish
        (or None when the history is closed)."""
        with self._lock:
            self._check(cursor)
            start = cursor - self._floor
            if start < len(self._events):
                return self._events[start:], None
            if self._closed:
                return [], None
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.add(waiter)
            return [], waiter

    def _check(self, since: int) -> None:
        if since < 0:
            raise ValueError(f"watch revision must not be negative, got {since}")
        if since < self._floor:
            raise Compacted(
                f"revision {since} is older than the retained event history "
                f"(oldest watchable revision is {self._floor}); list again and watch from "
                "the store's current revision"
            )

    def _wake_all(self) -> None:
        for waiter in self._waiters:
            try:
                waiter.get_loop().call_soon_threadsafe(_resolve, waiter)
            except RuntimeError:  # the watcher's loop is closed; nobody is waiting any more
                continue
        self._waiters.clear()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
