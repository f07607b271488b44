"""protojson resolves Any types by importing the modules that define them."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from google.protobuf import any_pb2, wrappers_pb2

from isthmus.testing.protojson import (
    UnknownTypeError,
    dict_to_message,
    message_to_dict,
    walk,
)

BUFFER = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer"


def _buffer_any(max_bytes: int) -> any_pb2.Any:
    # Built from raw bytes so the test needs no import of the Buffer module itself.
    packed = any_pb2.Any(type_url=BUFFER)
    limit = wrappers_pb2.UInt32Value(value=max_bytes).SerializeToString()
    packed.value = b"\n" + bytes([len(limit)]) + limit
    return packed


def test_any_of_an_extension_type_is_printed_with_its_fields() -> None:
    listener = listener_pb2.Listener(name="l")
    listener.filter_chains.add().filters.add(name="f").typed_config.CopyFrom(_buffer_any(1024))

    document = message_to_dict(listener)

    typed = document["filter_chains"][0]["filters"][0]["typed_config"]
    assert typed == {"@type": BUFFER, "max_request_bytes": 1024}


def test_dict_to_message_round_trips_an_any() -> None:
    document = {
        "name": "l",
        "filter_chains": [
            {"filters": [{"name": "f", "typed_config": {"@type": BUFFER, "max_request_bytes": 7}}]}
        ],
    }
    listener = dict_to_message(document, listener_pb2.Listener())
    assert message_to_dict(listener) == document


def test_walk_changes_inside_an_any_survive() -> None:
    listener = listener_pb2.Listener(name="l")
    listener.filter_chains.add().filters.add(name="f").typed_config.CopyFrom(_buffer_any(1))

    def grow(message: object) -> None:
        limit = getattr(message, "max_request_bytes", None)
        if isinstance(limit, wrappers_pb2.UInt32Value):
            limit.value = 4096

    walk(listener, grow)

    typed = message_to_dict(listener)["filter_chains"][0]["filters"][0]["typed_config"]
    assert typed["max_request_bytes"] == 4096


def test_walk_visits_map_values() -> None:
    cluster = cluster_pb2.Cluster(name="c")
    cluster.typed_extension_protocol_options["buffer"].CopyFrom(_buffer_any(5))
    seen: list[str] = []
    walk(cluster, lambda message: seen.append(message.DESCRIPTOR.full_name))
    assert "envoy.extensions.filters.http.buffer.v3.Buffer" in seen


def test_unknown_type_is_named_in_the_error() -> None:
    listener = listener_pb2.Listener(name="l")
    typed = listener.filter_chains.add().filters.add(name="f").typed_config
    typed.type_url = "type.googleapis.com/envoy.nothing.v3.Nope"
    with pytest.raises(UnknownTypeError, match=r"envoy\.nothing\.v3\.Nope"):
        message_to_dict(listener)
