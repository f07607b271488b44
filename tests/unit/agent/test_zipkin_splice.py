"""The agent's ZIPKIN socket: Envoy's span reports (HTTP/1.1) spliced onto isthmusd's real
collector app, which stores them; its log events say `zipkin`, not `xds`."""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from _agent_events import Events
from aiohttp import web

from isthmus.agent.xds_proxy import ZIPKIN_SOCKET_NAME, XdsProxy
from isthmus.tracing import SpanStore
from isthmus.tracing.app import collector_app

TRACE = "4e441824ec2b6a44ffdc9bb9a6453df3"


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Path, SpanStore]]:
    store = SpanStore()
    runner = web.AppRunner(collector_app(store))
    await runner.setup()
    # Short paths: a unix socket path must fit in 107 bytes.
    with tempfile.TemporaryDirectory(prefix="isz-") as directory:
        path = Path(directory)
        await web.UnixSite(runner, str(path / "zipkin.sock")).start()
        try:
            yield path, store
        finally:
            await runner.cleanup()


async def test_spans_posted_to_the_agents_socket_reach_the_collector(
    collector: tuple[Path, SpanStore], events: Events
) -> None:
    directory, store = collector
    splice = XdsProxy(
        directory / ZIPKIN_SOCKET_NAME, str(directory / "zipkin.sock"), None, kind="zipkin"
    )
    await splice.start()
    try:
        spans = [
            {"traceId": TRACE, "id": f"{n:016x}", "localEndpoint": {"serviceName": "web"}}
            for n in (1, 2)
        ]
        connector = aiohttp.UnixConnector(path=str(splice.listen_path))
        async with aiohttp.ClientSession(connector=connector) as session:
            for batch in spans:  # two requests on one kept-alive connection, as Envoy sends
                response = await session.post(
                    "http://zipkin/api/v2/spans",
                    data=json.dumps([batch]),
                    headers={"Content-Type": "application/json"},
                )
                assert response.status == 202
    finally:
        await splice.stop()
    assert [s.id for s in store.trace(TRACE)] == ["0000000000000001", "0000000000000002"]
    assert events.named("zipkin_proxy_listening")
    assert events.named("zipkin_upstream_connected")
    assert not events.named("xds_upstream_connected")
