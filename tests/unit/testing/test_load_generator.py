"""run_requests and SteadyLoad send what they promise and count what came back."""

from __future__ import annotations

import time

import pytest

from isthmus.testing.load import (
    NO_RESPONSE,
    KeepAliveClient,
    LoadResult,
    Sample,
    SteadyLoad,
    Target,
    run_requests,
)
from isthmus.testing.ports import free_port
from isthmus.testing.upstream import UpstreamServer


def test_run_requests_counts_statuses_and_upstreams(upstream: UpstreamServer) -> None:
    upstream.fail_every = 4

    result = run_requests(f"{upstream.url}/orders", count=200, concurrency=4)

    assert result.count == 200
    assert upstream.requests == 200
    assert result.statuses == {200: 150, 503: 50}
    assert result.upstreams == {"alpha": 200}
    assert result.ok == 150 and result.failed == 50
    assert len(result.latencies) == 200
    assert upstream.requests_by_path == {"/orders": 200}
    assert 0 < result.percentile(0.5) <= result.percentile(0.99)


def test_keep_alive_uses_one_connection_per_worker(upstream: UpstreamServer) -> None:
    result = run_requests(upstream.url, count=60, concurrency=3)
    assert result.statuses == {200: 60}
    # Workers connect lazily, so a late one may find all requests already taken.
    assert 1 <= upstream.connections_opened <= 3


def test_connect_to_with_host_header_reaches_the_service_host(upstream: UpstreamServer) -> None:
    service = "inventory-service.production.svc.cluster.local:8080"
    result = run_requests(
        f"http://{service}/stock?sku=1",
        count=3,
        concurrency=1,
        connect_to=(upstream.host, upstream.port),
        headers={"x-canary": "true"},
    )
    assert result.statuses == {200: 3}
    record = upstream.recent[-1]
    assert record.path == "/stock?sku=1"
    assert record.headers["host"] == service
    assert record.headers["x-canary"] == "true"


def test_proxy_mode_sends_the_absolute_url(upstream: UpstreamServer) -> None:
    url = "http://inventory-service.production.svc.cluster.local:8080/stock"
    result = run_requests(url, count=2, concurrency=1, proxy=upstream.url)
    assert result.statuses == {200: 2}
    record = upstream.recent[-1]
    assert record.path == url
    assert record.headers["host"] == "inventory-service.production.svc.cluster.local:8080"


def test_host_header_overrides_the_url_host(upstream: UpstreamServer) -> None:
    run_requests(upstream.url, count=1, concurrency=1, host_header="reviews:9080")
    assert upstream.recent[-1].headers["host"] == "reviews:9080"


def test_refused_connections_are_recorded_as_no_response() -> None:
    result = run_requests(f"http://127.0.0.1:{free_port()}/", count=5, concurrency=2)
    assert result.statuses == {NO_RESPONSE: 5}
    assert result.errors == {"ConnectionRefusedError": 5}
    assert result.failed == 5


def test_timeouts_are_recorded(upstream: UpstreamServer) -> None:
    upstream.delay = 0.5
    result = run_requests(upstream.url, count=1, concurrency=1, timeout=0.1)
    assert result.statuses == {NO_RESPONSE: 1}
    assert result.errors == {"TimeoutError": 1}


def test_a_connection_closed_while_idle_is_retried_once(upstream: UpstreamServer) -> None:
    with KeepAliveClient(upstream.url) as client:
        assert client.send().status == 200
        # A restart closes the idle keep-alive connection under the client.
        upstream.stop()
        upstream.start()
        assert client.send().status == 200
        assert client.stale_retries == 1
    assert upstream.connections_opened == 2


def test_stale_retry_can_be_disabled(upstream: UpstreamServer) -> None:
    with KeepAliveClient(upstream.url, retry_stale=False) as client:
        assert client.send().ok
        upstream.stop()
        upstream.start()
        failed = client.send()
        assert failed.status == NO_RESPONSE
        assert failed.error in {"RemoteDisconnected", "ConnectionResetError", "BrokenPipeError"}
        assert client.send().ok


def test_steady_load_keeps_its_rate(upstream: UpstreamServer) -> None:
    load = SteadyLoad(upstream.url, rate=50, workers=2, max_duration=10).start()
    time.sleep(0.5)
    result = load.stop()
    # 0.5 s at 50/s is 25 requests (the first goes out at t=0).
    assert 20 <= result.count <= 28
    assert result.statuses == {200: result.count}
    starts = [sample.started for sample in result.samples]
    assert starts == sorted(starts)


def test_steady_load_ends_at_its_bounds(upstream: UpstreamServer) -> None:
    by_count = SteadyLoad(upstream.url, rate=1000, max_count=30).start()
    assert by_count.wait(timeout=5)
    assert by_count.stop().count == 30

    by_duration = SteadyLoad(upstream.url, rate=100, max_duration=0.2).start()
    assert by_duration.wait(timeout=5)
    assert 19 <= by_duration.stop().count <= 21


def test_target_parsing() -> None:
    plain = Target.of("http://svc:8080/a?b=1")
    assert plain == Target(connect=("svc", 8080), request_target="/a?b=1", host="svc:8080")
    proxied = Target.of("http://svc/a", proxy="127.0.0.1:15001")
    assert proxied.connect == ("127.0.0.1", 15001)
    assert proxied.request_target == "http://svc/a"
    with pytest.raises(ValueError, match="only http"):
        Target.of("https://svc/")


def test_load_result_views() -> None:
    samples = [
        Sample(started=0.0, latency=0.010, status=200, upstream="v1"),
        Sample(started=0.1, latency=0.020, status=200, upstream="v2"),
        Sample(started=0.2, latency=0.030, status=503, upstream="v2"),
        Sample(started=0.3, latency=0.040, status=NO_RESPONSE, error="ConnectionResetError"),
    ]
    result = LoadResult(samples=samples, elapsed=2.0)
    assert result.rps == 2.0
    assert result.upstreams == {"v1": 1, "v2": 2}
    assert result.errors == {"ConnectionResetError": 1}
    assert (result.ok, result.failed) == (2, 2)
    assert result.percentile(1.0) == pytest.approx(0.040)
    assert result.percentile(0.0) == pytest.approx(0.010)
    assert "4 requests" in result.summary()
