"""Delta (incremental) ADS against the real gRPC server."""

from __future__ import annotations

from xds_world import NODE_A, RATINGS, REVIEWS, ClientFactory, StaticSource, assignment, cluster

from isthmus.pilot.resources import CLUSTER, ENDPOINT
from isthmus.xds import AdsServer

DETAILS = "outbound|7070||details.default.svc.cluster.local"


async def test_initial_wildcard_response_has_every_resource_with_its_version(
    proxy: ClientFactory, source: StaticSource, server: AdsServer
) -> None:
    client = await proxy(delta=True)
    client.subscribe(CLUSTER)
    response = await client.next(CLUSTER)

    snapshot = source.snapshot_for(client.node)
    assert response.names() == sorted([REVIEWS, RATINGS])
    assert response.resource_versions == {
        name: r.version for name, r in snapshot.of_type(CLUSTER).items()
    }
    assert response.version == snapshot.version(CLUSTER)
    assert response.removed == ()
    client.ack(response)
    await client.expect_silence()
    assert server.status()[0].stream == "delta"
    assert server.status()[0].types[CLUSTER].acked_nonce == response.nonce


async def test_only_added_changed_and_removed_resources_are_sent(
    proxy: ClientFactory, source: StaticSource, server: AdsServer
) -> None:
    client = await proxy(delta=True)
    client.subscribe(CLUSTER)
    client.ack(await client.next(CLUSTER))

    source.put(cluster(REVIEWS, connect_timeout_s=5), cluster(DETAILS))
    source.remove(CLUSTER, RATINGS)
    server.request_push("clusters changed")
    update = await client.next(CLUSTER)

    assert update.names() == sorted([REVIEWS, DETAILS])
    assert update.removed == (RATINGS,)
    client.ack(update)
    assert sorted(client.resources(CLUSTER)) == sorted([REVIEWS, DETAILS])
    await client.expect_silence()


async def test_named_subscribe_and_unsubscribe(
    proxy: ClientFactory, source: StaticSource, server: AdsServer
) -> None:
    client = await proxy(delta=True)
    client.subscribe(ENDPOINT, [REVIEWS])
    first = await client.next(ENDPOINT)
    assert first.names() == [REVIEWS]
    client.ack(first)

    client.subscribe(ENDPOINT, [REVIEWS, RATINGS])
    second = await client.next(ENDPOINT)
    assert second.names() == [RATINGS]  # REVIEWS did not change: not sent again
    client.ack(second)

    client.subscribe(ENDPOINT, [RATINGS])  # unsubscribe REVIEWS
    await client.expect_silence()
    source.put(assignment(REVIEWS, 40000))
    server.request_push("reviews endpoints")
    await server.wait_quiet()
    await client.expect_silence()  # no longer subscribed
    assert server.status(names=True)[0].types[ENDPOINT].subscribed_names == (RATINGS,)


async def test_subscribing_to_a_missing_name_says_it_does_not_exist(
    proxy: ClientFactory, source: StaticSource, server: AdsServer
) -> None:
    client = await proxy(delta=True)
    client.subscribe(ENDPOINT, [DETAILS])
    absent = await client.next(ENDPOINT)
    assert absent.resources == {}
    assert absent.removed == (DETAILS,)
    client.ack(absent)
    await client.expect_silence()

    source.put(assignment(DETAILS, 41000))
    server.request_push("details appeared")
    appeared = await client.next(ENDPOINT)
    assert appeared.names() == [DETAILS]


async def test_reconnect_with_initial_versions_gets_only_what_differs(
    proxy: ClientFactory, source: StaticSource, server: AdsServer
) -> None:
    first = await proxy(delta=True)
    first.subscribe(CLUSTER)
    first.ack(await first.next(CLUSTER))
    held = first.versions(CLUSTER)
    await first.close()

    unchanged = await proxy(delta=True)
    unchanged.subscribe(CLUSTER, initial_versions=held)
    nothing_new = await unchanged.next(CLUSTER)  # the initial request is always answered
    assert nothing_new.resources == {} and nothing_new.removed == ()
    unchanged.ack(nothing_new)
    await unchanged.close()

    source.put(cluster(RATINGS, connect_timeout_s=9), cluster(DETAILS))
    source.remove(CLUSTER, REVIEWS)
    again = await proxy(delta=True)
    again.subscribe(CLUSTER, initial_versions=held)
    diff = await again.next(CLUSTER)
    assert diff.names() == sorted([RATINGS, DETAILS])
    assert diff.removed == (REVIEWS,)


async def test_nack_keeps_accepted_versions_and_is_not_resent(
    proxy: ClientFactory, source: StaticSource, server: AdsServer
) -> None:
    client = await proxy(NODE_A, delta=True)
    client.subscribe(CLUSTER)
    good = await client.next(CLUSTER)
    client.ack(good)

    source.put(cluster(REVIEWS, connect_timeout_s=8))
    server.request_push("bad")
    bad = await client.next(CLUSTER)
    assert bad.names() == [REVIEWS]
    client.nack(bad, "cluster reviews: invalid")
    await client.expect_silence(within=0.4)

    cds = server.status()[0].types[CLUSTER]
    assert cds.acked_version == good.version
    assert cds.last_nack is not None and cds.last_nack.message == "cluster reviews: invalid"
    assert client.versions(CLUSTER) == good.resource_versions

    # The next change is computed against what the proxy accepted: it carries both.
    source.put(cluster(RATINGS, connect_timeout_s=4))
    server.request_push("another")
    retry = await client.next(CLUSTER)
    assert retry.names() == sorted([REVIEWS, RATINGS])


async def test_one_response_per_type_in_flight_until_acked(
    proxy: ClientFactory, source: StaticSource, server: AdsServer
) -> None:
    client = await proxy(delta=True)
    client.subscribe(CLUSTER)
    initial = await client.next(CLUSTER)  # not ACKed yet

    source.put(cluster(DETAILS))
    server.request_push("details")
    await server.wait_quiet()
    await client.expect_silence()

    client.ack(initial)
    update = await client.next(CLUSTER)
    assert update.names() == [DETAILS]
