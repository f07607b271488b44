"""Idempotency keys: the cache's bounds, and the middleware on a real aiohttp server
(isthmusd's own app from build_app, with a route added through ApiHooks.extra_routes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from isthmus.daemon.http_api import IDEMPOTENCY, ApiHooks, build_app
from isthmus.daemon.idempotency import IdempotencyCache, InFlight, Recorded
from isthmus.store import MemoryStore

KEY = "Idempotency-Key"
REPLAYED = "Idempotency-Replayed"


# --- the cache ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(cache: IdempotencyCache, key: str, body: bytes = b"{}") -> None:
    flight = cache.begin(key)
    cache.finish(key, flight, Recorded("POST /x abc", 200, body, (), cache.now()))


def test_recorded_answer_is_found_until_it_expires() -> None:
    clock = Clock()
    cache = IdempotencyCache(max_age=3600, clock=clock)
    record(cache, "a")
    clock.now += 3599
    record(cache, "b")
    found = cache.lookup("a")
    assert isinstance(found, Recorded) and found.body == b"{}"
    clock.now += 2  # "a" is now older than an hour, "b" is not
    assert cache.lookup("a") is None
    assert isinstance(cache.lookup("b"), Recorded)
    assert len(cache) == 1


def test_only_the_newest_keys_are_kept() -> None:
    cache = IdempotencyCache(max_entries=3)
    running = cache.begin("running")
    for key in ("k1", "k2", "k3"):
        record(cache, key)
    assert len(cache) == 3
    assert cache.lookup("k1") is None  # the oldest recorded answer went first
    assert cache.lookup("running") is running  # a running request is never forgotten
    assert [k for k in ("k2", "k3") if isinstance(cache.lookup(k), Recorded)] == ["k2", "k3"]


def test_recorded_bytes_are_bounded() -> None:
    cache = IdempotencyCache(max_bytes=10)
    record(cache, "a", b"x" * 6)
    record(cache, "b", b"y" * 6)
    assert cache.lookup("a") is None
    assert isinstance(cache.lookup("b"), Recorded)
    assert cache.recorded_bytes == 6
    record(cache, "huge", b"z" * 11)  # larger than the whole budget: not kept at all
    assert cache.lookup("huge") is None
    assert cache.recorded_bytes == 6


async def test_forgotten_key_wakes_its_waiters() -> None:
    cache = IdempotencyCache()
    flight = cache.begin("k")
    entry = cache.lookup("k")
    assert isinstance(entry, InFlight)
    waiter = asyncio.create_task(entry.wait())
    cache.finish("k", flight, None)
    await waiter
    assert cache.lookup("k") is None


# --- the middleware on isthmusd's app ---------------------------------------------------


@dataclass
class Counter:
    """A POST route that counts its runs; `gate` holds a run until it is set."""

    runs: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    statuses: list[int] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.runs += 1
        self.entered.set()
        await self.gate.wait()
        body = await request.read()
        status = self.statuses.pop(0) if self.statuses else 201
        if status == 500:
            raise RuntimeError("boom")
        return web.json_response({"run": self.runs, "echo": body.decode()}, status=status)


@pytest.fixture
async def served() -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Counter]]:
    counter = Counter()
    hooks = ApiHooks(
        extra_routes=[web.post("/v1/count", counter.handle), web.get("/v1/count", counter.handle)]
    )
    store = MemoryStore()
    async with TestClient(TestServer(build_app(store, hooks))) as client:
        yield client, counter
    store.close()


async def test_later_duplicate_gets_the_recorded_answer(
    served: tuple[TestClient[web.Request, web.Application], Counter],
) -> None:
    client, counter = served
    counter.gate.set()
    first = await client.post("/v1/count", data=b"hello", headers={KEY: "k-1"})
    again = await client.post("/v1/count", data=b"hello", headers={KEY: "k-1"})
    assert (first.status, await first.json()) == (201, {"run": 1, "echo": "hello"})
    assert (again.status, await again.json()) == (201, {"run": 1, "echo": "hello"})
    assert REPLAYED not in first.headers
    assert again.headers[REPLAYED] == "true"
    assert again.headers["Content-Type"].startswith("application/json")
    assert counter.runs == 1
    other = await client.post("/v1/count", data=b"hello", headers={KEY: "k-2"})
    assert (await other.json())["run"] == 2  # another key runs


async def test_concurrent_duplicate_waits_for_the_first(
    served: tuple[TestClient[web.Request, web.Application], Counter],
) -> None:
    client, counter = served
    first = asyncio.create_task(client.post("/v1/count", data=b"x", headers={KEY: "k"}))
    await counter.entered.wait()
    running = client.app[IDEMPOTENCY].lookup("k")
    assert isinstance(running, InFlight)
    second = asyncio.create_task(client.post("/v1/count", data=b"x", headers={KEY: "k"}))
    while running.waiting == 0:  # the duplicate has arrived and waits for the first
        await asyncio.sleep(0.01)
    assert not second.done()
    counter.gate.set()
    answers = [await first, await second]
    assert [await a.json() for a in answers] == [{"run": 1, "echo": "x"}] * 2
    assert answers[1].headers[REPLAYED] == "true"
    assert counter.runs == 1


async def test_key_reused_for_another_request_is_refused(
    served: tuple[TestClient[web.Request, web.Application], Counter],
) -> None:
    client, counter = served
    counter.gate.set()
    await client.post("/v1/count", data=b"one", headers={KEY: "k"})
    other = await client.post("/v1/count", data=b"two", headers={KEY: "k"})
    assert other.status == 422
    assert (await other.json())["errors"][0].startswith(
        "Idempotency-Key k was already used for a different request"
    )
    assert counter.runs == 1


async def test_busy_answers_are_not_recorded_failures_are(
    served: tuple[TestClient[web.Request, web.Application], Counter],
) -> None:
    client, counter = served
    counter.gate.set()
    counter.statuses = [429, 500]
    busy = await client.post("/v1/count", data=b"x", headers={KEY: "k"})
    assert busy.status == 429
    failed = await client.post("/v1/count", data=b"x", headers={KEY: "k"})
    assert failed.status == 500  # recorded: it ran; a replay says the same
    replay = await client.post("/v1/count", data=b"x", headers={KEY: "k"})
    assert (replay.status, replay.headers[REPLAYED]) == (500, "true")
    assert counter.runs == 2


async def test_reads_and_requests_without_a_key_always_run(
    served: tuple[TestClient[web.Request, web.Application], Counter],
) -> None:
    client, counter = served
    counter.gate.set()
    for _ in range(2):
        await client.get("/v1/count", headers={KEY: "k"})
        await client.post("/v1/count", data=b"x")
    assert counter.runs == 4


async def test_malformed_key_is_refused(
    served: tuple[TestClient[web.Request, web.Application], Counter],
) -> None:
    client, counter = served
    counter.gate.set()
    refused = await client.post("/v1/count", data=b"x", headers={KEY: "has space"})
    assert refused.status == 400
    assert (await refused.json())["errors"] == [
        "Idempotency-Key must be 1-255 visible ASCII characters"
    ]
    assert counter.runs == 0
