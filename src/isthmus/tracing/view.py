"""How a trace reads: its spans as a tree, and a one-line summary of it.

Works on spans as the query API returns them (Zipkin JSON v2 objects), so `isthmus
traces` and any other reader share one reading. The tree follows Zipkin's rules
(zipkin2 `SpanNode`): a span hangs under its parent; when a client and a server report
the same span id (B3's shared span, Envoy's `shared_span_context`), the server side is
the child of the client side and the span's children hang under the server side, where
the work happened. Spans whose parent is missing (not sampled, not yet reported, or
evicted) become roots; so do spans caught in a parent cycle, which only bad data makes.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

JsonSpan = Mapping[str, Any]


@dataclass
class SpanNode:
    span: JsonSpan
    children: list[SpanNode] = field(default_factory=list)


@dataclass(frozen=True)
class TraceSummary:
    """What a list of traces shows per trace; times are microseconds (0 = unknown)."""

    trace_id: str
    root_service: str
    root_name: str
    span_count: int
    start: int
    duration: int


def span_tree(spans: Sequence[JsonSpan]) -> list[SpanNode]:
    """The trace's roots, each with its subtree; siblings ordered by start time."""
    nodes = [SpanNode(span) for span in spans]
    by_id: dict[str, list[SpanNode]] = {}
    for node in nodes:
        by_id.setdefault(str(node.span.get("id")), []).append(node)
    parents = {id(node): _parent(node, by_id) for node in nodes}
    roots = []
    for node in nodes:
        parent = parents[id(node)]
        if parent is None or _in_cycle(node, parents):
            parents[id(node)] = None
            roots.append(node)
        else:
            parent.children.append(node)
    for node in nodes:
        node.children.sort(key=_start_key)
    roots.sort(key=_start_key)
    return roots


def _parent(node: SpanNode, by_id: Mapping[str, Sequence[SpanNode]]) -> SpanNode | None:
    span = node.span
    same_id = by_id.get(str(span.get("id")), ())
    if span.get("kind") == "SERVER":
        for other in same_id:
            if other is not node and other.span.get("kind") == "CLIENT":
                return other
    parent_id = span.get("parentId")
    if parent_id is None:
        return None
    candidates = [other for other in by_id.get(str(parent_id), ()) if other is not node]
    for other in candidates:
        if other.span.get("kind") == "SERVER":
            return other
    return candidates[0] if candidates else None


def _in_cycle(node: SpanNode, parents: Mapping[int, SpanNode | None]) -> bool:
    seen = {id(node)}
    current = parents[id(node)]
    while current is not None:
        if id(current) in seen:
            return True
        seen.add(id(current))
        current = parents[id(current)]
    return False


def _start_key(node: SpanNode) -> tuple[int, str]:
    timestamp = node.span.get("timestamp")
    return (timestamp if isinstance(timestamp, int) else 2**63, str(node.span.get("name", "")))


def walk(roots: Sequence[SpanNode]) -> Iterator[tuple[str, SpanNode]]:
    """Depth first, each node with the tree prefix that draws its place (`├─ `, `└─ `)."""

    def visit(node: SpanNode, lead: str, branch: str) -> Iterator[tuple[str, SpanNode]]:
        yield lead + branch, node
        below = lead + ("" if not branch else "│  " if branch == "├─ " else "   ")
        for index, child in enumerate(node.children):
            last = index == len(node.children) - 1
            yield from visit(child, below, "└─ " if last else "├─ ")

    for root in roots:
        yield from visit(root, "", "")


def trace_start(spans: Sequence[JsonSpan]) -> int:
    """The earliest span timestamp (microseconds), 0 if no span has one."""
    starts = [s["timestamp"] for s in spans if isinstance(s.get("timestamp"), int)]
    return min(starts, default=0)


def summarize(spans: Sequence[JsonSpan]) -> TraceSummary:
    """Root (the earliest root span), span count, start and duration: from the first
    start to the last end, as Zipkin's UI measures a trace."""
    roots = span_tree(spans)
    root = roots[0].span if roots else {}
    start = trace_start(spans)
    ends = [
        s["timestamp"] + s.get("duration", 0)
        for s in spans
        if isinstance(s.get("timestamp"), int) and isinstance(s.get("duration", 0), int)
    ]
    return TraceSummary(
        trace_id=str(spans[0].get("traceId", "")) if spans else "",
        root_service=str(root.get("localEndpoint", {}).get("serviceName", "")),
        root_name=str(root.get("name", "")),
        span_count=len(spans),
        start=start,
        duration=max(ends, default=start) - start,
    )
