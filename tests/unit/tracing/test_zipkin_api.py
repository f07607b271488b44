"""Zipkin's v2 HTTP API on the collector's real aiohttp app, over real HTTP: what a
reporter posts (plain, chunked, gzip) comes back through the query endpoints."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from zipkin_spans import T0, TRACE, span

from isthmus.tracing.app import MAX_BODY_BYTES, collector_app, query_routes
from isthmus.tracing.store import SpanStore

Client = TestClient[web.Request, web.Application]
NOW_MS = T0 // 1000 + 1000

TRACE_SPANS = [
    span(
        "1",
        service="frontend",
        name="egress backend",
        kind="CLIENT",
        duration=9000,
        remote="backend",
        tags={"http.status_code": "200"},
    ),
    span("2", parent="1", service="backend", name="ingress", kind="SERVER", timestamp=T0 + 500),
]


@pytest.fixture
def store() -> SpanStore:
    return SpanStore()


@pytest.fixture
async def client(store: SpanStore) -> AsyncIterator[Client]:
    async with TestClient(TestServer(collector_app(store, now_ms=lambda: NOW_MS))) as client:
        yield client


async def post(client: Client, payload: Any, **kwargs: Any) -> tuple[int, str]:
    data = json.dumps(payload).encode() if isinstance(payload, list) else payload
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    response = await client.post("/api/v2/spans", data=data, headers=headers, **kwargs)
    return response.status, await response.text()


async def get(client: Client, path: str, **params: Any) -> tuple[int, Any]:
    response = await client.get(path, params={k: str(v) for k, v in params.items()})
    if response.content_type == "application/json":
        return response.status, await response.json()
    return response.status, await response.text()


async def test_posted_spans_are_answered_202_and_read_back(client: Client) -> None:
    assert await post(client, TRACE_SPANS) == (202, "")
    status, trace = await get(client, f"/api/v2/trace/{TRACE}")
    assert status == 200
    assert [(s["id"], s.get("parentId"), s["localEndpoint"]["serviceName"]) for s in trace] == [
        ("0000000000000001", None, "frontend"),
        ("0000000000000002", "0000000000000001", "backend"),
    ]
    assert trace[0]["tags"] == {"http.status_code": "200"}
    assert await get(client, "/api/v2/services") == (200, ["backend", "frontend"])
    assert await get(client, "/api/v2/spans", serviceName="frontend") == (200, ["egress backend"])
    assert await get(client, "/api/v2/remoteServices", serviceName="frontend") == (
        200,
        ["backend"],
    )
    assert await get(client, "/api/v2/autocompleteKeys") == (200, [])


async def test_traces_are_queried_with_zipkins_parameters(client: Client) -> None:
    await post(client, TRACE_SPANS)
    other = "b" * 32
    await post(client, [span("9", trace=other, service="backend", duration=50)])
    status, traces = await get(client, "/api/v2/traces")  # endTs: the collector's clock
    assert status == 200
    assert sorted(t[0]["traceId"] for t in traces) == sorted([TRACE, other])
    assert all(isinstance(s, dict) for t in traces for s in t)
    _, slow = await get(client, "/api/v2/traces", minDuration=1000)
    assert [t[0]["traceId"] for t in slow] == [TRACE]
    _, one = await get(client, "/api/v2/traces", limit=1, serviceName="BACKEND")
    assert len(one) == 1
    _, named = await get(client, "/api/v2/traces", spanName="ingress", serviceName="backend")
    assert [len(t) for t in named] == [2]
    _, before = await get(client, "/api/v2/traces", endTs=T0 // 1000 - 1)
    assert before == []
    _, window = await get(client, "/api/v2/traces", endTs=NOW_MS, lookback=1000)
    assert len(window) == 2


async def test_chunked_and_gzip_bodies_are_accepted(client: Client) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        data = json.dumps(TRACE_SPANS).encode()
        for start in range(0, len(data), 7):
            yield data[start : start + 7]

    assert await post(client, chunks()) == (202, "")
    compressed = gzip.compress(json.dumps([span("3", service="gzipped")]).encode())
    assert await post(client, compressed, headers={"Content-Encoding": "gzip"}) == (202, "")
    assert (await get(client, "/api/v2/services"))[1] == ["backend", "frontend", "gzipped"]


async def test_a_corrupt_gzip_body_is_refused_400(client: Client) -> None:
    status, text = await post(client, b"[]", headers={"Content-Encoding": "gzip"})
    assert status == 400
    assert "the body could not be read" in text


async def test_a_missing_content_type_is_read_as_json(client: Client) -> None:
    response = await client.post("/api/v2/spans", data=json.dumps(TRACE_SPANS).encode())
    assert response.status == 202


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "expected a JSON list of Zipkin v2 spans"),
        (json.dumps([span("1"), span("1", kind="LOCAL")]).encode(), "span[1]: kind: 'LOCAL'"),
    ],
)
async def test_a_bad_body_is_refused_400_with_the_reason_and_nothing_stored(
    client: Client, store: SpanStore, payload: bytes, reason: str
) -> None:
    status, text = await post(client, payload)
    assert status == 400
    assert reason in text
    assert store.span_count == 0


async def test_protobuf_and_oversized_bodies_are_refused(client: Client) -> None:
    status, text = await post(client, b"\x0a", headers={"Content-Type": "application/x-protobuf"})
    assert (status, "only JSON v2" in text) == (415, True)
    status, _ = await post(client, io.BytesIO(b"[" + b" " * MAX_BODY_BYTES + b"]"))
    assert status == 413


@pytest.mark.parametrize(
    ("path", "params", "status", "reason"),
    [
        (f"/api/v2/trace/{'c' * 32}", {}, 404, f"{'c' * 32} not found"),
        ("/api/v2/trace/XYZ", {}, 400, "traceId 'XYZ' is not lower-hex"),
        ("/api/v2/spans", {}, 400, "serviceName is required"),
        ("/api/v2/remoteServices", {}, 400, "serviceName is required"),
        ("/api/v2/traces", {"limit": "ten"}, 400, "limit 'ten' is not an integer"),
        ("/api/v2/traces", {"maxDuration": 5}, 400, "only valid with minDuration"),
        ("/api/v2/traces", {"annotationQuery": "error"}, 400, "annotationQuery is not supported"),
    ],
)
async def test_bad_queries_say_why(
    client: Client, path: str, params: dict[str, Any], status: int, reason: str
) -> None:
    answer = await get(client, path, **params)
    assert answer[0] == status
    assert reason in answer[1]


async def test_the_query_routes_serve_from_any_app(store: SpanStore) -> None:
    app = web.Application()
    app.add_routes(query_routes(store, now_ms=lambda: NOW_MS))
    async with TestClient(TestServer(app)) as client:
        assert await get(client, "/api/v2/services") == (200, [])
        response = await client.post("/api/v2/spans", data=b"[]")
        assert response.status == 405  # reading only: spans arrive on the collector
