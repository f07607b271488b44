"""State-of-the-World ADS against the real gRPC server: pushes, ACK, NACK, names."""

from __future__ import annotations

import asyncio
import json
import logging

import grpc
import pytest
from envoy.service.discovery.v3 import discovery_pb2
from xds_world import NODE_A, RATINGS, REVIEWS, ClientFactory, StaticSource, assignment, cluster

from isthmus.pilot.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE
from isthmus.xds import AdsServer


async def test_initial_push_sends_every_cluster_and_listener(
    proxy: ClientFactory, source: StaticSource
) -> None:
    client = await proxy()
    client.subscribe(CLUSTER)
    client.subscribe(LISTENER)

    clusters = await client.next(CLUSTER)
    listeners = await client.next(LISTENER)

    assert clusters.names() == sorted([REVIEWS, RATINGS])
    assert clusters.version == source.version(CLUSTER)
    assert listeners.names() == ["0.0.0.0_8080"]
    assert clusters.nonce != listeners.nonce


async def test_ack_moves_status_from_pending_to_acked(
    proxy: ClientFactory, server: AdsServer
) -> None:
    client = await proxy()
    client.subscribe(CLUSTER)
    response = await client.next(CLUSTER)
    await server.wait_quiet()

    [before] = server.status()
    assert before.node_id == NODE_A
    assert before.stream == "sotw"
    cds = before.types[CLUSTER]
    assert (cds.sent_version, cds.sent_nonce) == (response.version, response.nonce)
    assert cds.pending and cds.acked_version is None and not before.synced

    client.ack(response)
    client.subscribe(ENDPOINT, [REVIEWS])  # a later request on the same stream
    await client.next(ENDPOINT)
    await server.wait_quiet()

    cds = server.status()[0].types[CLUSTER]
    assert (cds.acked_version, cds.acked_nonce) == (response.version, response.nonce)
    assert not cds.pending
    json.dumps(server.status()[0].to_dict())  # status is JSON-able as it is


async def test_named_types_carry_exactly_the_requested_names(proxy: ClientFactory) -> None:
    client = await proxy()
    client.subscribe(ENDPOINT, [REVIEWS])
    first = await client.next(ENDPOINT)
    assert first.names() == [REVIEWS]
    client.ack(first)

    client.subscribe(ENDPOINT, [REVIEWS, RATINGS])
    second = await client.next(ENDPOINT)
    # Only what the proxy lacks: Envoy keeps the assignment it already has.
    assert second.names() == [RATINGS]
    assert second.version != first.version
    client.ack(second)
    assert sorted(client.resources(ENDPOINT)) == sorted([REVIEWS, RATINGS])

    client.subscribe(ROUTE, ["8080", "no-such-route"])
    routes = await client.next(ROUTE)
    assert routes.names() == ["8080"]
    client.ack(routes)
    await client.expect_silence()


async def test_change_to_an_unrequested_name_pushes_nothing(
    proxy: ClientFactory, server: AdsServer, source: StaticSource
) -> None:
    client = await proxy()
    client.subscribe(ENDPOINT, [REVIEWS])
    client.ack(await client.next(ENDPOINT))

    source.put(assignment(RATINGS, 29080))
    server.request_push("ratings endpoints")
    await server.wait_quiet()
    await client.expect_silence()

    source.put(assignment(REVIEWS, 28080))
    server.request_push("reviews endpoints")
    update = await client.next(ENDPOINT)
    assert update.names() == [REVIEWS]


async def test_nack_keeps_last_accepted_config_and_is_not_resent(
    proxy: ClientFactory,
    server: AdsServer,
    source: StaticSource,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await proxy()
    client.subscribe(CLUSTER)
    good = await client.next(CLUSTER)
    client.ack(good)

    source.put(cluster(REVIEWS, connect_timeout_s=7))
    server.request_push("bad cluster")
    bad = await client.next(CLUSTER)
    error = "Error adding/updating cluster(s) reviews: bad timeout"
    with caplog.at_level(logging.WARNING, logger="isthmus.xds"):
        client.nack(bad, error)
        await client.expect_silence(within=0.4)  # the rejected version is not sent again

    cds = server.status()[0].types[CLUSTER]
    assert cds.acked_version == good.version
    assert cds.sent_version == bad.version
    assert cds.last_nack is not None
    assert (cds.last_nack.version, cds.last_nack.nonce) == (bad.version, bad.nonce)
    assert cds.last_nack.message == error
    assert not cds.pending
    assert client.resources(CLUSTER) == good.resources
    [record] = [r for r in caplog.records if "nack" in r.getMessage()]
    assert record.getMessage().startswith("xds nack ")
    assert f"version={bad.version}" in record.getMessage()
    assert json.dumps(error) in record.getMessage()

    # An unrelated push recomputes the same rejected content: still nothing is sent.
    server.request_push("unrelated")
    await server.wait_quiet()
    await client.expect_silence()

    source.put(cluster(REVIEWS, connect_timeout_s=2))
    server.request_push("fixed cluster")
    fixed = await client.next(CLUSTER)
    client.ack(fixed)
    client.subscribe(ENDPOINT, [REVIEWS])
    await client.next(ENDPOINT)
    assert server.status()[0].types[CLUSTER].acked_version == fixed.version


async def test_subscription_change_after_nack_is_not_taken_as_ack(
    proxy: ClientFactory, server: AdsServer, source: StaticSource
) -> None:
    client = await proxy()
    client.subscribe(ENDPOINT, [REVIEWS])
    good = await client.next(ENDPOINT)
    client.ack(good)
    source.put(assignment(REVIEWS, 1))
    server.request_push()
    bad = await client.next(ENDPOINT)
    client.nack(bad, "rejected")
    # Envoy re-sends the last nonce with its old version when names change after a NACK.
    client.subscribe(ENDPOINT, [REVIEWS, RATINGS])
    both = await client.next(ENDPOINT)
    assert both.names() == sorted([REVIEWS, RATINGS])

    await server.wait_quiet()
    eds = server.status()[0].types[ENDPOINT]
    assert eds.acked_version == good.version
    assert eds.last_nack is not None and eds.last_nack.nonce == bad.nonce


async def test_request_with_stale_nonce_is_ignored(proxy: ClientFactory, server: AdsServer) -> None:
    client = await proxy()
    client.subscribe(ENDPOINT, [REVIEWS])
    response = await client.next(ENDPOINT)
    stale = discovery_pb2.DiscoveryRequest(
        type_url=ENDPOINT, response_nonce="not-a-nonce-we-sent", resource_names=[RATINGS]
    )
    client._send(stale)  # what a proxy answering an old response would send
    await client.expect_silence()
    eds = server.status()[0].types[ENDPOINT]
    assert eds.subscribed == 1
    assert server.status(names=True)[0].types[ENDPOINT].subscribed_names == (REVIEWS,)
    assert eds.sent_nonce == response.nonce and eds.acked_nonce is None


async def test_rejected_node_stream_is_closed_with_the_reason(
    proxy: ClientFactory, source: StaticSource, server: AdsServer
) -> None:
    source.rejected["sidecar~10.0.0.9~ghost.default~default.svc.cluster.local"] = (
        "no workload ghost in namespace default"
    )
    client = await proxy("sidecar~10.0.0.9~ghost.default~default.svc.cluster.local")
    client.subscribe(CLUSTER)
    closed = await client.wait_closed()
    assert closed.code == grpc.StatusCode.INVALID_ARGUMENT
    assert closed.details == "no workload ghost in namespace default"
    assert server.status() == []


async def test_first_request_without_node_id_is_refused(proxy: ClientFactory) -> None:
    client = await proxy("")
    client.subscribe(CLUSTER)
    closed = await client.wait_closed()
    assert closed.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "node.id" in closed.details


async def test_disconnected_proxy_leaves_status(proxy: ClientFactory, server: AdsServer) -> None:
    client = await proxy()
    client.subscribe(CLUSTER)
    await client.next(CLUSTER)
    assert len(server.status()) == 1
    await client.close()
    for _ in range(100):
        if not server.status():
            break
        await asyncio.sleep(0.01)
    assert server.status() == []


async def test_acks_with_the_same_names_keep_the_subscription_and_a_swap_changes_it(
    proxy: ClientFactory, server: AdsServer, source: StaticSource
) -> None:
    other = "outbound|7070||details.default.svc.cluster.local"
    source.put(assignment(other, 7070))
    client = await proxy()
    client.subscribe(ENDPOINT, [REVIEWS, RATINGS])
    first = await client.next(ENDPOINT)
    client.ack(first)  # the same names again: nothing changes, nothing is sent
    await client.expect_silence(ENDPOINT)
    await server.wait_quiet()
    assert server.status()[0].types[ENDPOINT].subscribed == 2

    client.subscribe(ENDPOINT, [REVIEWS, other])  # as many names, one of them new
    second = await client.next(ENDPOINT)
    assert second.names() == [other]
    client.ack(second)
    await server.wait_quiet()
    names = server.status(names=True)[0].types[ENDPOINT].subscribed_names
    assert names == tuple(sorted([REVIEWS, other]))
