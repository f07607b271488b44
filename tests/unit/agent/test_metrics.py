"""The agent's metrics endpoint: how it reads Istio's scrape annotations, what it says
about itself, and that it answers 503 with the reason when Envoy's admin is away."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from isthmus.agent.admin import EnvoyAdmin
from isthmus.agent.certificate_manager import STATUS_FILE_NAME
from isthmus.agent.metrics import (
    AgentFacts,
    AppScrape,
    MetricsServer,
    ProcessFacts,
    ScrapeCounters,
    agent_families,
    app_scrape,
    certificate_expiry,
    process_facts,
)
from isthmus.agent.metrics_merge import merge
from isthmus.agent.options import OptionsError, parse_options
from isthmus.sidecar_status import EnvoyRestartRecord
from isthmus.testing.exposition import problems
from isthmus.testing.ports import LOOPBACK, free_port

REQUIRED = [
    *("--pod", "web-7d9f-x2k8q", "--namespace", "shop", "--ip", "10.44.0.9"),
    *("--xds-socket", "/run/isthmus/xds.sock", "--workdir", "/run/isthmus/pods/web"),
]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ('{"scrape":"true","port":"8080","path":"/metrics"}', AppScrape(8080, "/metrics")),
        ('{"scrape":"true"}', AppScrape(80, "/metrics")),  # Istio's defaults
        ('{"port":"9102","path":"stats"}', AppScrape(9102, "/stats")),
        ('{"scrape":"false","port":"8080"}', None),
    ],
)
def test_istios_prometheus_annotations(config: str, expected: AppScrape | None) -> None:
    assert app_scrape(config) == expected


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{", "not JSON"),
        ('["x"]', "JSON object"),
        ('{"port": 8080}', "JSON object"),
        ('{"port":"http"}', "'http' is not a port number"),
        ('{"port":"15020"}', "the agent's own metrics port 15020"),
    ],
)
def test_unusable_annotations_are_refused(config: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        app_scrape(config)


def test_options_take_the_metrics_port_and_the_annotations_from_flag_or_environment() -> None:
    default = parse_options(REQUIRED, environ={})
    assert (default.metrics_port, default.app_metrics) == (15020, None)
    config = '{"scrape":"true","port":"9090","path":"/m"}'
    from_env = parse_options(REQUIRED, environ={"ISTIO_PROMETHEUS_ANNOTATIONS": config})
    assert from_env.app_metrics == AppScrape(9090, "/m")
    flag = parse_options(
        [*REQUIRED, "--prometheus-annotations", '{"port":"8081"}', "--metrics-port", "16020"],
        environ={"ISTIO_PROMETHEUS_ANNOTATIONS": config},
    )
    assert (flag.metrics_port, flag.app_metrics) == (16020, AppScrape(8081, "/metrics"))
    with pytest.raises(OptionsError, match="--prometheus-annotations: the application's port"):
        parse_options([*REQUIRED, "--prometheus-annotations", '{"port":"15020"}'], environ={})
    with pytest.raises(OptionsError, match="--metrics-port 0 is out of range"):
        parse_options([*REQUIRED, "--metrics-port", "0"], environ={})


def test_the_agents_own_metrics_with_pilot_agents_names() -> None:
    counters = ScrapeCounters(scrapes=7)
    counters.failures["application"] = 2
    process = ProcessFacts(
        cpu_seconds=1.5,
        resident_bytes=40_000_000,
        virtual_bytes=300_000_000,
        start_time=1_800_000_000.25,
        open_fds=12,
        max_fds=1024,
    )
    facts = AgentFacts(counters, process, certificate_expiry=3600.5, envoy_restarts=1)
    text = merge(b"", agent_families(facts)).body().decode()
    assert problems(text) == []
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert samples == [
        "istio_agent_scrapes_total 7",
        'istio_agent_scrape_failures_total{type="envoy"} 0',
        'istio_agent_scrape_failures_total{type="application"} 2',
        'istio_agent_scrape_failures_total{type="agent"} 0',
        "isthmus_agent_envoy_restarts_total 1",
        'istio_agent_cert_expiry_seconds{resource_name="default"} 3600.5',
        "istio_agent_process_cpu_seconds_total 1.5",
        "istio_agent_process_resident_memory_bytes 40000000",
        "istio_agent_process_virtual_memory_bytes 300000000",
        "istio_agent_process_start_time_seconds 1800000000.25",
        "istio_agent_process_open_fds 12",
        "istio_agent_process_max_fds 1024",
    ]
    assert "# TYPE istio_agent_cert_expiry_seconds gauge" in text
    bare = AgentFacts(ScrapeCounters(), None, None, 0)
    assert [f.name for f in agent_families(bare)] == [
        "istio_agent_scrapes_total",
        "istio_agent_scrape_failures_total",
        "isthmus_agent_envoy_restarts_total",
    ]


def test_process_facts_are_this_process() -> None:
    facts = process_facts()
    assert facts.resident_bytes > 1_000_000
    assert facts.virtual_bytes >= facts.resident_bytes
    assert facts.open_fds >= 3
    assert time.time() - 86400 * 365 < facts.start_time <= time.time()
    assert facts.cpu_seconds > 0


def test_certificate_expiry_from_the_status_file(tmp_path: Path) -> None:
    assert certificate_expiry(tmp_path, 0.0) is None
    status = tmp_path / STATUS_FILE_NAME
    status.write_text(json.dumps({"state": "pending", "not_after": None}))
    assert certificate_expiry(tmp_path, 0.0) is None
    status.write_text(json.dumps({"state": "issued", "not_after": "2027-01-01T00:00:00Z"}))
    assert certificate_expiry(tmp_path, 1_798_761_600.0 - 90.0) == 90.0
    status.write_text("{")
    assert certificate_expiry(tmp_path, 0.0) is None


async def test_no_envoy_admin_is_503_with_the_reason(tmp_path: Path) -> None:
    EnvoyRestartRecord(tmp_path).envoy_started(3)
    port = free_port()
    admin = EnvoyAdmin(free_port())  # nothing listens there
    server = MetricsServer(admin, LOOPBACK, port, workdir=tmp_path)
    await server.start()
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://{LOOPBACK}:{port}/stats/prometheus", timeout=5)
        assert response.status_code == 503
        assert response.text.startswith("envoy metrics unavailable: envoy admin unavailable: ")
        assert server.counters.scrapes == 1
        assert server.counters.failures["envoy"] == 1
    finally:
        await server.stop()
        await admin.close()


async def test_a_taken_metrics_port_fails_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        admin = EnvoyAdmin(free_port())
        server = MetricsServer(admin, LOOPBACK, taken.getsockname()[1], workdir=tmp_path)
        with pytest.raises(OSError):
            await server.start()
        await admin.close()
