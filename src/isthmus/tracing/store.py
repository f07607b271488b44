"""A bounded in-memory span store with Zipkin's query semantics (zipkin2 `InMemoryStorage`
and `QueryRequest`).

Bounded twice, so that sidecars reporting faster than anyone reads can never grow
isthmusd: by span count (`max_spans`, as Zipkin's `maxSpanCount`) and by encoded bytes
(`max_bytes`, since one span's tags can be large). Past either bound the oldest traces
go first, whole. "Oldest" is the order traces first arrived in, not their timestamps as
in Zipkin: a reporter with a skewed clock can then neither pin its traces in memory nor
have them dropped at once. Exact duplicates of a stored span are ignored, as Zipkin's
set of spans per trace ignores them.

Trace ids are strict (a 128-bit id and its low 64 bits are different traces), as
Zipkin's default. Pure: no I/O, no clock (the caller passes `end_ts`).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from isthmus.tracing.spans import Span

DEFAULT_MAX_SPANS = 100_000
DEFAULT_MAX_BYTES = 128 * 1024 * 1024
_SMALL_TRACE = 8


@dataclass(frozen=True)
class TraceQuery:
    """GET /api/v2/traces: Zipkin's QueryRequest, checked and lower-cased as Zipkin does.

    `end_ts` and `lookback` are epoch milliseconds (Zipkin's query grain); durations are
    microseconds, the grain of Span.duration. ValueError says what is wrong.
    """

    end_ts: int
    lookback: int
    limit: int = 10
    service_name: str | None = None
    remote_service_name: str | None = None
    span_name: str | None = None
    min_duration: int | None = None
    max_duration: int | None = None

    def __post_init__(self) -> None:
        lower = {
            "service_name": self.service_name,
            "remote_service_name": self.remote_service_name,
            "span_name": self.span_name,
        }
        for name, value in lower.items():
            value = value.lower() if value else None
            if name == "span_name" and value == "all":  # Zipkin's reserved "any name"
                value = None
            object.__setattr__(self, name, value)
        for field_name, number in (
            ("endTs", self.end_ts),
            ("lookback", self.lookback),
            ("limit", self.limit),
        ):
            if number <= 0:
                raise ValueError(f"{field_name} must be more than 0")
        if self.min_duration is not None:
            if self.min_duration <= 0:
                raise ValueError("minDuration must be more than 0")
            if self.max_duration is not None and self.max_duration < self.min_duration:
                raise ValueError("maxDuration must not be less than minDuration")
        elif self.max_duration is not None:
            raise ValueError("maxDuration is only valid with minDuration")


@dataclass(slots=True)
class Trace:
    """The spans of one trace id in arrival order, and the trace's timestamp as Zipkin's
    QueryRequest.test takes it: the first root span's (no parentId), else the earliest."""

    spans: list[Span] = field(default_factory=list)
    # For spotting duplicates once the trace is large; a few spans are simply compared.
    encodings: set[bytes] | None = None
    timestamp: int = 0  # epoch microseconds; 0 while no span has one
    root_timestamp: int = 0
    min_timestamp: int = 0

    def add(self, span: Span) -> bool:
        if self.encodings is None and len(self.spans) >= _SMALL_TRACE:
            self.encodings = {s.encoded for s in self.spans}
        if self.encodings is not None:
            if span.encoded in self.encodings:
                return False
            self.encodings.add(span.encoded)
        elif any(s.encoded == span.encoded for s in self.spans):
            return False
        self.spans.append(span)
        if span.timestamp:
            if span.parent_id is None and not self.root_timestamp:
                self.root_timestamp = span.timestamp
            if not self.min_timestamp or span.timestamp < self.min_timestamp:
                self.min_timestamp = span.timestamp
            self.timestamp = self.root_timestamp or self.min_timestamp
        return True


class SpanStore:
    """Spans by trace, with the indexes Zipkin's query API needs; bounded (see module)."""

    def __init__(
        self, max_spans: int = DEFAULT_MAX_SPANS, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        if max_spans <= 0 or max_bytes <= 0:
            raise ValueError("max_spans and max_bytes must be more than 0")
        self.max_spans = max_spans
        self.max_bytes = max_bytes
        self.span_count = 0
        self.byte_count = 0
        self.accepted_total = 0  # spans stored since start, duplicates not counted
        self.evicted_total = 0  # spans dropped to stay within the bounds
        self._traces: OrderedDict[str, Trace] = OrderedDict()
        self._service_traces: dict[str, dict[str, None]] = {}  # ordered set of trace ids
        self._span_names: dict[str, Counter[str]] = {}  # service -> name -> span count
        self._remote_services: dict[str, Counter[str]] = {}

    @property
    def trace_count(self) -> int:
        return len(self._traces)

    def accept(self, spans: Iterable[Span]) -> int:
        """Store spans (any traces, any order); returns how many were new. Evicts the
        oldest traces afterwards if a bound is exceeded."""
        stored = 0
        for span in spans:
            trace = self._traces.get(span.trace_id)
            if trace is None:
                trace = self._traces[span.trace_id] = Trace()
            if not trace.add(span):
                continue
            stored += 1
            self.span_count += 1
            self.byte_count += len(span.encoded)
            self._index(span)
        self.accepted_total += stored
        while self._traces and (
            self.span_count > self.max_spans or self.byte_count > self.max_bytes
        ):
            self._evict_oldest()
        return stored

    def trace(self, trace_id: str) -> list[Span]:
        """The spans of one (normalised) trace id in arrival order; [] if unknown."""
        trace = self._traces.get(trace_id)
        return list(trace.spans) if trace is not None else []

    def traces(self, query: TraceQuery) -> list[list[Span]]:
        """Traces matching `query`, nearest to its end_ts first, at most `query.limit`."""
        return select_traces(query, self.candidates(query))

    def candidates(self, query: TraceQuery) -> list[Trace]:
        """The traces `query` has to look at (those of its service, else all): a list of
        their own, cheap to take; select_traces does the rest, on another thread if need be."""
        if query.service_name is None:
            return list(self._traces.values())
        traces = self._traces
        return [traces[i] for i in self._service_traces.get(query.service_name, ())]

    def service_names(self) -> list[str]:
        return sorted(self._service_traces)

    def span_names(self, service: str) -> list[str]:
        return sorted(self._span_names.get(service.lower(), ()))

    def remote_service_names(self, service: str) -> list[str]:
        return sorted(self._remote_services.get(service.lower(), ()))

    def _index(self, span: Span) -> None:
        service = span.local_service
        if service is None:
            return
        self._service_traces.setdefault(service, {})[span.trace_id] = None
        if span.name is not None:
            self._span_names.setdefault(service, Counter())[span.name] += 1
        if span.remote_service is not None:
            self._remote_services.setdefault(service, Counter())[span.remote_service] += 1

    def _evict_oldest(self) -> None:
        trace_id, trace = self._traces.popitem(last=False)
        for span in trace.spans:
            self.span_count -= 1
            self.byte_count -= len(span.encoded)
            self.evicted_total += 1
            service = span.local_service
            if service is None:
                continue
            traces = self._service_traces.get(service)
            if traces is not None:
                traces.pop(trace_id, None)
                if not traces:
                    del self._service_traces[service]
            _forget(self._span_names, service, span.name)
            _forget(self._remote_services, service, span.remote_service)


def _forget(index: dict[str, Counter[str]], service: str, name: str | None) -> None:
    """One span fewer with this name; names and services no span has any more go."""
    names = index.get(service)
    if names is None or name is None:
        return
    names[name] -= 1
    if names[name] <= 0:
        del names[name]
    if not names:
        del index[service]


def select_traces(query: TraceQuery, candidates: Sequence[Trace]) -> list[list[Span]]:
    """Of `candidates`, those in the query's window that match it, nearest to end_ts first,
    at most `query.limit`. Only reads the traces, each span list copied before use: safe
    to run on a worker thread while the event loop keeps adding spans (they are seen or
    not, never half), which is how the API keeps long queries off the loop."""
    begin, end = (query.end_ts - query.lookback) * 1000, query.end_ts * 1000
    in_range = [t for t in candidates if t.timestamp and begin <= t.timestamp <= end]
    in_range.sort(key=_timestamp, reverse=True)
    found: list[list[Span]] = []
    for trace in in_range:
        if len(found) >= query.limit:
            break
        spans = list(trace.spans)
        if matches(query, spans):
            found.append(spans)
    return found


def _timestamp(trace: Trace) -> int:
    return trace.timestamp


def matches(query: TraceQuery, spans: Sequence[Span]) -> bool:
    """Zipkin's QueryRequest.test without the time window (the store applies it) and
    without annotationQuery (not supported): the service name, when given, constrains
    the other criteria to that service's spans."""
    tested_duration = query.min_duration is None and query.max_duration is None
    service_found = query.service_name is None
    remote_wanted = query.remote_service_name
    name_wanted = query.span_name
    for span in spans:
        if query.service_name is not None and span.local_service != query.service_name:
            continue
        service_found = True
        if remote_wanted is not None and remote_wanted == span.remote_service:
            remote_wanted = None
        if name_wanted is not None and name_wanted == span.name:
            name_wanted = None
        if not tested_duration and query.min_duration is not None:
            longest = query.max_duration
            tested_duration = span.duration >= query.min_duration and (
                longest is None or span.duration <= longest
            )
    return service_found and remote_wanted is None and name_wanted is None and tested_duration
