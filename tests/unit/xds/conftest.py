"""Fixtures for the ADS server tests: a real gRPC server on a unix socket and fake
proxies speaking real gRPC to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from xds_world import NODE_A, ClientFactory, StaticSource, mesh

from isthmus.testing.ads_client import AdsClient
from isthmus.xds import AdsServer


@pytest.fixture
def source() -> StaticSource:
    return StaticSource(mesh())


@pytest.fixture
async def server(source: StaticSource, tmp_path: Path) -> AsyncIterator[AdsServer]:
    ads = AdsServer(source, debounce_after=0.05, debounce_max=1.0)
    await ads.start(str(tmp_path / "xds.sock"))
    try:
        yield ads
    finally:
        await ads.stop(0)


@pytest.fixture
async def proxy(server: AdsServer) -> AsyncIterator[ClientFactory]:
    """Makes connected fake proxies; all are closed after the test."""
    clients: list[AdsClient] = []

    async def make(node_id: str = NODE_A, **options: Any) -> AdsClient:
        client = AdsClient(f"unix:{server.unix_path}", node_id, **options)
        clients.append(client)
        await client.connect()
        return client

    yield make
    for client in clients:
        await client.close()
