"""Idempotency keys: a request that may arrive twice runs once.

A client that can not know whether its request was carried out (it timed out, or the
connection broke after the request left) sends it again with the same `Idempotency-Key`
header. For every request except GET, HEAD and OPTIONS that carries the header, on any
route of the app:

- the first request with a key runs;
- a duplicate that arrives while the first runs waits for it and gets its response;
- a later duplicate gets the recorded response (same status, body and headers) plus
  `Idempotency-Replayed: true`, and nothing runs again;
- a key reused for a different request (another method, path or body) is refused with
  422, so an edited manifest is never answered with an old result.

Keys are remembered by one isthmusd process, in memory: a restarted daemon does not know
the keys its predecessor saw. Memory is bounded: at most `max_entries` keys (the newest
are kept) whose recorded bodies total at most `max_bytes`, and a key is forgotten
`max_age` seconds after its response was recorded. Answers that say the request did not
run (429 busy, 503) are not recorded, so a retry with the same key runs; neither are
streamed responses, whose bodies are not at hand to replay.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from isthmus.daemon.client import (
    IDEMPOTENCY_KEY,
    IDEMPOTENCY_REPLAYED,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    valid_idempotency_key,
)

__all__ = [
    "IDEMPOTENCY_KEY",
    "IDEMPOTENCY_REPLAYED",
    "IdempotencyCache",
    "Recorded",
    "idempotency_middleware",
]

MAX_ENTRIES = 10_000
MAX_AGE = 3600.0
MAX_BYTES = 64 * 1024 * 1024

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
NOT_RUN_STATUSES = frozenset({429, 503})
# Hashing a large body is moved off the event loop (hashlib releases the GIL).
_HASH_INLINE_BYTES = 256 * 1024
_NOT_REPLAYED_HEADERS = frozenset({"content-length", "date", "server", "transfer-encoding"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Recorded:
    """The answer to the first request with a key, and what that request was."""

    fingerprint: str
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]
    recorded_at: float

    def response(self) -> web.Response:
        response = web.Response(status=self.status, body=self.body)
        for name, value in self.headers:
            response.headers.add(name, value)
        response.headers[IDEMPOTENCY_REPLAYED] = "true"
        return response


class InFlight:
    """A key whose first request is still running; duplicates wait on it."""

    def __init__(self) -> None:
        self._done = asyncio.Event()
        self.waiting = 0  # duplicates waiting for it

    async def wait(self) -> None:
        self.waiting += 1
        try:
            await self._done.wait()
        finally:
            self.waiting -= 1

    def finish(self) -> None:
        self._done.set()


class IdempotencyCache:
    """Keys -> the running first request or its recorded answer. Used on one event loop."""

    def __init__(
        self,
        max_entries: int = MAX_ENTRIES,
        max_age: float = MAX_AGE,
        max_bytes: int = MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.max_age = max_age
        self.max_bytes = max_bytes
        self._clock = clock
        # Insertion order is begin order; a key moves to the end when it is recorded, so
        # recorded entries are ordered by age (in-flight ones are few and are skipped).
        self._entries: OrderedDict[str, Recorded | InFlight] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def recorded_bytes(self) -> int:
        return self._bytes

    def lookup(self, key: str) -> Recorded | InFlight | None:
        self._expire()
        return self._entries.get(key)

    def begin(self, key: str) -> InFlight:
        """Mark `key` as running; its duplicates wait until finish()."""
        if key in self._entries:
            raise KeyError(f"idempotency key {key!r} is already known")
        flight = InFlight()
        self._entries[key] = flight
        self._evict()
        return flight

    def finish(self, key: str, flight: InFlight, recorded: Recorded | None) -> None:
        """End the first request of `key`: keep its answer, or forget the key (None)."""
        if self._entries.get(key) is flight:
            del self._entries[key]
            if recorded is not None and len(recorded.body) <= self.max_bytes:
                self._entries[key] = recorded
                self._bytes += len(recorded.body)
                self._evict()
        flight.finish()

    def now(self) -> float:
        return self._clock()

    def _expire(self) -> None:
        oldest_allowed = self._clock() - self.max_age
        for key, entry in list(self._entries.items()):
            if isinstance(entry, InFlight):
                continue
            if entry.recorded_at >= oldest_allowed:
                break
            self._drop(key, entry)

    def _evict(self) -> None:
        """Drop the oldest recorded answers until both bounds hold."""
        if len(self._entries) <= self.max_entries and self._bytes <= self.max_bytes:
            return
        for key, entry in list(self._entries.items()):
            if len(self._entries) <= self.max_entries and self._bytes <= self.max_bytes:
                return
            if isinstance(entry, Recorded):
                self._drop(key, entry)

    def _drop(self, key: str, entry: Recorded) -> None:
        del self._entries[key]
        self._bytes -= len(entry.body)


def idempotency_middleware(cache: IdempotencyCache) -> Middleware:
    """The aiohttp middleware applying `cache` to every request of the app."""

    @web.middleware
    async def idempotent(request: web.Request, handler: Handler) -> web.StreamResponse:
        key = request.headers.get(IDEMPOTENCY_KEY)
        if key is None or request.method in SAFE_METHODS:
            return await handler(request)
        if not valid_idempotency_key(key):
            return _refusal(
                400,
                f"{IDEMPOTENCY_KEY} must be 1-{MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII "
                "characters",
            )
        while True:
            entry = cache.lookup(key)
            if entry is None:
                break
            if isinstance(entry, InFlight):
                await entry.wait()  # then it is recorded, or forgotten and this one runs
                continue
            if await _fingerprint(request) != entry.fingerprint:
                return _refusal(
                    422,
                    f"{IDEMPOTENCY_KEY} {key} was already used for a different request; "
                    "use a new key for a new request",
                )
            return entry.response()
        flight = cache.begin(key)
        recorded: Recorded | None = None
        try:
            response = await handler(request)
            if (
                isinstance(response, web.Response)
                and isinstance(response.body, bytes)
                and response.status not in NOT_RUN_STATUSES
            ):
                recorded = Recorded(
                    fingerprint=await _fingerprint(request),
                    status=response.status,
                    body=response.body,
                    headers=tuple(
                        (name, value)
                        for name, value in response.headers.items()
                        if name.lower() not in _NOT_REPLAYED_HEADERS
                    ),
                    recorded_at=cache.now(),
                )
            return response
        finally:
            cache.finish(key, flight, recorded)

    return idempotent


async def _fingerprint(request: web.Request) -> str:
    """What makes two requests the same request: method, path, query and body."""
    body = await request.read()  # the handler's read is cached; this reads it once only
    if len(body) > _HASH_INLINE_BYTES:
        digest = await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())
    else:
        digest = hashlib.sha256(body).hexdigest()
    return f"{request.method} {request.rel_url} {digest}"


def _refusal(status: int, line: str) -> web.Response:
    return web.Response(
        status=status, text=json.dumps({"errors": [line]}), content_type="application/json"
    )
