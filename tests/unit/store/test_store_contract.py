"""The ResourceStore contract: every backend must pass this suite unchanged."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import pytest

from isthmus.store import (
    Compacted,
    Conflict,
    Event,
    EventType,
    NotFound,
    ObjectKey,
    ResourceStore,
)

StoreFactory = Callable[..., ResourceStore]

VS = ObjectKey("VirtualService", "production", "reviews")
DR = ObjectKey("DestinationRule", "production", "reviews")
NS = ObjectKey("Namespace", "", "production")


def body(key: ObjectKey, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": key.name}
    if key.namespace:
        meta["namespace"] = key.namespace
    return {"apiVersion": "v1", "kind": key.kind, "metadata": meta, "spec": spec}


def test_create_sets_revision_and_resource_version(store: ResourceStore) -> None:
    assert store.revision == 0
    (stored,) = store.apply([(VS, body(VS, hosts=["reviews"]))])
    assert stored.key == VS
    assert stored.resource_version == 1
    assert stored.created_revision == 1
    assert stored.body["metadata"]["resourceVersion"] == "1"
    assert stored.body["metadata"]["creationTimestamp"].endswith("Z")
    assert stored.body["spec"] == {"hosts": ["reviews"]}
    assert store.revision == 1
    assert store.get(VS) == stored


def test_apply_copies_the_callers_body(store: ResourceStore) -> None:
    mine = body(VS, hosts=["reviews"])
    store.apply([(VS, mine)])
    mine["spec"]["hosts"].append("ratings")
    assert "resourceVersion" not in mine["metadata"]
    got = store.get(VS)
    assert got is not None and got.body["spec"]["hosts"] == ["reviews"]


def test_update_bumps_version_and_keeps_creation(store: ResourceStore) -> None:
    (first,) = store.apply([(VS, body(VS, hosts=["a"]))])
    store.apply([(DR, body(DR, host="a"))])
    (second,) = store.apply([(VS, body(VS, hosts=["b"]))])
    assert second.resource_version == 3
    assert second.created_revision == first.created_revision == 1
    assert second.body["metadata"]["resourceVersion"] == "3"
    assert (
        second.body["metadata"]["creationTimestamp"] == first.body["metadata"]["creationTimestamp"]
    )
    assert second.body["spec"] == {"hosts": ["b"]}


def test_unchanged_apply_writes_nothing(store: ResourceStore) -> None:
    (first,) = store.apply([(VS, body(VS, hosts=["a"]))])
    again = body(VS, hosts=["a"])
    again["metadata"]["resourceVersion"] = "999"  # server-set fields never make a change
    again["metadata"]["creationTimestamp"] = "2001-01-01T00:00:00Z"
    (second,) = store.apply([(VS, again)])
    assert second == first
    assert store.revision == 1


async def test_unchanged_apply_emits_no_event(store: ResourceStore) -> None:
    store.apply([(VS, body(VS, hosts=["a"]))])
    store.apply([(VS, body(VS, hosts=["a"]))])
    store.apply([(DR, body(DR, host="a"))])
    events = await take(store, since=0, count=2)
    assert [(e.type, e.object.key, e.revision) for e in events] == [
        (EventType.ADDED, VS, 1),
        (EventType.ADDED, DR, 2),
    ]


def test_apply_of_several_objects_gives_consecutive_revisions(store: ResourceStore) -> None:
    results = store.apply([(NS, body(NS)), (VS, body(VS)), (DR, body(DR))])
    assert [r.resource_version for r in results] == [1, 2, 3]
    assert store.revision == 3


def test_same_key_twice_in_one_apply_applies_in_order(store: ResourceStore) -> None:
    results = store.apply([(VS, body(VS, hosts=["a"])), (VS, body(VS, hosts=["b"]))])
    assert [r.resource_version for r in results] == [1, 2]
    got = store.get(VS)
    assert got is not None and got.body["spec"] == {"hosts": ["b"]} and got.created_revision == 1


def test_delete_removes_and_bumps_revision(store: ResourceStore) -> None:
    store.apply([(VS, body(VS)), (DR, body(DR))])
    (deleted,) = store.delete([VS])
    assert deleted.key == VS
    assert store.get(VS) is None
    assert store.revision == 3
    assert [o.key for o in store.list()] == [DR]


def test_recreate_after_delete_is_a_new_object(store: ResourceStore) -> None:
    store.apply([(VS, body(VS))])
    store.delete([VS])
    (again,) = store.apply([(VS, body(VS))])
    assert again.resource_version == again.created_revision == 3


def test_delete_of_missing_key_changes_nothing(store: ResourceStore) -> None:
    store.apply([(VS, body(VS)), (DR, body(DR))])
    before = store.list()
    missing = ObjectKey("ServiceEntry", "production", "nope")
    with pytest.raises(NotFound) as info:
        store.delete([VS, missing, DR])
    assert info.value.key == missing
    assert str(info.value) == "ServiceEntry production/nope not found"
    assert store.list() == before
    assert store.revision == 2


def test_failed_apply_changes_nothing(store: ResourceStore) -> None:
    store.apply([(VS, body(VS, hosts=["a"]))])
    before = copy.deepcopy(store.list())
    broken = body(DR)
    broken["spec"]["bad"] = object()  # not JSON: the whole apply must be refused
    with pytest.raises(ValueError, match="not JSON"):
        store.apply([(DR, body(DR)), (VS, body(VS, hosts=["b"])), (NS, broken)])
    assert store.list() == before
    assert store.revision == 1


def test_conflicting_resource_version_aborts_the_whole_apply(store: ResourceStore) -> None:
    store.apply([(VS, body(VS, hosts=["a"]))])
    store.apply([(VS, body(VS, hosts=["b"]))])
    stale = body(VS, hosts=["c"])
    stale["metadata"]["resourceVersion"] = "1"
    with pytest.raises(Conflict, match=r"resourceVersion 1 given, 2 stored"):
        store.apply([(DR, body(DR)), (VS, stale)])
    assert store.get(DR) is None
    assert store.revision == 2
    current = body(VS, hosts=["c"])
    current["metadata"]["resourceVersion"] = "2"
    (updated,) = store.apply([(VS, current)])
    assert updated.resource_version == 3


def test_body_without_metadata_is_refused(store: ResourceStore) -> None:
    with pytest.raises(ValueError, match="metadata"):
        store.apply([(VS, {"kind": "VirtualService"})])
    assert store.revision == 0


def test_list_filters_by_kind_and_namespace_sorted(store: ResourceStore) -> None:
    other = ObjectKey("VirtualService", "default", "ratings")
    store.apply([(VS, body(VS)), (DR, body(DR)), (NS, body(NS)), (other, body(other))])
    assert [o.key for o in store.list()] == sorted([VS, DR, NS, other])
    assert [o.key for o in store.list(kind="VirtualService")] == [other, VS]
    assert [o.key for o in store.list(namespace="production")] == [DR, VS]
    assert [o.key for o in store.list(kind="VirtualService", namespace="default")] == [other]
    assert [o.key for o in store.list(namespace="")] == [NS]
    assert store.list(kind="Gateway") == []


def test_revision_is_monotonic(store: ResourceStore) -> None:
    seen = [store.revision]
    for i in range(5):
        store.apply([(VS, body(VS, n=i))])
        seen.append(store.revision)
        store.apply([(VS, body(VS, n=i))])  # no-op
        seen.append(store.revision)
    store.delete([VS])
    seen.append(store.revision)
    assert seen == sorted(seen)
    assert seen[-1] == 6


async def take(store: ResourceStore, since: int, count: int) -> list[Event]:
    """The first `count` events after `since`, failing instead of hanging."""
    events: list[Event] = []

    async def collect() -> None:
        async for event in store.watch(since):
            events.append(event)
            if len(events) == count:
                return

    await asyncio.wait_for(collect(), timeout=5)
    return events


async def test_watch_replays_then_follows_in_revision_order(store: ResourceStore) -> None:
    store.apply([(NS, body(NS)), (VS, body(VS, hosts=["a"]))])
    watcher = asyncio.create_task(take(store, since=0, count=5))
    await asyncio.sleep(0.01)
    store.apply([(VS, body(VS, hosts=["b"])), (DR, body(DR))])
    store.delete([VS])
    events = await watcher
    assert [(e.type, e.object.key, e.revision) for e in events] == [
        (EventType.ADDED, NS, 1),
        (EventType.ADDED, VS, 2),
        (EventType.MODIFIED, VS, 3),
        (EventType.ADDED, DR, 4),
        (EventType.DELETED, VS, 5),
    ]
    assert events[2].object.body["spec"] == {"hosts": ["b"]}
    assert events[4].object.resource_version == 3  # the last state before deletion


async def test_watch_since_skips_older_events(store: ResourceStore) -> None:
    store.apply([(NS, body(NS)), (VS, body(VS)), (DR, body(DR))])
    events = await take(store, since=2, count=1)
    assert [(e.object.key, e.revision) for e in events] == [(DR, 3)]


async def test_concurrent_watchers_each_see_every_event(store: ResourceStore) -> None:
    watchers = [asyncio.create_task(take(store, since=0, count=20)) for _ in range(3)]
    await asyncio.sleep(0.01)
    for i in range(10):
        store.apply([(VS, body(VS, n=i)), (DR, body(DR, n=i))])
        if i % 3 == 0:
            await asyncio.sleep(0)  # let some watchers run between writes
    results = await asyncio.gather(*watchers)
    for events in results:
        assert [e.revision for e in events] == list(range(1, 21))


async def test_slow_watcher_does_not_block_writers(store: ResourceStore) -> None:
    stream = store.watch(0)
    store.apply([(VS, body(VS, n=0))])
    first = await asyncio.wait_for(anext(stream), 5)
    for i in range(1, 50):  # nobody reads the watch meanwhile
        store.apply([(VS, body(VS, n=i))])
    assert store.revision == 50
    rest = [await asyncio.wait_for(anext(stream), 5) for _ in range(49)]
    assert [e.revision for e in [first, *rest]] == list(range(1, 51))
    await stream.aclose()  # type: ignore[attr-defined]


async def test_watch_ends_when_store_closes(store: ResourceStore) -> None:
    store.apply([(VS, body(VS))])
    seen: list[int] = []

    async def follow() -> None:
        async for event in store.watch(0):
            seen.append(event.revision)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.01)
    store.close()
    await asyncio.wait_for(task, 5)
    assert seen == [1]


def test_negative_watch_revision_is_refused(store: ResourceStore) -> None:
    with pytest.raises(ValueError, match="negative"):
        store.watch(-1)


def test_watch_before_retained_history_raises_compacted(make_store: StoreFactory) -> None:
    small = make_store(history=4)
    for i in range(10):
        small.apply([(VS, body(VS, n=i))])
    with pytest.raises(Compacted, match="list again"):
        small.watch(0)
    small.watch(small.revision)  # the current revision is always watchable


async def test_watch_from_the_oldest_retained_revision_replays_it(make_store: StoreFactory) -> None:
    small = make_store(history=4)
    for i in range(10):
        small.apply([(VS, body(VS, n=i))])
    events = await take(small, since=6, count=4)
    assert [e.revision for e in events] == [7, 8, 9, 10]
