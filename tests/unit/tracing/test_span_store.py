"""The span store: bounded (oldest traces go first, whole), indexed, and queried with
Zipkin's semantics."""

from __future__ import annotations

from typing import Any

import pytest
from zipkin_spans import T0, TRACE, span, span_id, trace_id

from isthmus.tracing.spans import Span, normalise_span
from isthmus.tracing.store import SpanStore, TraceQuery

END_MS = T0 // 1000 + 60_000  # a minute after T0
DAY_MS = 86_400_000


def spans(*documents: dict[str, Any]) -> list[Span]:
    return [normalise_span(d) for d in documents]


def one_trace(number: int, services: tuple[str, ...] = ("frontend",), **fields: Any) -> list[Span]:
    """A trace of one span per service, each the child of the one before."""
    documents = []
    for depth, service in enumerate(services):
        documents.append(
            span(
                span_id(number * 100 + depth + 1),
                trace=trace_id(number),
                parent=span_id(number * 100 + depth) if depth else None,
                service=service,
                **fields,
            )
        )
    return spans(*documents)


def query(**fields: Any) -> TraceQuery:
    return TraceQuery(**{"end_ts": END_MS, "lookback": DAY_MS, **fields})


def ids(found: list[list[Span]]) -> list[int]:
    return [int(trace[0].trace_id[16:], 16) for trace in found]


def test_a_trace_reads_back_in_arrival_order_and_duplicates_are_ignored() -> None:
    store = SpanStore()
    first, second = one_trace(1, ("frontend", "backend"))
    assert store.accept([second, first, second]) == 2
    assert store.accept([first]) == 0
    assert store.trace(first.trace_id) == [second, first]
    assert (store.span_count, store.trace_count, store.accepted_total) == (2, 1, 2)
    assert store.byte_count == len(first.encoded) + len(second.encoded)


def test_duplicates_are_ignored_in_large_traces_too() -> None:
    store = SpanStore()
    many = spans(*(span(span_id(n), parent=span_id(1) if n > 1 else None) for n in range(1, 21)))
    assert store.accept(many) == 20
    assert store.accept(many[::-1]) == 0
    assert [s.id for s in store.trace(many[0].trace_id)] == [s.id for s in many]


def test_trace_ids_are_strict() -> None:
    store = SpanStore()
    wide = "1" * 16 + "a" * 16
    store.accept(spans(span("1", trace=wide)))
    assert store.trace("a" * 16) == []
    assert [s.trace_id for s in store.trace(wide)] == [wide]


def test_the_oldest_traces_are_evicted_whole_past_max_spans() -> None:
    store = SpanStore(max_spans=5)
    for number in range(1, 4):
        store.accept(one_trace(number, ("frontend", "backend")))
    # 6 spans > 5: trace 1 went, both its spans.
    assert store.trace(trace_id(1)) == []
    assert [store.trace_count, store.span_count, store.evicted_total] == [2, 4, 2]
    assert sorted(ids(store.traces(query()))) == [2, 3]


def test_eviction_is_by_arrival_not_by_timestamp() -> None:
    store = SpanStore(max_spans=2)
    store.accept(one_trace(1, timestamp=T0 + 10_000_000))  # arrived first, newest clock
    store.accept(one_trace(2, timestamp=T0))
    store.accept(one_trace(3, timestamp=T0 + 1))
    assert store.trace(trace_id(1)) == []
    assert store.trace(trace_id(2)) != []


def test_max_bytes_bounds_what_large_tags_could_grow() -> None:
    big = {"payload": "x" * 10_000}
    store = SpanStore(max_bytes=25_000)
    for number in range(1, 5):
        store.accept(one_trace(number, tags=big))
    assert store.byte_count <= 25_000
    assert [n for n in range(1, 5) if store.trace(trace_id(n))] == [3, 4]


def test_a_service_and_its_names_are_forgotten_with_its_last_span() -> None:
    store = SpanStore(max_spans=2)
    store.accept(one_trace(1, ("old", "shared"), name="first", remote="db"))
    assert store.service_names() == ["old", "shared"]
    store.accept(one_trace(2, ("shared",), name="second"))
    store.accept(one_trace(3, ("shared",), name="second"))
    assert store.service_names() == ["shared"]
    assert store.span_names("shared") == ["second"]
    assert store.span_names("old") == store.remote_service_names("old") == []


def test_names_are_indexed_per_local_service() -> None:
    store = SpanStore()
    store.accept(one_trace(1, ("frontend",), name="get /a", remote="backend"))
    store.accept(one_trace(2, ("frontend",), name="get /b"))
    store.accept(spans(span("9", trace=trace_id(3), service=None, name="orphan")))
    assert store.service_names() == ["frontend"]
    assert store.span_names("Frontend") == ["get /a", "get /b"]
    assert store.remote_service_names("frontend") == ["backend"]
    assert store.span_names("nobody") == []


def test_traces_nearest_to_end_ts_come_first_up_to_the_limit() -> None:
    store = SpanStore()
    for number, offset in ((1, 3), (2, 1), (3, 2), (4, 5)):
        store.accept(one_trace(number, timestamp=T0 + offset * 1_000_000))
    assert ids(store.traces(query())) == [4, 1, 3, 2]
    assert ids(store.traces(query(limit=2))) == [4, 1]


def test_the_window_is_end_ts_minus_lookback_in_milliseconds_on_the_root_span() -> None:
    store = SpanStore()
    root_ms = T0 // 1000
    # The root started at T0; a child reported an earlier clock: the root decides.
    store.accept(
        spans(
            span("2", parent="1", timestamp=T0 - 50_000_000),
            span("1", timestamp=T0),
        )
    )
    assert len(store.traces(query(end_ts=root_ms, lookback=1))) == 1
    assert store.traces(query(end_ts=root_ms - 1, lookback=DAY_MS)) == []
    assert store.traces(query(end_ts=root_ms + 10_000, lookback=9_999)) == []
    # Without a root, the earliest timestamp stands for the trace.
    store.accept(spans(span("5", trace=trace_id(9), parent="4", timestamp=T0 - 50_000_000)))
    assert len(store.traces(query(end_ts=root_ms - 50_000, lookback=1))) == 1


def test_spans_without_a_timestamp_are_not_searchable_but_readable() -> None:
    store = SpanStore()
    store.accept(spans(span("1", timestamp=None)))
    assert store.traces(query()) == []
    assert len(store.trace(TRACE)) == 1


def test_service_name_constrains_span_name_and_duration_to_its_own_spans() -> None:
    store = SpanStore()
    # frontend (10 ms, "get") -> backend (500 ms, "query")
    store.accept(
        spans(
            span("1", trace=trace_id(1), service="frontend", name="get", duration=10_000),
            span(
                "2",
                trace=trace_id(1),
                parent="1",
                service="backend",
                name="query",
                duration=500_000,
                remote="db",
            ),
        )
    )
    assert ids(store.traces(query(min_duration=400_000))) == [1]
    assert ids(store.traces(query(service_name="backend", min_duration=400_000))) == [1]
    assert store.traces(query(service_name="frontend", min_duration=400_000)) == []
    assert ids(store.traces(query(service_name="frontend", min_duration=10_000))) == [1]
    assert store.traces(query(min_duration=10_001, max_duration=499_999)) == []
    assert ids(store.traces(query(min_duration=10_000, max_duration=10_000))) == [1]
    assert ids(store.traces(query(span_name="QUERY"))) == [1]
    assert store.traces(query(service_name="frontend", span_name="query")) == []
    assert ids(store.traces(query(service_name="backend", remote_service_name="db"))) == [1]
    assert store.traces(query(service_name="frontend", remote_service_name="db")) == []
    assert ids(store.traces(query(span_name="all"))) == [1]
    assert store.traces(query(service_name="nobody")) == []


def test_a_query_with_a_service_looks_only_at_its_traces() -> None:
    store = SpanStore()
    store.accept(one_trace(1, ("frontend",)))
    store.accept(one_trace(2, ("backend",)))
    store.accept(one_trace(3, ("frontend", "backend")))
    assert sorted(ids(store.traces(query(service_name="backend")))) == [2, 3]
    assert sorted(ids(store.traces(query(service_name="FRONTEND")))) == [1, 3]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"end_ts": 0}, "endTs must be more than 0"),
        ({"lookback": 0}, "lookback must be more than 0"),
        ({"limit": 0}, "limit must be more than 0"),
        ({"min_duration": 0}, "minDuration must be more than 0"),
        ({"max_duration": 5}, "maxDuration is only valid with minDuration"),
        ({"min_duration": 5, "max_duration": 4}, "maxDuration must not be less than minDuration"),
    ],
)
def test_a_query_is_checked_as_zipkin_checks_it(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        query(**fields)


def test_query_names_are_lower_cased_and_empty_means_any() -> None:
    checked = query(service_name="Frontend", span_name="", remote_service_name="DB")
    assert (checked.service_name, checked.span_name, checked.remote_service_name) == (
        "frontend",
        None,
        "db",
    )


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SpanStore(max_spans=0)
