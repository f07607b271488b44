"""Zipkin v2 spans as the collector keeps them: decoded, checked and normalised as Zipkin's
own JSON decoder does (zipkin2 `V2SpanReader` and `Span.Builder`).

So the query API answers what a Zipkin server would: ids are lower-hex (trace ids padded
to 16 or 32 digits, a 128-bit id whose high half is zero shortened to 64 bits, span ids
padded to 16); names and service names are lower-cased; null fields, zero or negative
timestamps and durations, all-zero parent ids and a parent id equal to the span's own id
are dropped; tags are sorted by key and annotations by time. One bad span refuses the
whole body, with the reason, as Zipkin answers 400.

A span is kept encoded (compact JSON, written into answers as it is) beside the few
fields queries need: several times smaller than the decoded dicts, which is what lets
the collector keep 100,000 spans in a modest amount of memory.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KINDS = frozenset({"CLIENT", "SERVER", "PRODUCER", "CONSUMER"})
_HEX = frozenset("0123456789abcdef")
_MAX_INT64 = 2**63 - 1
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


class SpanError(ValueError):
    """A span (or the body holding it) is not a valid Zipkin v2 span; says why."""


@dataclass(frozen=True, slots=True)
class Span:
    """One normalised span: what queries look at, and its JSON v2 encoding."""

    trace_id: str
    id: str
    parent_id: str | None
    kind: str | None
    name: str | None
    local_service: str | None
    remote_service: str | None
    timestamp: int  # epoch microseconds; 0 when absent
    duration: int  # microseconds; 0 when absent
    encoded: bytes

    def to_json(self) -> dict[str, Any]:
        """The span as Zipkin's JSON v2 object (decoded anew: for tests and tools)."""
        document: dict[str, Any] = json.loads(self.encoded)
        return document


def decode_spans(body: bytes) -> list[Span]:
    """The spans of a POST /api/v2/spans body (a JSON list); SpanError names the bad one."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise SpanError(f"expected a JSON list of Zipkin v2 spans: {error}") from None
    if not isinstance(payload, list):
        raise SpanError(
            f"expected a JSON list of Zipkin v2 spans, got a JSON {_json_type(payload)}"
        )
    spans = []
    for index, item in enumerate(payload):
        try:
            spans.append(normalise_span(item))
        except SpanError as error:
            raise SpanError(f"span[{index}]: {error}") from None
    return spans


def normalise_span(item: Any) -> Span:
    """One decoded JSON span, checked and normalised; SpanError says what is wrong."""
    if not isinstance(item, dict):
        raise SpanError(f"a span is a JSON object, got a JSON {_json_type(item)}")
    missing = [field for field in ("traceId", "id") if item.get(field) is None]
    if missing:
        raise SpanError(f"missing {' and '.join(missing)}")
    trace_id = normalise_trace_id(_string(item["traceId"], "traceId"))
    span_id = _span_id(_string(item["id"], "id"), "id")
    parent_id = _parent_id(item.get("parentId"))
    if parent_id == span_id:
        parent_id = None  # Zipkin undoes this circular reference the same way
    kind = _optional_string(item.get("kind"), "kind")
    if kind is not None and kind not in KINDS:
        raise SpanError(f"kind: {kind!r} is not one of {', '.join(sorted(KINDS))}")
    name = _lower(_optional_string(item.get("name"), "name"))
    timestamp = _micros(item.get("timestamp"), "timestamp")
    duration = _micros(item.get("duration"), "duration")
    local = _endpoint(item.get("localEndpoint"), "localEndpoint")
    remote = _endpoint(item.get("remoteEndpoint"), "remoteEndpoint")
    annotations = _annotations(item.get("annotations"))
    tags = _tags(item.get("tags"))
    debug = _flag(item.get("debug"), "debug")
    # `shared` belongs to the server side; Zipkin drops it from client spans.
    shared = _flag(item.get("shared"), "shared") and kind != "CLIENT"

    document: dict[str, Any] = {"traceId": trace_id}
    if parent_id is not None:
        document["parentId"] = parent_id
    document["id"] = span_id
    for key, value in (
        ("kind", kind),
        ("name", name),
        ("timestamp", timestamp or None),
        ("duration", duration or None),
        ("localEndpoint", local),
        ("remoteEndpoint", remote),
        ("annotations", annotations or None),
        ("tags", tags or None),
        ("debug", True if debug else None),
        ("shared", True if shared else None),
    ):
        if value is not None:
            document[key] = value
    return Span(
        trace_id=trace_id,
        id=span_id,
        parent_id=parent_id,
        kind=kind,
        name=_intern(name),
        local_service=_intern(local.get("serviceName") if local else None),
        remote_service=_intern(remote.get("serviceName") if remote else None),
        timestamp=timestamp,
        duration=duration,
        encoded=_ENCODER.encode(document).encode(),
    )


def normalise_trace_id(trace_id: str) -> str:
    """Zipkin's `Span.normalizeTraceId`: lower-hex, at most 32 digits, not all zeros;
    padded to 16 or 32 digits, and a 128-bit id with a zero high half is 64-bit."""
    if not trace_id:
        raise SpanError("traceId is empty")
    if len(trace_id) > 32:
        raise SpanError(f"traceId {trace_id[:40]!r} is longer than 32 hex digits")
    _check_hex(trace_id, "traceId")
    if trace_id.strip("0") == "":
        raise SpanError("traceId is all zeros")
    if len(trace_id) <= 16:
        return trace_id.rjust(16, "0")
    padded = trace_id.rjust(32, "0")
    return padded[16:] if padded.startswith("0" * 16) else padded


def _span_id(value: str, field: str) -> str:
    if not value:
        raise SpanError(f"{field} is empty")
    if len(value) > 16:
        raise SpanError(f"{field} {value[:40]!r} is longer than 16 hex digits")
    _check_hex(value, field)
    if value.strip("0") == "":
        raise SpanError(f"{field} is all zeros")
    return value.rjust(16, "0")


def _parent_id(value: Any) -> str | None:
    if value is None:
        return None
    text = _string(value, "parentId")
    if not text:
        raise SpanError("parentId is empty")
    if len(text) > 16:
        raise SpanError(f"parentId {text[:40]!r} is longer than 16 hex digits")
    _check_hex(text, "parentId")
    return None if text.strip("0") == "" else text.rjust(16, "0")


def _check_hex(value: str, field: str) -> None:
    if not _HEX.issuperset(value):
        raise SpanError(f"{field} {value[:40]!r} is not lower-hex")


def _micros(value: Any, field: str) -> int:
    """Epoch or elapsed microseconds; absent, zero and negative all mean "unknown" (0)."""
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpanError(f"{field} must be an integer number of microseconds, got {value!r:.40}")
    if value > _MAX_INT64:
        raise SpanError(f"{field} {value} does not fit in 64 bits")
    return max(value, 0)


def _endpoint(value: Any, field: str) -> dict[str, Any] | None:
    """An Endpoint with what Zipkin keeps of it; None when nothing is left."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SpanError(f"{field} must be a JSON object")
    endpoint: dict[str, Any] = {}
    service = _lower(_optional_string(value.get("serviceName"), f"{field}.serviceName"))
    if service:
        endpoint["serviceName"] = service
    for key, version in (("ipv4", 4), ("ipv6", 6)):
        address = _ip(value.get(key), version)
        if address is not None:
            endpoint[key] = address
    port = value.get("port")
    if port is not None:
        if isinstance(port, bool) or not isinstance(port, int):
            raise SpanError(f"{field}.port must be an integer")
        if port > 65535:
            raise SpanError(f"{field}.port {port} is out of range")
        if port > 0:
            endpoint["port"] = port
    return endpoint or None


def _ip(value: Any, version: int) -> str | None:
    """A well-formed address of that version, else None: Zipkin drops what it can't parse."""
    if not isinstance(value, str):
        return None
    return _parsed_ip(value, version)


@functools.lru_cache(maxsize=4096)  # a mesh has few addresses; parsing them is slow
def _parsed_ip(value: str, version: int) -> str | None:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    return str(address) if address.version == version else None


def _annotations(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpanError("annotations must be a JSON list")
    found: set[tuple[int, str]] = set()
    for index, annotation in enumerate(value):
        where = f"annotations[{index}]"
        if not isinstance(annotation, dict):
            raise SpanError(f"{where} must be a JSON object")
        timestamp, text = annotation.get("timestamp"), annotation.get("value")
        if timestamp is None or text is None:
            raise SpanError(f"{where} is incomplete: it needs timestamp and value")
        found.add((_micros(timestamp, f"{where}.timestamp"), _string(text, f"{where}.value")))
    return [{"timestamp": ts, "value": text} for ts, text in sorted(found)]


def _tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpanError("tags must be a JSON object")
    if all(type(tag) is str for tag in value.values()):  # the usual case, checked in C
        return dict(sorted(value.items()))
    tags = {}
    for key in sorted(value):
        tag = value[key]
        if tag is None:
            raise SpanError(f"tags[{key!r}] has no value")
        tags[key] = _string(tag, f"tags[{key!r}]")
    return tags


def _flag(value: Any, field: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise SpanError(f"{field} must be true or false")
    return value


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise SpanError(f"{field} must be a string, got a JSON {_json_type(value)}")
    return value


def _optional_string(value: Any, field: str) -> str | None:
    return None if value is None else _string(value, field)


def _lower(value: str | None) -> str | None:
    return value.lower() if value else None


def _intern(value: str | None) -> str | None:
    """Service and span names repeat across spans: keep one copy of each."""
    return sys.intern(value) if value is not None else None


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
