"""Applies and deletes are parsed off the event loop, one at a time, with a bounded wait
list: driven on isthmusd's real app (build_app on a MemoryStore) over real HTTP.

The `validate_apply` hook runs on the parse worker; the tests give it one that holds
the worker until they release it, which is how they know an apply is mid-parse."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from isthmus.api.loader import LoadedObject
from isthmus.daemon.http_api import STORE, ApiHooks, build_app
from isthmus.store import MemoryStore, ObjectKey

Client = TestClient[web.Request, web.Application]


def vs(name: str) -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        f"spec:\n  hosts: [{name}]\n  http:\n  - route:\n    - destination: {{host: {name}}}\n"
    )


def apply_body(*texts: str) -> dict[str, object]:
    return {"documents": [{"source": f"{i}.yaml", "text": t} for i, t in enumerate(texts)]}


@dataclass
class HeldWorker:
    """A validate_apply hook that holds the parse worker until released."""

    release: threading.Event = field(default_factory=threading.Event)
    entered: threading.Event = field(default_factory=threading.Event)
    threads: set[str] = field(default_factory=set)

    def __call__(self, objects: Sequence[LoadedObject]) -> list[str]:
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        self.release.wait(30)
        return []

    async def wait_entered(self) -> None:
        await asyncio.to_thread(self.entered.wait, 30)
        self.entered.clear()


@pytest.fixture
def held() -> HeldWorker:
    return HeldWorker()


@pytest.fixture
async def client(held: HeldWorker) -> AsyncIterator[Client]:
    store = MemoryStore()
    app = build_app(store, ApiHooks(validate_apply=held), max_waiting=1)
    try:
        async with TestClient(TestServer(app)) as running:
            yield running
    finally:
        held.release.set()
        store.close()


async def test_health_and_reads_answer_while_an_apply_is_parsed(
    client: Client, held: HeldWorker
) -> None:
    applying = asyncio.create_task(client.post("/v1/apply", json=apply_body(vs("a"))))
    await held.wait_entered()  # the apply is now inside the worker, not finished
    health = await client.get("/v1/healthz")
    listed = await client.get("/v1/objects")
    assert (health.status, (await health.json())["revision"]) == (200, 0)
    assert (await listed.json())["items"] == []
    assert not applying.done()
    held.release.set()
    applied = await applying
    assert applied.status == 200
    assert (await applied.json())["results"][0]["result"] == "created"
    assert held.threads and all(name.startswith("isthmusd-parse") for name in held.threads)


async def test_beyond_the_wait_list_applies_are_refused_busy(
    client: Client, held: HeldWorker
) -> None:
    running = asyncio.create_task(client.post("/v1/apply", json=apply_body(vs("a"))))
    await held.wait_entered()
    # max_waiting=1: one of these waits for the worker, the other is turned away.
    later = [
        asyncio.create_task(client.post("/v1/apply", json=apply_body(vs(name))))
        for name in ("b", "c")
    ]
    refused = await next(asyncio.as_completed(later))
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "1"
    assert await refused.json() == {
        "errors": ["isthmusd is busy: 1 apply is waiting; retry shortly"]
    }
    held.release.set()
    answers = [await running, *[await t for t in later]]
    assert sorted(a.status for a in answers) == [200, 200, 429]
    listed = await (await client.get("/v1/objects")).json()
    assert len(listed["items"]) == 2 and listed["revision"] == 2


async def test_deletes_share_the_worker_and_stay_all_or_nothing(
    client: Client, held: HeldWorker
) -> None:
    held.release.set()
    created = await client.post("/v1/apply", json=apply_body(vs("a") + "---\n" + vs("b")))
    assert created.status == 200
    missing = await client.request(
        "DELETE",
        "/v1/objects",
        json={"keys": [["VirtualService", "default", "a"], ["VirtualService", "default", "x"]]},
    )
    assert (missing.status, await missing.json()) == (
        404,
        {"errors": ["VirtualService default/x not found"]},
    )
    by_document = await client.request("DELETE", "/v1/objects", json=apply_body(vs("a")))
    assert by_document.status == 200
    listed = await (await client.get("/v1/objects")).json()
    assert [i["metadata"]["name"] for i in listed["items"]] == ["b"]


async def test_a_refused_document_changes_nothing(client: Client, held: HeldWorker) -> None:
    held.release.set()
    bad = vs("bad").replace("hosts:", "hostz:")
    refused = await client.post("/v1/apply", json=apply_body(vs("good"), bad))
    assert refused.status == 422
    assert any("hostz" in line for line in (await refused.json())["errors"])
    store = client.app[STORE]
    assert store.revision == 0 and store.get(ObjectKey("VirtualService", "default", "good")) is None
