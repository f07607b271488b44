"""isthmusd's JWKS resolver, against a real loopback HTTP server: what it fetches, when it
refetches, how failures fail closed, and how the mesh controller takes the result."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest

from isthmus.daemon import jwks as refresher_module
from isthmus.daemon.jwks import JwksRefresher
from isthmus.daemon.jwks_fetch import (
    MAX_BODY_BYTES,
    blocked_address_error,
    client_session,
    resolve_jwks,
)
from isthmus.daemon.mesh import MeshController
from isthmus.model.jwks import JwksSource
from isthmus.store import MemoryStore, ObjectKey
from isthmus.testing.jwt import JwksServer, RsaIssuer
from isthmus.testing.ports import LOOPBACK

FIVE_S = timedelta(seconds=5)
FIRST = RsaIssuer("https://first.example.com", kid="first")
SECOND = RsaIssuer("https://second.example.com", kid="second")


@pytest.fixture
def server() -> Iterator[JwksServer]:
    with JwksServer({"/first": (200, FIRST.jwks()), "/second": (200, SECOND.jwks())}) as s:
        yield s


async def resolve(sources: Mapping[JwksSource, timedelta]) -> dict[JwksSource, str | None]:
    async with client_session() as session:
        return await resolve_jwks(session, sources)


async def test_fetches_every_source(server: JwksServer) -> None:
    first, second = JwksSource(server.url("/first")), JwksSource(server.url("/second"))

    assert await resolve({first: FIVE_S, second: FIVE_S}) == {
        first: FIRST.jwks(),
        second: SECOND.jwks(),
    }


async def test_openid_discovery_leads_to_the_key_set(server: JwksServer) -> None:
    document = {"issuer": server.url(""), "jwks_uri": server.url("/first")}
    server.routes["/.well-known/openid-configuration"] = (200, json.dumps(document))
    source = JwksSource(server.url("/.well-known/openid-configuration"), discovery=True)

    assert await resolve({source: FIVE_S}) == {source: FIRST.jwks()}


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        ((500, "boom"), "status 500"),
        ((200, '{"keys": "none"}'), 'not a usable key set: jwks "keys" must be a list'),
        ((200, "<html>"), "not a usable key set: jwks is not valid JSON"),
        ((200, " " * (MAX_BODY_BYTES + 1)), f"answer larger than {MAX_BODY_BYTES} bytes"),
    ],
)
async def test_a_bad_answer_is_a_logged_failure(
    server: JwksServer, route: tuple[int, str], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    server.routes["/bad"] = route
    source = JwksSource(server.url("/bad"))

    with caplog.at_level(logging.WARNING, logger="isthmus.jwks"):
        assert await resolve({source: FIVE_S}) == {source: None}

    assert reason in caplog.text and "jwks fetch_failed" in caplog.text


async def test_discovery_without_a_jwks_uri_fails(server: JwksServer) -> None:
    server.routes["/.well-known/openid-configuration"] = (200, json.dumps({"jwks_uri": "ftp://x"}))
    source = JwksSource(server.url("/.well-known/openid-configuration"), discovery=True)

    assert await resolve({source: FIVE_S}) == {source: None}


async def test_a_server_that_never_answers_fails_within_the_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind((LOOPBACK, 0))
        silent.listen()
        source = JwksSource(f"http://{LOOPBACK}:{silent.getsockname()[1]}/jwks")

        assert await resolve({source: timedelta(milliseconds=200)}) == {source: None}


@pytest.mark.parametrize(
    "uri",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]:8080/jwks",
        "http://100.100.100.200/jwks",
    ],
)
async def test_link_local_and_metadata_addresses_are_refused_before_connecting(
    uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="isthmus.jwks"):
        assert await resolve({JwksSource(uri): FIVE_S}) == {JwksSource(uri): None}

    assert "link-local or cloud metadata address" in caplog.text


def test_blocked_addresses() -> None:
    assert blocked_address_error("169.254.1.2") is not None
    assert blocked_address_error("fe80::1%eth0") is not None
    assert blocked_address_error("fd00:ec2::254") is not None
    assert blocked_address_error("127.0.0.1") is None
    assert blocked_address_error("10.0.0.1") is None  # in-cluster issuers live here


# --- the refresher: store in, controller out ----------------------------------------------


def put_authentication(store: MemoryStore, name: str, *uris: str) -> None:
    rules = [{"issuer": f"https://{name}.example.com", "jwksUri": uri} for uri in uris]
    body: dict[str, Any] = {
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": {"name": name, "namespace": "production"},
        "spec": {"jwtRules": rules},
    }
    store.apply([(ObjectKey("RequestAuthentication", "production", name), body)])


class Changes:
    def __init__(self) -> None:
        self.seen: list[dict[JwksSource, str | None]] = []
        self.event = asyncio.Event()

    def __call__(self, jwks: Mapping[JwksSource, str | None]) -> None:
        self.seen.append(dict(jwks))
        self.event.set()

    async def next(self) -> dict[JwksSource, str | None]:
        await asyncio.wait_for(self.event.wait(), timeout=30)  # guards a hang only
        self.event.clear()
        return self.seen[-1]


async def test_sync_fetches_new_sources_and_refresh_refetches_all(server: JwksServer) -> None:
    store, changes = MemoryStore(), Changes()
    put_authentication(store, "a", server.url("/first"))
    refresher = JwksRefresher(store, changes)
    first = JwksSource(server.url("/first"))

    async with client_session() as session:
        assert await refresher.sync(session, refresh=False) is False
        assert changes.seen == [{first: FIRST.jwks()}]

        server.routes["/first"] = (200, SECOND.jwks())  # the issuer rotated its keys
        await refresher.sync(session, refresh=False)  # a change elsewhere: nothing new here
        assert len(changes.seen) == 1 and server.requests.count("/first") == 1

        await refresher.sync(session, refresh=True)
        assert changes.seen[-1] == {first: SECOND.jwks()}


async def test_a_failed_refresh_keeps_the_keys_and_a_failed_first_fetch_fails_closed(
    server: JwksServer,
) -> None:
    store, changes = MemoryStore(), Changes()
    put_authentication(store, "a", server.url("/first"), server.url("/missing"))
    refresher = JwksRefresher(store, changes)
    first, missing = JwksSource(server.url("/first")), JwksSource(server.url("/missing"))

    async with client_session() as session:
        assert await refresher.sync(session, refresh=True) is True
        assert changes.seen == [{first: FIRST.jwks(), missing: None}]

        server.routes["/first"] = (503, "down")
        assert await refresher.sync(session, refresh=True) is True
        assert len(changes.seen) == 1  # nothing changed: the old keys stay

        server.routes["/missing"] = (200, SECOND.jwks())
        assert await refresher.sync(session, refresh=False) is False  # retried: it was None
        assert changes.seen[-1] == {first: FIRST.jwks(), missing: SECOND.jwks()}


async def test_run_follows_request_authentication_changes(server: JwksServer) -> None:
    store, changes = MemoryStore(), Changes()
    put_authentication(store, "a", server.url("/first"))
    task = asyncio.create_task(JwksRefresher(store, changes).run())
    try:
        assert await changes.next() == {JwksSource(server.url("/first")): FIRST.jwks()}

        put_authentication(store, "b", server.url("/second"))
        assert await changes.next() == {
            JwksSource(server.url("/first")): FIRST.jwks(),
            JwksSource(server.url("/second")): SECOND.jwks(),
        }

        store.delete([ObjectKey("RequestAuthentication", "production", "a")])
        assert await changes.next() == {JwksSource(server.url("/second")): SECOND.jwks()}
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_refresh_interval_backs_off_as_istios() -> None:
    refresher = JwksRefresher(MemoryStore(), Changes())
    minute, hour = timedelta(minutes=1), timedelta(hours=1)

    intervals = []
    failed_before = False
    for failed in (True, True, True, True, True, True, True, True, False):
        refresher._interval = refresher._next_interval(failed, failed_before)
        failed_before = failed
        intervals.append(refresher._interval)

    assert intervals == [minute * n for n in (1, 2, 4, 8, 16, 32)] + [hour, hour] + [
        refresher_module.REFRESH_INTERVAL
    ]


def test_the_controller_builds_with_the_fetched_keys() -> None:
    store = MemoryStore()
    put_authentication(store, "a", "https://a.example.com/jwks")
    controller = MeshController(store)
    source = JwksSource("https://a.example.com/jwks")
    before = controller.mesh

    controller.set_jwks({source: FIRST.jwks(), JwksSource("https://unused/jwks"): "x"})

    after = controller.mesh
    assert before.jwks == {} and after.jwks == {source: FIRST.jwks()}
    assert after.version != before.version
    assert [e.name for e in after.request_authentications] == ["a"]


def test_each_source_is_fetched_within_the_longest_timeout_its_rules_allow() -> None:
    store = MemoryStore()
    body: dict[str, Any] = {
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": {"name": "a", "namespace": "production"},
        "spec": {
            "jwtRules": [
                {"issuer": "a", "jwksUri": "https://a/jwks", "timeout": "2s"},
                {"issuer": "b", "jwksUri": "https://a/jwks", "timeout": "7s"},
                {"issuer": "https://c.example.com/"},
                {"issuer": "d", "jwks": FIRST.jwks()},
            ]
        },
    }
    store.apply([(ObjectKey("RequestAuthentication", "production", "a"), body)])

    assert JwksRefresher(store, Changes()).wanted() == {
        JwksSource("https://a/jwks"): timedelta(seconds=7),
        JwksSource("https://c.example.com/.well-known/openid-configuration", True): FIVE_S,
    }
