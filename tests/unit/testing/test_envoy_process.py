"""EnvoyProcess runs a real Envoy, proxies real traffic and always cleans up."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from isthmus.testing.envoy import (
    AdminError,
    EnvoyExited,
    EnvoyProcess,
    ads_bootstrap,
    static_proxy_bootstrap,
)
from isthmus.testing.load import run_requests
from isthmus.testing.ports import free_port
from isthmus.testing.upstream import UpstreamServer
from isthmus.testing.validate import validate_bootstrap

pytestmark = pytest.mark.envoy

NODE = "sidecar~10.44.0.7~order-7d9f.production~production.svc.cluster.local"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_requests_flow_through_envoy_and_stats_move(
    tmp_path: Path, upstream: UpstreamServer, second_upstream: UpstreamServer
) -> None:
    port = free_port()
    bootstrap = static_proxy_bootstrap(port, [upstream.port, second_upstream.port])
    with EnvoyProcess(bootstrap, tmp_path, "proxy") as envoy:
        envoy.wait_ready(timeout=10)
        assert envoy.stat("cluster.upstream.upstream_rq_total") == 0

        result = run_requests(f"http://127.0.0.1:{port}/hello", count=40, concurrency=4)

        assert result.statuses == {200: 40}
        # Round robin over both endpoints.
        assert result.upstreams == {"alpha": 20, "beta": 20}
        assert upstream.recent[-1].headers["x-forwarded-proto"] == "http"
        assert envoy.stat("cluster.upstream.upstream_rq_total") == 40
        assert envoy.stats()["http.ingress_http.downstream_rq_completed"] == 40
        assert (
            envoy.stats(filter_regex="upstream_rq_2xx$")["cluster.upstream.upstream_rq_2xx"] == 40
        )
        with pytest.raises(KeyError):
            envoy.stat("cluster.upstream.no_such_counter")
        assert envoy.stat("cluster.upstream.no_such_counter", default=-1) == -1

        dump = envoy.config_dump(resource="static_clusters")
        assert "upstream" in str(dump)
        assert f"127.0.0.1:{upstream.port}::" in envoy.clusters_text()
        with pytest.raises(AdminError) as missing:
            envoy.admin_get("/no-such-admin-path")
        assert missing.value.status == 404
        assert envoy.log_text()
        pid = envoy.pid
    assert not envoy.running
    assert not _alive(pid)


def test_upstream_failures_show_up_as_503(tmp_path: Path, upstream: UpstreamServer) -> None:
    port = free_port()
    upstream.fail_every = 2
    # Istio-style names carry '|', '.' and '-', which the stat lookup must escape.
    cluster = "outbound|8080|v1|inventory-service.production.svc.cluster.local"
    bootstrap = static_proxy_bootstrap(port, [upstream.port], cluster=cluster)
    with EnvoyProcess(bootstrap, tmp_path) as envoy:
        envoy.wait_ready()
        result = run_requests(f"http://127.0.0.1:{port}/", count=10, concurrency=1)
        assert result.statuses == {200: 5, 503: 5}
        assert envoy.stat(f"cluster.{cluster}.upstream_rq_503") == 5
        assert envoy.stat(f"cluster.{cluster}.upstream_rq_200") == 5


def test_envoy_accepts_absolute_urls_as_an_http_proxy(
    tmp_path: Path, upstream: UpstreamServer
) -> None:
    port = free_port()
    service = "inventory-service.production.svc.cluster.local:8080"
    with EnvoyProcess(static_proxy_bootstrap(port, [upstream.port]), tmp_path) as envoy:
        envoy.wait_ready()
        proxied = run_requests(
            f"http://{service}/stock?sku=7", count=5, concurrency=1, proxy=f"127.0.0.1:{port}"
        )
        assert proxied.statuses == {200: 5}
        record = upstream.recent[-1]
        # Envoy turned the absolute-form request target into origin form.
        assert record.path == "/stock?sku=7"
        assert record.headers["host"] == service

        redirected = run_requests(
            f"http://{service}/orders", count=5, concurrency=1, connect_to=("127.0.0.1", port)
        )
        assert redirected.statuses == {200: 5}
        assert upstream.recent[-1].headers["host"] == service
        assert upstream.recent[-1].path == "/orders"


def test_admin_port_is_chosen_by_envoy_on_loopback(tmp_path: Path) -> None:
    bootstrap = static_proxy_bootstrap(free_port(), [free_port()])
    bootstrap["admin"] = {
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15000}}
    }
    with (
        EnvoyProcess(bootstrap, tmp_path, "a") as first,
        EnvoyProcess(static_proxy_bootstrap(free_port(), [free_port()]), tmp_path, "b") as second,
    ):
        first.wait_ready()
        second.wait_ready()
        assert first.admin_address[0] == "127.0.0.1"
        assert first.admin_address != second.admin_address


def test_a_rejected_bootstrap_raises_with_envoys_log(tmp_path: Path) -> None:
    envoy = EnvoyProcess(
        {"static_resources": {"clusters": [{"name": "x", "type": "EDS"}]}}, tmp_path
    )
    try:
        with pytest.raises(EnvoyExited, match="EDS"):
            envoy.wait_ready(timeout=10)
    finally:
        envoy.stop()


def test_stop_is_idempotent_and_kills_a_stuck_envoy(tmp_path: Path) -> None:
    envoy = EnvoyProcess(static_proxy_bootstrap(free_port(), [free_port()]), tmp_path)
    envoy.wait_ready()
    os.kill(envoy.pid, signal.SIGSTOP)  # A stopped Envoy ignores SIGTERM; SIGKILL must follow.
    envoy.stop(timeout=0.5)
    envoy.stop()
    assert not _alive(envoy.pid)
    assert envoy.returncode is not None


@pytest.mark.parametrize("delta", [False, True])
def test_ads_bootstrap_is_accepted_by_envoy(tmp_path: Path, delta: bool) -> None:
    bootstrap = ads_bootstrap(
        NODE,
        "order.production",
        {"NAMESPACE": "production", "LABELS": {"app": "order", "version": "v1"}},
        str(tmp_path / "xds.sock"),
        delta=delta,
    )
    validate_bootstrap(bootstrap)
    assert bootstrap["dynamic_resources"]["ads_config"]["api_type"] == (
        "DELTA_GRPC" if delta else "GRPC"
    )


def test_ads_sidecar_waits_for_its_control_plane(tmp_path: Path) -> None:
    bootstrap = ads_bootstrap(NODE, "order.production", {}, str(tmp_path / "xds.sock"))
    with EnvoyProcess(bootstrap, tmp_path, "sidecar") as envoy:
        # No ADS server listens, so Envoy is up but never becomes ready.
        with pytest.raises(TimeoutError, match="INITIALIZING"):
            envoy.wait_ready(timeout=0.5)
        dump = envoy.config_dump()["configs"]
        bootstrap_dump = next(entry["bootstrap"] for entry in dump if "bootstrap" in entry)
        assert bootstrap_dump["node"]["id"] == NODE
        assert "xds-grpc::" in envoy.clusters_text()


def test_two_thousand_requests_through_envoy_in_seconds(
    tmp_path: Path, upstream: UpstreamServer
) -> None:
    port = free_port()
    with EnvoyProcess(static_proxy_bootstrap(port, [upstream.port]), tmp_path) as envoy:
        envoy.wait_ready()
        result = run_requests(f"http://127.0.0.1:{port}/", count=2000, concurrency=8)
    assert result.statuses == {200: 2000}
    assert upstream.requests == 2000
    # Typically under one second; the bound leaves room for a busy shared machine.
    assert result.elapsed < 10.0, result.summary()
