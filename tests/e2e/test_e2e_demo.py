"""`isthmus demo`: the seed's story told end to end on the real runtime, checked from the
tour's own --json summary (what it observed), then `demo --down`; and without root, the
control-plane demo instead."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import ISTHMUS, _need_root

from isthmus.cli.main import cli


@pytest.fixture(scope="module")
def tour() -> Iterator[tuple[dict[str, Any], str, Path, str]]:
    _need_root()
    home = Path(tempfile.mkdtemp(prefix="idemo-", dir="/tmp"))
    mesh = "demo" + secrets.token_hex(3)
    try:
        run = subprocess.run(
            [ISTHMUS, "--home", str(home), "demo", "--quick", "--json", "--mesh", mesh],
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        yield json.loads(run.stdout.strip().splitlines()[-1]), run.stderr, home, mesh
    finally:
        subprocess.run([ISTHMUS, "--home", str(home), "demo", "--down"], timeout=180, check=False)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.root
def test_canary_split_and_beta_users(tour: tuple[dict[str, Any], str, Path, str]) -> None:
    summary, _, _, _ = tour
    split = summary["split"]
    assert split["statuses"] == {"200": split["requests"]}
    assert 2.0 <= split["v2_percent"] <= 9.0, split  # 5% of 600 is 30 +- 3 sigma (16)
    assert len(split["pods"]) == 3  # both v1 pods and the v2 pod served
    beta = summary["beta"]
    n = beta["requests"]
    assert beta["statuses"] == {"200": n}
    assert beta["upstream_versions"] == {"inventory-service/v2": n}  # through order-service
    assert beta["request_id_propagated"] == n
    assert beta["trace_id_propagated"] == n


@pytest.mark.root
def test_slow_pod_takes_callers_down_without_policies(
    tour: tuple[dict[str, Any], str, Path, str],
) -> None:
    summary, _, _, _ = tour
    assert summary["slow_pod"]["p99"] >= 3.5
    without = summary["without_policies"]
    assert without["failed"] >= 0.2 * without["requests"], without
    assert without["p99"] >= 4.0, without
    down = [n for n, c in without["callers"].items() if c["not_ready_after"] is not None]
    assert down, without["callers"]


@pytest.mark.root
def test_seed_policies_contain_the_slow_pod(tour: tuple[dict[str, Any], str, Path, str]) -> None:
    summary, _, _, _ = tour
    with_policies = summary["with_policies"]
    assert with_policies["failed"] <= 0.02 * with_policies["requests"], with_policies
    assert with_policies["p99"] < 3.0, with_policies
    assert all(c["not_ready_after"] is None for c in with_policies["callers"].values())
    envoy = with_policies["envoy"]
    assert envoy["per_try_timeouts"] >= 1, envoy
    assert envoy["ejections"] >= 1, envoy
    slow = summary["slow_pod"]["pod"]
    assert with_policies["inventory_pods"].get(slow, 0) == 0  # its answers never counted


@pytest.mark.root
def test_rollback_by_weight_and_mesh_left_up(tour: tuple[dict[str, Any], str, Path, str]) -> None:
    summary, narrative, home, mesh = tour
    rollback = summary["rollback"]
    assert rollback["failed"] == 0, rollback
    assert rollback["after"] == {"inventory-service/v1": summary["profile"]["after_requests"]}
    assert rollback["v2_pod_running"]
    assert summary["mesh"] == mesh
    assert "`image` is recorded, not used" in narrative
    assert f"isthmus --home {home} get pods -A" in summary["explore"]
    pods = subprocess.run(
        [ISTHMUS, "--home", str(home), "get", "pods", "-n", "production"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert pods.count("Running") == 6, pods


@pytest.mark.root
def test_the_seeds_security_section(tour: tuple[dict[str, Any], str, Path, str]) -> None:
    security = tour[0]["security"]
    assert security["mtls_peer"] == "spiffe://cluster.local/ns/production/sa/order-service"
    assert security["scraper_before"] == 200 and security["readiness_lists_scraper"]
    assert security["scraper_strict"] == 0 and security["meshed_strict"] == [200] * 5
    assert security["scraper_exception"] == 200
    assert security["authorization"] == {
        "order GET /items": 200,
        "order GET /items/42": 200,
        "order POST /items": 403,
        "order GET /admin": 403,
        "search GET /items": 403,
    }


@pytest.mark.root
def test_the_seeds_observability_section(tour: tuple[dict[str, Any], str, Path, str]) -> None:
    summary, narrative, _, _ = tour
    observability = summary["observability"]
    assert observability["sampling_percent"] == 100
    # Istio's standard metrics at order-service's sidecar, per destination version: the
    # canary is counted apart, and exactly as the load generator saw the answers.
    metrics = observability["metrics"]
    edges = metrics["edges"]
    assert edges["v1"]["requests"] > 0 and edges["v2"]["requests"] > 0, metrics
    assert {v: e["requests"] for v, e in edges.items()} == metrics["generated"], metrics
    assert all(e["error_percent"] == 0.0 and e["p99_ms"] is not None for e in edges.values())
    # One request order-service's pod -> order-service -> inventory-service: two hops, a
    # client and a server span each.
    trace = observability["trace"]
    assert trace["spans"] >= 4, trace
    kinds = trace["kinds"]
    assert kinds.count("order-service.production CLIENT") == 2, kinds
    assert "order-service.production SERVER" in kinds, kinds
    assert any(k.startswith("inventory-v") and k.endswith(".production SERVER") for k in kinds)
    assert f"isthmus traces {trace['trace_id']}" in narrative
    # Its access-log lines at both sidecars, found by the same x-request-id.
    log = observability["access_log"]
    assert log["request_id"]
    order = summary["pods"]["order-service"][0]
    inventory = [p for p in log["lines"] if p != order]
    assert log["lines"][order] >= 2 and len(inventory) == 1, log
    assert inventory[0].startswith("inventory-") and log["lines"][inventory[0]] >= 1, log
    # The seed's mitigation: search-service's sidecar stops logging, order-service's goes on.
    quiet = observability["quiet"]
    n = quiet["requests"]
    assert quiet["before"] == {"order-service": n, "search-service": n}, quiet
    assert quiet["after"] == {"order-service": n, "search-service": 0}, quiet
    assert quiet["lines_since"] == 0, quiet


@pytest.mark.envoy
def test_without_root_the_control_plane_demo_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "demo"])
    assert result.exit_code == 0, result.output
    assert "the full tour needs root" in result.output
    assert "v2 gets" in result.output
    assert "rollback (v2 weight 0)" in result.output
    assert "0 failed requests" in result.output
