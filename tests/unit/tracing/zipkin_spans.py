"""Zipkin v2 span objects for the tracing tests, as a reporter would send them."""

from __future__ import annotations

from typing import Any

TRACE = "4e441824ec2b6a44ffdc9bb9a6453df3"
T0 = 1_700_000_000_000_000  # epoch microseconds


def span(
    id: str,
    *,
    trace: str = TRACE,
    parent: str | None = None,
    service: str | None = "frontend",
    name: str | None = "get",
    kind: str | None = None,
    timestamp: int | None = T0,
    duration: int | None = 1000,
    remote: str | None = None,
    tags: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    document: dict[str, Any] = {"traceId": trace, "id": id}
    for key, value in (
        ("parentId", parent),
        ("name", name),
        ("kind", kind),
        ("timestamp", timestamp),
        ("duration", duration),
        ("tags", tags),
    ):
        if value is not None:
            document[key] = value
    if service is not None:
        document["localEndpoint"] = {"serviceName": service}
    if remote is not None:
        document["remoteEndpoint"] = {"serviceName": remote}
    return {**document, **extra}


def span_id(number: int) -> str:
    return f"{number:016x}"


def trace_id(number: int) -> str:
    """A 128-bit trace id (its high half not zero, so it stays 128-bit)."""
    return f"{0xA1 << 64 | number:032x}"
