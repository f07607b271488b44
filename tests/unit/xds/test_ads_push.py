"""Pushes: debounced bursts, only changed proxies, push order, slow proxies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from xds_world import (
    NODE_A,
    NODE_B,
    RATINGS,
    REVIEWS,
    ClientFactory,
    StaticSource,
    assignment,
    cluster,
    listener,
    route_config,
)

from isthmus.pilot.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE
from isthmus.testing.ads_client import AdsClient
from isthmus.xds import AdsServer


async def synced_proxy(proxy: ClientFactory, node_id: str = NODE_A) -> AdsClient:
    """A fake Envoy that subscribed to everything and ACKed the initial push."""
    client = await proxy(node_id, auto_ack=True)
    client.subscribe(CLUSTER)
    client.subscribe(LISTENER)
    client.subscribe(ENDPOINT, [REVIEWS, RATINGS])
    client.subscribe(ROUTE, ["8080"])
    for type_url in (CLUSTER, LISTENER, ENDPOINT, ROUTE):
        await client.next(type_url)
    return client


async def test_burst_of_push_requests_becomes_one_push(
    proxy: ClientFactory, server: AdsServer, source: StaticSource
) -> None:
    client = await synced_proxy(proxy)
    pushes = server.push_count
    for port in range(30001, 30006):
        source.put(assignment(REVIEWS, port))
        server.request_push(f"endpoint {port}")
        await asyncio.sleep(0.01)
    update = await client.next(ENDPOINT)
    await server.wait_quiet()
    await client.expect_silence()

    assert server.push_count == pushes + 1
    assert update.version == source.version(ENDPOINT)  # the burst's final state


async def test_debounce_max_delay_bounds_a_steady_stream_of_changes(
    proxy: ClientFactory, server: AdsServer, source: StaticSource
) -> None:
    # The fixture's server has a 50 ms quiet window and at most 1 s of delay.
    client = await synced_proxy(proxy)
    loop = asyncio.get_running_loop()
    start = loop.time()
    got: list[float] = []
    port = 31000
    while loop.time() - start < 1.6:
        port += 1
        source.put(assignment(REVIEWS, port))
        server.request_push("churn")
        await asyncio.sleep(0.02)  # never quiet for 50 ms
        if any(r.type_url == ENDPOINT for r in client._unread):
            await client.next(ENDPOINT)
            got.append(loop.time() - start)
    assert got, "a push must happen within debounce_max despite constant changes"
    assert 0.9 <= got[0] <= 1.4


async def test_only_proxies_whose_snapshot_changed_get_a_push(
    proxy: ClientFactory, server: AdsServer, source: StaticSource
) -> None:
    a = await synced_proxy(proxy, NODE_A)
    b = await synced_proxy(proxy, NODE_B)

    source.put(cluster("outbound|7070||details.default.svc.cluster.local"), node_id=NODE_A)
    server.request_push("details for a")
    update = await a.next(CLUSTER)
    assert "outbound|7070||details.default.svc.cluster.local" in update.resources
    await server.wait_quiet()
    await a.expect_silence()
    await b.expect_silence()


async def test_push_without_changes_sends_nothing(proxy: ClientFactory, server: AdsServer) -> None:
    client = await synced_proxy(proxy)
    server.request_push("nothing really changed")
    await server.wait_quiet()
    await client.expect_silence()


async def test_push_sends_changed_types_in_push_order(
    proxy: ClientFactory, server: AdsServer, source: StaticSource
) -> None:
    client = await synced_proxy(proxy)
    source.put(
        route_config("8080", RATINGS),
        listener("0.0.0.0_8080", 18001, "8080"),
        assignment(REVIEWS, 32000),
        cluster(REVIEWS, connect_timeout_s=3),
    )
    server.request_push("everything")
    received = [await client.next() for _ in range(4)]
    assert [r.type_url for r in received] == [CLUSTER, ENDPOINT, LISTENER, ROUTE]


async def test_proxy_rejected_during_push_is_disconnected(
    proxy: ClientFactory, server: AdsServer, source: StaticSource
) -> None:
    client = await synced_proxy(proxy)
    source.rejected[NODE_A] = "workload reviews-1 was deleted"
    server.request_push("workload deleted")
    closed = await client.wait_closed()
    assert closed.code == grpc.StatusCode.INVALID_ARGUMENT
    assert closed.details == "workload reviews-1 was deleted"


async def test_a_proxy_that_stops_reading_does_not_hold_up_others(
    proxy: ClientFactory, server: AdsServer, source: StaticSource
) -> None:
    # The stuck proxy's view is big enough to fill gRPC's flow-control windows.
    stuck_id = "sidecar~10.44.0.99~stuck.default~default.svc.cluster.local"
    big = [cluster(f"outbound|80||svc-{i:04d}-{'x' * 200}.default.svc") for i in range(800)]
    source.put(*big, node_id=stuck_id)
    healthy = await synced_proxy(proxy)

    # Without BDP probing the client's receive window stays at 64 KiB.
    channel = grpc.aio.insecure_channel(
        f"unix:{server.unix_path}", options=[("grpc.http2.bdp_probe", 0)]
    )
    requests: asyncio.Queue[discovery_pb2.DiscoveryRequest | None] = asyncio.Queue()

    async def outgoing() -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
        while (request := await requests.get()) is not None:
            yield request

    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(
        outgoing()
    )
    try:
        node = AdsClient("unused", stuck_id).node
        requests.put_nowait(discovery_pb2.DiscoveryRequest(node=node, type_url=CLUSTER))
        blocked_on: str | None = None
        written: int | None = None
        for round_ in range(50):  # new, large CDS for the stuck proxy each time
            source.put(cluster(f"outbound|81||round-{round_}.svc"), node_id=stuck_id)
            source.put(assignment(REVIEWS, 33000 + round_))
            server.request_push(f"round {round_}")
            update = await healthy.next(ENDPOINT, timeout=2.0)
            assert update.version == source.version(ENDPOINT, NODE_A)
            [stuck] = [s for s in server.status() if s.node_id == stuck_id]
            blocked_on = blocked_on or stuck.types[CLUSTER].sent_nonce
            written = written or stuck.types[CLUSTER].bytes_sent
            # Still writing one response; later snapshots wait, merged, behind it: no
            # response is built for it meanwhile, so what it costs does not grow.
            assert stuck.types[CLUSTER].sent_nonce == blocked_on
            assert stuck.types[CLUSTER].bytes_sent == written > 0
    finally:
        requests.put_nowait(None)
        call.cancel()
        await channel.close()
