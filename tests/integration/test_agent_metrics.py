"""The agent's merged metrics (:15020) against a real Envoy whose stats access logger counts
requests as Istio's standard metrics do, and a real application metrics endpoint.

The Envoy here is static: one listener answering 200 or 503 itself, with an
`envoy.access_loggers.stats` logger (stat prefix `istio`) whose tags come from the
request, so some are unknown to Envoy. The agent's metrics server reads Envoy's admin API
as in a pod; the application is a small HTTP server on loopback.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from aiohttp import web

from isthmus.agent.admin import EnvoyAdmin
from isthmus.agent.metrics import AppScrape, MetricsServer
from isthmus.agent.metrics_merge import rename
from isthmus.cli.top_stats import ENVOY_FILTER, REQUESTS, parse_samples
from isthmus.testing.envoy import EnvoyProcess
from isthmus.testing.exposition import problems
from isthmus.testing.ports import LOOPBACK, free_port

pytestmark = pytest.mark.envoy

_HCM = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
_STATS = "type.googleapis.com/envoy.extensions.access_loggers.stats.v3.Config"
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
SERVICE = "inventory.shop.svc.cluster.local"

APP_METRICS = """\
# HELP orders_total Orders taken.
# TYPE orders_total counter
orders_total{kind="online"} 41
# TYPE envoy_server_live gauge
envoy_server_live 7
"""


def _tags(**formats: str) -> list[dict[str, str]]:
    return [{"name": name, "value_format": value} for name, value in formats.items()]


def istio_stats_logger() -> dict[str, Any]:
    """A few of Istio's standard metrics at the destination reporter; the source
    workload comes from a request header, destination_version from metadata no one set."""
    tags = _tags(
        reporter="destination",
        source_workload="%REQ(x-source-workload)%",
        destination_version="%DYNAMIC_METADATA(isthmus.none:version)%",
        destination_service=SERVICE,
        response_code="%RESPONSE_CODE%",
        response_flags="%RESPONSE_FLAGS%",
    )
    return {
        "name": "envoy.access_loggers.stats",
        "typed_config": {
            "@type": _STATS,
            "stat_prefix": "istio",
            "counters": [{"stat": {"name": "requests_total", "tags": tags}, "value_fixed": 1}],
            "histograms": [
                {
                    "stat": {"name": "request_duration_milliseconds", "tags": tags},
                    "unit": "Milliseconds",
                    "value_format": "%DURATION%",
                }
            ],
        },
    }


def bootstrap(port: int) -> dict[str, Any]:
    def answer(prefix: str, status: int) -> dict[str, Any]:
        return {"match": {"prefix": prefix}, "direct_response": {"status": status}}

    manager = {
        "@type": _HCM,
        "stat_prefix": "inbound",
        "access_log": [istio_stats_logger()],
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "app",
                    "domains": ["*"],
                    "routes": [answer("/fail", 503), answer("/", 200)],
                }
            ]
        },
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}],
    }
    listener = {
        "name": "inbound",
        "address": {"socket_address": {"address": LOOPBACK, "port_value": port}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager,
                    }
                ]
            }
        ],
    }
    return {"static_resources": {"listeners": [listener]}}


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="isthmus-metrics-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def app_port() -> AsyncIterator[int]:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=APP_METRICS, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


def _lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


async def test_merged_metrics_name_istios_metrics_and_append_the_apps(
    workdir: Path, app_port: int
) -> None:
    listen = free_port()
    metrics_port = free_port()
    with EnvoyProcess(bootstrap(listen), workdir / "envoy", "istio-stats") as envoy:
        envoy.wait_ready()
        admin = EnvoyAdmin(envoy.admin_address[1])
        server = MetricsServer(
            admin, LOOPBACK, metrics_port, workdir=workdir, app=AppScrape(app_port, "/metrics")
        )
        await server.start()
        try:
            async with httpx.AsyncClient() as client:
                base = f"http://{LOOPBACK}:{listen}"
                await client.get(base + "/", headers={"x-source-workload": "order"})
                await client.get(base + "/fail")
                await client.get(base + "/fail")
                response = await client.get(f"http://{LOOPBACK}:{metrics_port}/stats/prometheus")
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
            text = response.text
            assert problems(text) == [], text
            assert "envoy_istio_" not in text
            assert _lines(text, "# TYPE istio_requests_total") == [
                "# TYPE istio_requests_total counter"
            ]
            assert sorted(_lines(text, "istio_requests_total")) == [
                'istio_requests_total{reporter="destination",source_workload="order",'
                'destination_version="unknown",destination_service="inventory.shop.svc.cluster.local",'
                'response_code="200",response_flags="-"} 1',
                'istio_requests_total{reporter="destination",source_workload="unknown",'
                'destination_version="unknown",destination_service="inventory.shop.svc.cluster.local",'
                'response_code="503",response_flags="-"} 2',
            ]
            assert "# TYPE istio_request_duration_milliseconds histogram" in text
            assert "# TYPE envoy_server_live gauge" in text  # Envoy's own, untouched
            # The application's, after the agent's; its clash with Envoy's family is left out.
            assert 'orders_total{kind="online"} 41' in text
            assert text.index("istio_agent_scrapes_total 1") < text.index("orders_total{")
            assert "envoy_server_live 7" not in text

            # What `isthmus top` reads: Envoy's part narrowed to the request metrics.
            async with httpx.AsyncClient() as client:
                narrowed = await client.get(
                    f"http://{LOOPBACK}:{metrics_port}/stats/prometheus?filter="
                    + quote(ENVOY_FILTER, safe="")
                )
            assert problems(narrowed.text) == []
            declared = rename(narrowed.content).families
            envoy_families = {n for n in declared if n.startswith("envoy_")}
            assert envoy_families == {"envoy_server_live"}  # the app's, no longer a clash
            samples = parse_samples(narrowed.text, [REQUESTS])
            assert sorted(samples.values()) == [1.0, 2.0]

            # A failing application scrape costs nothing of Envoy's part, and is counted.
            server.app = AppScrape(free_port(), "/metrics")
            async with httpx.AsyncClient() as client:
                response = await client.get(f"http://{LOOPBACK}:{metrics_port}/metrics")
            assert response.status_code == 200
            assert problems(response.text) == []
            assert "istio_requests_total{" in response.text
            assert 'istio_agent_scrape_failures_total{type="application"} 1' in response.text
            assert "orders_total" not in response.text

            # No Envoy, no metrics: 503 and why.
            envoy.stop()
            async with httpx.AsyncClient() as client:
                response = await client.get(f"http://{LOOPBACK}:{metrics_port}/stats/prometheus")
            assert response.status_code == 503
            assert "envoy admin unavailable" in response.text
        finally:
            await server.stop()
            await admin.close()
