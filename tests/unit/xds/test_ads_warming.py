"""Cluster warming: a changed EDS cluster is followed by its assignment, even unchanged."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from google.protobuf import duration_pb2
from xds_world import RATINGS, REVIEWS, ClientFactory, StaticSource, cluster

from isthmus.pilot.resources import CLUSTER, ENDPOINT
from isthmus.testing.ads_client import AdsClient
from isthmus.xds import AdsServer


async def subscribed(proxy: ClientFactory, delta: bool) -> AdsClient:
    client = await proxy(delta=delta, auto_ack=True)
    client.subscribe(CLUSTER)
    await client.next(CLUSTER)
    client.subscribe(ENDPOINT, [REVIEWS, RATINGS])
    await client.next(ENDPOINT)
    return client


async def test_sotw_changed_cluster_is_followed_by_unchanged_assignments(
    proxy: ClientFactory, server: AdsServer, source: StaticSource
) -> None:
    client = await subscribed(proxy, delta=False)
    before = source.version(ENDPOINT)
    source.put(cluster(REVIEWS, connect_timeout_s=4))
    server.request_push("reviews cluster")
    assert (await client.next()).type_url == CLUSTER
    endpoints = await client.next()
    assert endpoints.type_url == ENDPOINT
    assert endpoints.version == before
    assert endpoints.names() == sorted([REVIEWS, RATINGS])


async def test_delta_changed_cluster_is_followed_by_its_assignment_only(
    proxy: ClientFactory, server: AdsServer, source: StaticSource
) -> None:
    client = await subscribed(proxy, delta=True)
    source.put(cluster(RATINGS, connect_timeout_s=4))
    server.request_push("ratings cluster")
    assert (await client.next()).names() == [RATINGS]
    endpoints = await client.next()
    assert endpoints.type_url == ENDPOINT
    assert endpoints.names() == [RATINGS]
    await client.expect_silence()


async def test_changed_static_cluster_needs_no_assignment(
    proxy: ClientFactory, server: AdsServer, source: StaticSource
) -> None:
    client = await subscribed(proxy, delta=False)
    static = cluster_pb2.Cluster(
        name="static-metrics",
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=duration_pb2.Duration(seconds=1),
    )
    source.put(static)
    server.request_push("static cluster")
    assert (await client.next()).type_url == CLUSTER
    await client.expect_silence()
