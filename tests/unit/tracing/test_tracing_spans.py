"""Spans are checked and normalised as Zipkin's own decoder does; bad ones say why."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from zipkin_spans import T0, TRACE, span

from isthmus.tracing.spans import SpanError, decode_spans, normalise_span, normalise_trace_id


def body(*spans: Any) -> bytes:
    return json.dumps(list(spans)).encode()


def test_an_envoy_span_keeps_its_fields_in_zipkins_order() -> None:
    (decoded,) = decode_spans(
        body(
            {
                "tags": {"upstream_cluster": "backend", "http.status_code": "200"},
                "traceId": TRACE,
                "annotations": [
                    {"timestamp": T0 + 9, "value": "b"},
                    {"timestamp": T0, "value": "a"},
                ],
                "id": "00000000000000a1",
                "parentId": "00000000000000a0",
                "kind": "CLIENT",
                "name": "Egress Backend",
                "timestamp": T0,
                "duration": 1234,
                "localEndpoint": {"serviceName": "Frontend", "ipv4": "10.44.0.7", "port": 8080},
                "remoteEndpoint": {"ipv6": "fd00::1"},
                "shared": False,
                "unknownField": {"ignored": True},
            }
        )
    )
    assert json.loads(decoded.encoded) == {
        "traceId": TRACE,
        "parentId": "00000000000000a0",
        "id": "00000000000000a1",
        "kind": "CLIENT",
        "name": "egress backend",
        "timestamp": T0,
        "duration": 1234,
        "localEndpoint": {"serviceName": "frontend", "ipv4": "10.44.0.7", "port": 8080},
        "remoteEndpoint": {"ipv6": "fd00::1"},
        "annotations": [{"timestamp": T0, "value": "a"}, {"timestamp": T0 + 9, "value": "b"}],
        "tags": {"http.status_code": "200", "upstream_cluster": "backend"},
    }
    assert list(json.loads(decoded.encoded)) == list(decoded.to_json())
    assert list(decoded.to_json()["tags"]) == ["http.status_code", "upstream_cluster"]
    assert (decoded.local_service, decoded.remote_service, decoded.name) == (
        "frontend",
        None,
        "egress backend",
    )
    assert (decoded.timestamp, decoded.duration, decoded.kind) == (T0, 1234, "CLIENT")


@pytest.mark.parametrize(
    ("given_id", "stored"),
    [
        ("a", "000000000000000a"),
        ("463ac35c9f6413ad", "463ac35c9f6413ad"),
        ("1463ac35c9f6413ad", "0000000000000001463ac35c9f6413ad"),
        ("0000000000000000463ac35c9f6413ad", "463ac35c9f6413ad"),
        ("48485a3953bb61246b221d5bc9e6496c", "48485a3953bb61246b221d5bc9e6496c"),
    ],
)
def test_trace_ids_are_padded_and_a_zero_high_half_is_64_bit(given_id: str, stored: str) -> None:
    assert normalise_trace_id(given_id) == stored
    assert normalise_span(span("1", trace=given_id)).trace_id == stored


def test_span_ids_are_padded_and_meaningless_parents_dropped() -> None:
    assert normalise_span(span("abc")).id == "0000000000000abc"
    assert normalise_span(span("abc", parent="0000")).parent_id is None
    assert normalise_span(span("abc", parent="abc")).parent_id is None  # no circular parent
    assert normalise_span(span("abc", parent="1")).parent_id == "0000000000000001"


def test_absent_values_are_dropped_as_zipkin_drops_them() -> None:
    decoded = normalise_span(
        span(
            "1",
            name="",
            timestamp=-5,
            duration=0,
            service="",
            remoteEndpoint={"ipv4": "not-an-ip", "port": 0},
            kind=None,
            parentId=None,
            debug=False,
        )
    )
    assert decoded.to_json() == {"traceId": TRACE, "id": "0000000000000001"}
    assert (decoded.timestamp, decoded.duration, decoded.name) == (0, 0, None)


def test_shared_is_kept_on_servers_only_and_debug_when_true() -> None:
    server = normalise_span(span("1", kind="SERVER", shared=True, debug=True)).to_json()
    assert (server["shared"], server["debug"]) == (True, True)
    assert "shared" not in normalise_span(span("1", kind="CLIENT", shared=True)).to_json()


def test_integral_floats_are_microseconds_and_duplicate_annotations_collapse() -> None:
    annotation = {"timestamp": T0, "value": "retry"}
    decoded = normalise_span(span("1", timestamp=float(T0), annotations=[annotation, annotation]))
    assert decoded.timestamp == T0
    assert decoded.to_json()["annotations"] == [annotation]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "expected a JSON list of Zipkin v2 spans"),
        (b'{"traceId": "a"}', "got a JSON object"),
        (b"\xff\xfe", "expected a JSON list"),
        (b"[" * 100_000 + b"]" * 100_000, "expected a JSON list"),
        (body(span("1"), 7), "span[1]: a span is a JSON object, got a JSON number"),
        (body({"id": "1"}), "span[0]: missing traceId"),
        (body({}), "span[0]: missing traceId and id"),
        (body(span("1", trace="")), "traceId is empty"),
        (body(span("1", trace="A" * 16)), "traceId 'AAAAAAAAAAAAAAAA' is not lower-hex"),
        (body(span("1", trace="a" * 33)), "longer than 32 hex digits"),
        (body(span("1", trace="0" * 32)), "traceId is all zeros"),
        (body(span("1", trace=17)), "traceId must be a string, got a JSON number"),
        (body(span("0" * 16)), "id is all zeros"),
        (body(span("g")), "id 'g' is not lower-hex"),
        (body(span("1" * 17)), "id '11111111111111111' is longer than 16 hex digits"),
        (body(span("1", parent="")), "parentId is empty"),
        (body(span("1", parent="0x12")), "parentId '0x12' is not lower-hex"),
        (body(span("1", kind="INTERNAL")), "kind: 'INTERNAL' is not one of"),
        (body(span("1", timestamp="1700")), "timestamp must be an integer number"),
        (body(span("1", duration=True)), "duration must be an integer number"),
        (body(span("1", duration=1.5)), "duration must be an integer number"),
        (body(span("1", timestamp=2**63)), "timestamp 9223372036854775808 does not fit"),
        (body(span("1", localEndpoint={"port": 70000})), "localEndpoint.port 70000 is out"),
        (body(span("1", localEndpoint=[])), "localEndpoint must be a JSON object"),
        (body(span("1", tags={"a": None})), "tags['a'] has no value"),
        (body(span("1", tags={"a": 1})), "tags['a'] must be a string"),
        (body(span("1", annotations=[{"value": "x"}])), "annotations[0] is incomplete"),
        (body(span("1", annotations={})), "annotations must be a JSON list"),
        (body(span("1", name=["get"])), "name must be a string, got a JSON list"),
        (body(span("1", shared="yes")), "shared must be true or false"),
    ],
)
def test_a_bad_body_is_refused_whole_with_the_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(SpanError) as refused:
        decode_spans(payload)
    assert reason in str(refused.value)


def test_an_empty_list_is_no_spans() -> None:
    assert decode_spans(b"[]") == []


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)
_span_like = st.fixed_dictionaries(
    {},
    optional={
        "traceId": st.sampled_from([TRACE, "1", "", "X", 5]) | st.text(max_size=34),
        "id": st.sampled_from(["1", "00a", "0" * 16]) | st.text(max_size=17),
        "parentId": st.none() | st.text(alphabet="0123456789abcdef", max_size=17),
        "kind": st.sampled_from(["CLIENT", "SERVER", "x"]) | _json,
        "name": st.text(max_size=10) | _json,
        "timestamp": st.integers() | _json,
        "duration": st.integers() | _json,
        "localEndpoint": st.fixed_dictionaries(
            {}, optional={"serviceName": st.text(), "ipv4": st.text(), "port": st.integers()}
        )
        | _json,
        "tags": st.dictionaries(st.text(max_size=8), st.text(max_size=8)) | _json,
        "annotations": st.lists(
            st.fixed_dictionaries({"timestamp": st.integers(), "value": st.text(max_size=5)})
        )
        | _json,
    },
)


@given(st.lists(_span_like | _json, max_size=4) | _json)
def test_any_json_is_either_spans_or_a_reason(payload: Any) -> None:
    try:
        spans = decode_spans(json.dumps(payload).encode())
    except SpanError as error:
        assert str(error)
        return
    # What was stored reads back as itself: normalising is idempotent.
    again = decode_spans(b"[" + b",".join(s.encoded for s in spans) + b"]")
    assert again == spans
