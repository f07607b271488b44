"""Zipkin's v2 HTTP API on a SpanStore: the collector and the query endpoints (aiohttp).

`collector_app` is what isthmusd serves on its own socket for the sidecars (and, when
asked, on a loopback port for any Zipkin UI); `query_routes` are the read-only endpoints,
which isthmusd also answers on its API socket so the CLI needs no second socket.

POST /api/v2/spans takes a JSON list of v2 spans, plain, chunked, or compressed with
`Content-Encoding: gzip` (aiohttp decodes the body, bounded), and answers 202 as
Zipkin does, or 400 with the reason as plain text. Bodies are parsed on one worker
thread, so a large batch never holds up the event loop isthmusd's xDS server and API
share; beyond MAX_WAITING_BATCHES waiting for it the collector answers 503 (the
reporter drops the batch, as a sampled tracer may). Trace searches, which may scan
every stored span, run on a thread too. Zipkin's protobuf encoding and the
annotationQuery filter are refused as not supported.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from isthmus.tracing.spans import SpanError, decode_spans, normalise_trace_id
from isthmus.tracing.store import SpanStore, TraceQuery, select_traces

__all__ = [
    "DEFAULT_LOOKBACK_MS",
    "MAX_BODY_BYTES",
    "collector_app",
    "query_routes",
]

log = logging.getLogger("isthmus.tracing")

MAX_BODY_BYTES = 16 * 1024 * 1024  # after decompression
MAX_WAITING_BATCHES = 8
DEFAULT_LOOKBACK_MS = 86_400_000  # one day, Zipkin's QUERY_LOOKBACK
DEFAULT_LIMIT = 10
_PROTOBUF = "application/x-protobuf"


class _Zipkin:
    """The handlers, sharing one store (and the clock, replaceable for tests)."""

    def __init__(self, store: SpanStore, now_ms: Callable[[], int]) -> None:
        self.store = store
        self.now_ms = now_ms
        self._executor: ThreadPoolExecutor | None = None
        self._admitted = 0

    async def post_spans(self, request: web.Request) -> web.Response:
        if request.headers.get("Content-Type", "").lower().startswith(_PROTOBUF):
            return _text(415, "only JSON v2 spans are accepted (application/json)")
        if self._admitted > MAX_WAITING_BATCHES:
            return _text(503, "the collector is busy; retry later", {"Retry-After": "1"})
        self._admitted += 1
        try:
            body = await _body(request)
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="isthmus-zipkin")
            loop = asyncio.get_running_loop()
            spans = await loop.run_in_executor(self._executor, decode_spans, body)
        except SpanError as error:
            log.info("zipkin spans_refused reason=%r", str(error))
            return _text(400, str(error))
        finally:
            self._admitted -= 1
        self.store.accept(spans)
        return web.Response(status=202)

    async def services(self, _: web.Request) -> web.Response:
        return web.json_response(self.store.service_names())

    async def span_names(self, request: web.Request) -> web.Response:
        service = request.query.get("serviceName")
        if service is None:
            return _text(400, "serviceName is required")
        return web.json_response(self.store.span_names(service))

    async def remote_services(self, request: web.Request) -> web.Response:
        service = request.query.get("serviceName")
        if service is None:
            return _text(400, "serviceName is required")
        return web.json_response(self.store.remote_service_names(service))

    async def autocomplete_keys(self, _: web.Request) -> web.Response:
        return web.json_response([])  # no tag keys are configured for autocompletion

    async def traces(self, request: web.Request) -> web.Response:
        try:
            query = self._query(request)
        except ValueError as error:
            return _text(400, str(error))
        # A scan of up to every stored span: done on a thread, off the event loop.
        candidates = self.store.candidates(query)
        found = await asyncio.to_thread(select_traces, query, candidates)
        return _json_bytes(_list(_list(s.encoded for s in trace) for trace in found))

    async def trace(self, request: web.Request) -> web.Response:
        given = request.match_info["trace_id"]
        try:
            trace_id = normalise_trace_id(given)
        except SpanError as error:
            return _text(400, str(error))
        spans = self.store.trace(trace_id)
        if not spans:
            return _text(404, f"{given} not found")
        return _json_bytes(_list(s.encoded for s in spans))

    def _query(self, request: web.Request) -> TraceQuery:
        params = request.query
        if params.get("annotationQuery"):
            raise ValueError("annotationQuery is not supported yet")
        end_ts, lookback, limit = (_int(params, n) for n in ("endTs", "lookback", "limit"))
        return TraceQuery(
            end_ts=self.now_ms() if end_ts is None else end_ts,
            lookback=DEFAULT_LOOKBACK_MS if lookback is None else lookback,
            limit=DEFAULT_LIMIT if limit is None else limit,
            service_name=params.get("serviceName"),
            remote_service_name=params.get("remoteServiceName"),
            span_name=params.get("spanName"),
            min_duration=_int(params, "minDuration"),
            max_duration=_int(params, "maxDuration"),
        )

    async def close(self, _: web.Application) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


async def _body(request: web.Request) -> bytes:
    """The request body, decompressed; SpanError when it can not be (a corrupt gzip)."""
    try:
        return await request.read()
    except web.RequestPayloadError as error:
        reason = " ".join(str(error).split())  # aiohttp's message spans lines
        raise SpanError(f"the body could not be read: {reason}") from None


def _int(params: Mapping[str, str], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} {value[:40]!r} is not an integer") from None


def _list(items: Iterable[bytes]) -> bytes:
    """A JSON list of already encoded JSON values."""
    return b"[" + b",".join(items) + b"]"


def _json_bytes(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


def _text(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=reason + "\n", headers=headers)


def _now_ms() -> int:
    return int(time.time() * 1000)


def query_routes(store: SpanStore, now_ms: Callable[[], int] = _now_ms) -> Sequence[web.RouteDef]:
    """Zipkin's read-only endpoints on `store`, to add to any aiohttp application."""
    return _routes(_Zipkin(store, now_ms))


def _routes(api: _Zipkin) -> list[web.RouteDef]:
    return [
        web.get("/api/v2/services", api.services),
        web.get("/api/v2/spans", api.span_names),
        web.get("/api/v2/remoteServices", api.remote_services),
        web.get("/api/v2/autocompleteKeys", api.autocomplete_keys),
        web.get("/api/v2/traces", api.traces),
        web.get("/api/v2/trace/{trace_id}", api.trace),
    ]


def collector_app(store: SpanStore, now_ms: Callable[[], int] = _now_ms) -> web.Application:
    """The collector: POST /api/v2/spans into `store`, and the query endpoints."""
    api = _Zipkin(store, now_ms)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.add_routes([web.post("/api/v2/spans", api.post_spans), *_routes(api)])
    app.on_cleanup.append(api.close)
    return app
