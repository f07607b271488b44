"""A trace read as a tree (Zipkin's rules) and summed up in one line."""

from __future__ import annotations

from typing import Any

from zipkin_spans import T0, TRACE, span

from isthmus.tracing.view import SpanNode, span_tree, summarize, walk


def drawn(spans: list[dict[str, Any]]) -> list[str]:
    return [
        f"{prefix}{node.span.get('localEndpoint', {}).get('serviceName')} "
        f"{node.span.get('kind', '-')} {node.span['id']}"
        for prefix, node in walk(span_tree(spans))
    ]


def test_separate_client_and_server_spans_nest_by_parent_id() -> None:
    # order -> inventory -> db, Istio style: every span its own id.
    trace = [
        span("3", parent="2", service="inventory", kind="CLIENT", timestamp=T0 + 300),
        span("1", service="order", kind="CLIENT", timestamp=T0),
        span("4", parent="3", service="db", kind="SERVER", timestamp=T0 + 400),
        span("2", parent="1", service="inventory", kind="SERVER", timestamp=T0 + 200),
    ]
    assert drawn(trace) == [
        "order CLIENT 1",
        "└─ inventory SERVER 2",
        "   └─ inventory CLIENT 3",
        "      └─ db SERVER 4",
    ]


def test_a_shared_span_puts_the_server_under_the_client_and_children_under_the_server() -> None:
    trace = [
        span("a", service="order", kind="CLIENT", timestamp=T0),
        span("a", service="inventory", kind="SERVER", timestamp=T0 + 100, shared=True),
        span("b", parent="a", service="inventory", kind="CLIENT", timestamp=T0 + 200),
    ]
    assert drawn(trace) == [
        "order CLIENT a",
        "└─ inventory SERVER a",
        "   └─ inventory CLIENT b",
    ]


def test_siblings_are_ordered_by_start_and_drawn_with_branches() -> None:
    trace = [
        span("1", service="order", timestamp=T0),
        span("3", parent="1", service="late", timestamp=T0 + 900),
        span("2", parent="1", service="early", timestamp=T0 + 100),
        span("4", parent="2", service="leaf", timestamp=T0 + 150),
        span("5", parent="1", service="unknown-time", timestamp=None),
    ]
    assert drawn(trace) == [
        "order - 1",
        "├─ early - 2",
        "│  └─ leaf - 4",
        "├─ late - 3",
        "└─ unknown-time - 5",
    ]


def test_missing_parents_and_cycles_make_roots_and_nothing_is_lost() -> None:
    trace = [
        span("1", parent="9", service="orphan", timestamp=T0 + 5),
        span("2", parent="3", service="loop", timestamp=T0 + 1),
        span("3", parent="2", service="loop", timestamp=T0 + 2),
    ]
    roots = span_tree(trace)
    seen: list[SpanNode] = [node for _, node in walk(roots)]
    assert sorted(node.span["id"] for node in seen) == ["1", "2", "3"]
    assert roots[-1].span["id"] == "1"


def test_summary_has_the_root_the_span_count_and_first_start_to_last_end() -> None:
    trace = [
        span(
            "2", parent="1", service="inventory", name="ingress", timestamp=T0 + 100, duration=5000
        ),
        span("1", service="order", name="egress inventory", timestamp=T0, duration=4000),
    ]
    summary = summarize(trace)
    assert summary.trace_id == TRACE
    assert (summary.root_service, summary.root_name) == ("order", "egress inventory")
    assert (summary.span_count, summary.start, summary.duration) == (2, T0, 5100)


def test_summary_of_spans_without_times() -> None:
    summary = summarize([span("1", timestamp=None, duration=None)])
    assert (summary.start, summary.duration, summary.span_count) == (0, 0, 1)
