"""isthmus.tracing: the embedded Zipkin v2 collector and query API.

Envoy's Zipkin tracer in every sidecar reports spans; isthmusd keeps them in a bounded
in-memory store and answers Zipkin's query API, so `isthmus traces` and any Zipkin UI
can read them. `spans` checks and normalises spans as Zipkin does, `store` keeps and
queries them, `view` reads a trace as a tree (pure, all three); `app` is the HTTP API
(aiohttp), imported on its own so that readers of traces need no server code.
Imports nothing else of ours.
"""

from isthmus.tracing.spans import Span, SpanError, decode_spans, normalise_trace_id
from isthmus.tracing.store import DEFAULT_MAX_BYTES, DEFAULT_MAX_SPANS, SpanStore, TraceQuery

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_SPANS",
    "Span",
    "SpanError",
    "SpanStore",
    "TraceQuery",
    "decode_spans",
    "normalise_trace_id",
]
