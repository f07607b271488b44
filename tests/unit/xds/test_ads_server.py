"""Server lifecycle and listeners: loopback-only TCP, unix socket path handling."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from xds_world import REVIEWS, ClientFactory, StaticSource, cluster

from isthmus.pilot.resources import CLUSTER
from isthmus.testing.ads_client import AdsClient, Received
from isthmus.xds import AdsServer


async def test_tcp_listener_on_loopback_serves_streams(source: StaticSource) -> None:
    server = AdsServer(source)
    await server.start(None, "127.0.0.1:0")
    try:
        assert server.tcp_port
        async with AdsClient(f"127.0.0.1:{server.tcp_port}", "tcp-proxy") as client:
            client.subscribe(CLUSTER)
            assert REVIEWS in (await client.next(CLUSTER)).resources
    finally:
        await server.stop(0)


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0", "10.0.0.1:15010"])
async def test_tcp_listener_off_loopback_is_refused(source: StaticSource, address: str) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        await AdsServer(source).start(None, address)


async def test_socket_left_by_a_crash_is_replaced(source: StaticSource, tmp_path: Path) -> None:
    path = tmp_path / "xds.sock"
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(str(path))
    leftover.close()
    server = AdsServer(source)
    await server.start(str(path))
    try:
        async with AdsClient(f"unix:{path}", "after-crash") as client:
            client.subscribe(CLUSTER)
            await client.next(CLUSTER)
    finally:
        await server.stop(0)
    assert not path.exists()


async def test_socket_path_that_is_not_a_socket_is_left_alone(
    source: StaticSource, tmp_path: Path
) -> None:
    path = tmp_path / "xds.sock"
    path.write_text("precious")
    with pytest.raises(FileExistsError):
        await AdsServer(source).start(str(path))
    assert path.read_text() == "precious"
    with pytest.raises(FileNotFoundError):
        await AdsServer(source).start(str(tmp_path / "missing" / "xds.sock"))


async def test_auto_answering_client_nacks_by_policy(
    proxy: ClientFactory, server: AdsServer, source: StaticSource
) -> None:
    def refuse_slow_timeouts(response: Received) -> str | None:
        slow = []
        for name, packed in response.resources.items():
            parsed = cluster_pb2.Cluster()
            packed.Unpack(parsed)
            if parsed.connect_timeout.seconds > 5:
                slow.append(name)
        return f"connect_timeout too long in {slow}" if slow else None

    client = await proxy(auto_ack=True, nack_policy=refuse_slow_timeouts)
    client.subscribe(CLUSTER)
    good = await client.next(CLUSTER)
    source.put(cluster(REVIEWS, connect_timeout_s=9))
    server.request_push("slow")
    await client.next(CLUSTER)
    await server.wait_quiet()
    await client.expect_silence()
    cds = server.status()[0].types[CLUSTER]
    assert cds.acked_version == good.version
    assert cds.last_nack is not None and REVIEWS in cds.last_nack.message
