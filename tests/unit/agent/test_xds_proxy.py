"""The xDS proxy splices Envoy's connection onto the control plane's socket, byte for byte."""

from __future__ import annotations

import asyncio
import os
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from isthmus.agent.proxy_user import ProxyUser
from isthmus.agent.xds_proxy import XdsProxy


@pytest.fixture
def sockets() -> Iterator[Path]:
    # Short paths: a unix socket path must fit in 107 bytes.
    with tempfile.TemporaryDirectory(prefix="isx-") as directory:
        yield Path(directory)


_INVERT = bytes(255 - value for value in range(256))


class Upstream:
    """A stand-in control plane answering every byte with its complement."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server: asyncio.Server | None = None
        self.closed = asyncio.Event()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data.translate(_INVERT))
            await writer.drain()
        writer.close()
        self.closed.set()

    async def start(self) -> Upstream:
        self.server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def proxy(sockets: Path) -> AsyncIterator[XdsProxy]:
    xds = XdsProxy(sockets / "XDS", str(sockets / "xds.sock"), None)
    await xds.start()
    try:
        yield xds
    finally:
        await xds.stop()


async def test_forwards_both_ways(proxy: XdsProxy, sockets: Path) -> None:
    upstream = await Upstream(sockets / "xds.sock").start()
    try:
        reader, writer = await asyncio.open_unix_connection(str(proxy.listen_path))
        payload = os.urandom(300_000)
        writer.write(payload)
        await writer.drain()
        received = await asyncio.wait_for(reader.readexactly(len(payload)), 5)
        assert received == payload.translate(_INVERT)
        writer.close()
        await writer.wait_closed()
        await asyncio.wait_for(upstream.closed.wait(), 5)
    finally:
        await upstream.stop()


async def test_closes_the_connection_while_the_control_plane_is_down(proxy: XdsProxy) -> None:
    reader, writer = await asyncio.open_unix_connection(str(proxy.listen_path))
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_stop_ends_open_streams_and_removes_the_socket(
    proxy: XdsProxy, sockets: Path
) -> None:
    upstream = await Upstream(sockets / "xds.sock").start()
    try:
        reader, writer = await asyncio.open_unix_connection(str(proxy.listen_path))
        writer.write(b"hello")
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"hello".translate(_INVERT)
        await proxy.stop()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert not proxy.listen_path.exists()
        writer.close()
    finally:
        await upstream.stop()


async def test_socket_is_private_without_a_proxy_user(proxy: XdsProxy) -> None:
    assert stat.S_IMODE(proxy.listen_path.stat().st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's group to 1337 needs root")
async def test_socket_is_open_to_the_proxy_group(sockets: Path) -> None:
    xds = XdsProxy(sockets / "XDS", str(sockets / "xds.sock"), ProxyUser())
    await xds.start()
    try:
        info = xds.listen_path.stat()
        assert (info.st_gid, stat.S_IMODE(info.st_mode)) == (1337, 0o660)
    finally:
        await xds.stop()
