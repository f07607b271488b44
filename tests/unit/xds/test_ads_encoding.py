"""Responses assembled from cached bytes equal protobuf's own serialization of them."""

from __future__ import annotations

import itertools

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import wrappers_pb2
from google.protobuf.message import Message
from xds_world import RATINGS, REVIEWS, assignment, cluster, listener, prepare

from isthmus.pilot import wire
from isthmus.pilot.resources import CLUSTER, ENDPOINT, Layer, Layers, PreparedResource, Snapshot
from isthmus.xds import delta, sotw
from isthmus.xds.sotw import SotwConnection

DETAILS = "outbound|9080||details.default.svc.cluster.local"


def _layer(*messages: Message) -> Layer:
    return Layer({r.name: r for r in map(prepare, messages)})


def _sotw_expected(
    version: str, type_url: str, nonce: str, resources: list[PreparedResource]
) -> bytes:
    return discovery_pb2.DiscoveryResponse(
        version_info=version, type_url=type_url, nonce=nonce, resources=[r.any for r in resources]
    ).SerializeToString()


@pytest.mark.parametrize(
    ("message_type", "field", "number"),
    [
        (discovery_pb2.DiscoveryResponse, "version_info", wire.SOTW_VERSION_INFO),
        (discovery_pb2.DiscoveryResponse, "resources", wire.SOTW_RESOURCES),
        (discovery_pb2.DiscoveryResponse, "type_url", wire.SOTW_TYPE_URL),
        (discovery_pb2.DiscoveryResponse, "nonce", wire.SOTW_NONCE),
        (
            discovery_pb2.DeltaDiscoveryResponse,
            "system_version_info",
            wire.DELTA_SYSTEM_VERSION_INFO,
        ),
        (discovery_pb2.DeltaDiscoveryResponse, "resources", wire.DELTA_RESOURCES),
        (discovery_pb2.DeltaDiscoveryResponse, "type_url", wire.DELTA_TYPE_URL),
        (discovery_pb2.DeltaDiscoveryResponse, "nonce", wire.DELTA_NONCE),
        (discovery_pb2.DeltaDiscoveryResponse, "removed_resources", wire.DELTA_REMOVED_RESOURCES),
        (discovery_pb2.Resource, "version", wire.RESOURCE_VERSION),
        (discovery_pb2.Resource, "resource", wire.RESOURCE_BODY),
        (discovery_pb2.Resource, "name", wire.RESOURCE_NAME),
    ],
)
def test_field_numbers_are_those_of_the_generated_descriptors(
    message_type: type[Message], field: str, number: int
) -> None:
    assert message_type.DESCRIPTOR.fields_by_name[field].number == number


@pytest.mark.parametrize("value", [1, 127, 128, 300, 16383, 16384, 2**21, 2**35 + 5])
def test_varint_matches_protobuf(value: int) -> None:
    # UInt64Value is field 1 (tag 0x08) holding one varint.
    assert wrappers_pb2.UInt64Value(value=value).SerializeToString() == b"\x08" + wire.varint(value)


def test_prepared_resource_keeps_the_any_protobuf_would_pack() -> None:
    message = cluster(REVIEWS)
    resource = PreparedResource.of(REVIEWS, message)
    unpacked = type(message)()
    assert resource.any.Unpack(unpacked) and unpacked == message
    assert resource.any.type_url == resource.type_url == CLUSTER
    assert resource.any.value == message.SerializeToString(deterministic=True)


def test_sotw_wildcard_layer_equals_protobuf() -> None:
    layer = _layer(cluster(REVIEWS), cluster(RATINGS), cluster(DETAILS, 3))
    encoded = sotw.encode_response("v1", CLUSTER, "n-1", Layers(layer))
    assert encoded == _sotw_expected("v1", CLUSTER, "n-1", list(layer.values()))


def test_sotw_multi_layer_keeps_layer_order_and_equals_protobuf() -> None:
    outbound = _layer(cluster(RATINGS), cluster(REVIEWS))
    inbound = _layer(cluster("inbound|9080||"), cluster("inbound|8080||"))
    layers = Layers(outbound, inbound)
    encoded = sotw.encode_response("v2", CLUSTER, "n-2", layers)
    assert encoded == _sotw_expected("v2", CLUSTER, "n-2", list(layers.values()))
    parsed = discovery_pb2.DiscoveryResponse.FromString(encoded)
    assert [r.value for r in parsed.resources] == [r.any.value for r in layers.values()]


def test_sotw_ad_hoc_selection_is_sorted_and_equals_protobuf() -> None:
    chosen = {r.name: r for r in map(prepare, [assignment(REVIEWS, 1), assignment(RATINGS, 2)])}
    encoded = sotw.encode_response("v3", ENDPOINT, "n-3", chosen)
    expected = [chosen[name] for name in sorted(chosen)]
    assert encoded == _sotw_expected("v3", ENDPOINT, "n-3", expected)


def test_sotw_empty_equals_protobuf() -> None:
    for chosen in ({}, Layers(), Layers(Layer({}))):
        assert sotw.encode_response("v4", ENDPOINT, "n-4", chosen) == _sotw_expected(
            "v4", ENDPOINT, "n-4", []
        )


def test_delta_added_and_removed_equal_protobuf() -> None:
    added = [prepare(cluster(RATINGS)), prepare(listener("0.0.0.0_8080", 18000, "8080"))]
    removed = ["gone-a", "gone-b"]
    encoded = delta.encode_response("sys-1", CLUSTER, "n-5", added, removed)
    expected = discovery_pb2.DeltaDiscoveryResponse(
        system_version_info="sys-1",
        type_url=CLUSTER,
        nonce="n-5",
        resources=[
            discovery_pb2.Resource(name=r.name, version=r.version, resource=r.any) for r in added
        ],
        removed_resources=removed,
    )
    assert encoded == expected.SerializeToString()
    assert added[0].delta_entry is added[0].delta_entry  # encoded once


def test_delta_empty_equals_protobuf() -> None:
    expected = discovery_pb2.DeltaDiscoveryResponse(system_version_info="s", type_url=CLUSTER)
    assert delta.encode_response("s", CLUSTER, "", [], []) == expected.SerializeToString()


def test_connections_sharing_a_layer_reuse_its_encoded_bytes() -> None:
    layer = _layer(cluster(REVIEWS), cluster(RATINGS))
    snapshot = Snapshot({CLUSTER: Layers(layer)})
    nonces = itertools.count(1)
    sent = []
    for node_id in ("a", "b"):
        connection = SotwConnection(base_pb2.Node(id=node_id), snapshot, lambda: str(next(nonces)))
        connection.handle_request(discovery_pb2.DiscoveryRequest(type_url=CLUSTER))
        [response] = connection.responses({CLUSTER})
        sent.append((discovery_pb2.DiscoveryResponse.FromString(response), layer.sotw_entries))
    (first, first_entries), (second, second_entries) = sent
    assert second_entries is first_entries
    assert first.resources == second.resources and first.nonce != second.nonce
    assert [r.value for r in first.resources] == [r.any.value for r in layer.values()]
