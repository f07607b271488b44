"""A real Prometheus scrapes the mesh: `isthmus up --with prometheus`.

The mesh starts with Debian's prometheus as a sidecar-less pod in istio-system; one small
app with a sidecar runs in production. isthmusd's file_sd list names the app's pod (its
agent's merged metrics on 15020, as the runtime annotated it); Prometheus, reached from
the host through `isthmus port-forward` as a user would, shows the target up and answers
PromQL for series scraped from it: `up`, Envoy's `envoy_server_live` and Istio's
`istio_requests_total` at both reporters. The Prometheus process sees its own directory and
nothing else of the mesh home; a user's pod that asks for the addon's directory is not
started; `down` removes the pod, its data and its files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    PYTHON,
    E2EMesh,
    app_deployment,
    netns_pid,
    prometheus_api,
    prometheus_mesh,
    service,
    wait_until,
)

from isthmus.store.sqlite import SqliteStore

NS = "production"
ROOT_NS = "istio-system"
Api = Callable[[str, dict[str, str] | None], Any]


@pytest.fixture(scope="module")
def mesh() -> Iterator[E2EMesh]:
    """This module's own mesh, started with the addon; always `down` afterwards."""
    with prometheus_mesh() as m:
        out = m.up_output
        assert f"isthmus port-forward -n {ROOT_NS} svc/prometheus 9090:9090" in out, out
        yield m


@pytest.fixture(scope="module")
def pods(mesh: E2EMesh) -> dict[str, dict[str, Any]]:
    mesh.apply(service("web") + app_deployment("web", "web", "v1", 1))
    return {p["deployment"]: p for p in mesh.wait_pods({"prometheus": 1, "web": 1})}


@pytest.fixture(scope="module")
def api(mesh: E2EMesh, pods: dict[str, dict[str, Any]]) -> Iterator[Api]:
    with prometheus_api(mesh) as get:
        yield get


def test_prometheus_runs_sidecar_less_in_the_root_namespace(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    prometheus, web = pods["prometheus"], pods["web"]
    assert prometheus["namespace"] == ROOT_NS and not prometheus["sidecar"]
    assert web["sidecar"]
    # The runtime annotated the sidecar's pod for scraping, as Istio's injector does.
    assert web["annotations"]["prometheus.io/scrape"] == "true"
    assert web["annotations"]["prometheus.io/port"] == "15020"
    assert "prometheus.io/scrape" not in prometheus["annotations"]


def test_the_file_sd_list_names_the_sidecars_pod(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    web = pods["web"]
    path = mesh.home / "addons" / "prometheus" / "file_sd" / "pods.json"

    def listed() -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
        return [g for g in groups if g["labels"]["pod"] == web["name"]]

    (group,) = wait_until(listed, 30, "the web pod in the file_sd list")
    assert group["targets"] == [f"{web['ip']}:15020"]
    labels = group["labels"]
    assert labels["__metrics_path__"] == "/stats/prometheus"
    assert (labels["namespace"], labels["app"], labels["version"]) == (NS, "web", "v1")


def test_the_ui_answers_through_port_forward(api: Api) -> None:
    assert "Prometheus" in api("/graph", None)
    build = api("/api/v1/status/buildinfo", None)
    assert build["status"] == "success" and build["data"]["version"].startswith("2.")


def _value(api: Api, promql: str) -> list[dict[str, Any]]:
    answer = api("/api/v1/query", {"query": promql})
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def test_prometheus_scrapes_the_sidecar_and_answers_promql(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]], api: Api
) -> None:
    web = pods["web"]

    def target_up() -> dict[str, Any] | None:
        active = api("/api/v1/targets", None)["data"]["activeTargets"]
        mine = [t for t in active if t["labels"].get("pod") == web["name"]]
        return mine[0] if mine and mine[0]["health"] == "up" else None

    target = wait_until(target_up, 60, "Prometheus to scrape the web pod", interval=1)
    assert target["scrapeUrl"] == f"http://{web['ip']}:15020/stats/prometheus"
    assert target["labels"]["namespace"] == NS and target["labels"]["job"] == "kubernetes-pods"
    selector = f'namespace="{NS}",pod="{web["name"]}"'
    (up,) = _value(api, f"up{{{selector}}}")
    assert up["value"][1] == "1"
    assert (up["metric"]["app"], up["metric"]["version"]) == ("web", "v1")
    # Envoy's own metrics, from the sidecar through the agent's merged endpoint.
    (live,) = _value(api, f"envoy_server_live{{{selector}}}")
    assert live["value"][1] == "1"


def test_istio_request_metrics_reach_prometheus(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]], api: Api
) -> None:
    """Requests through the mesh (the pod calls its own Service, so through its client and
    its server sidecar) are counted as Istio's istio_requests_total at both reporters."""
    web = pods["web"]
    # The pod's /etc/hosts learns the Service asynchronously (the node refreshes it after
    # isthmusd's change); on a loaded machine the pod can be up before the name is there.
    lookup = "import socket; print(socket.gethostbyname('web'))"
    wait_until(
        lambda: (
            mesh.cli(
                "exec", web["name"], "-n", web["namespace"], "--", PYTHON, "-c", lookup, check=False
            ).returncode
            == 0
        ),
        60,
        "the web Service's name in the pod's hosts file",
        interval=1,
    )
    calls = "import urllib.request as u\nfor _ in range(5): u.urlopen('http://web:8080/').read()"
    mesh.exec(web, PYTHON, "-c", calls)
    selector = f'namespace="{NS}",destination_workload="web",response_code="200"'
    promql = f"sum by (reporter) (istio_requests_total{{{selector}}})"

    def counted() -> dict[str, float] | None:
        by = {s["metric"]["reporter"]: float(s["value"][1]) for s in _value(api, promql)}
        return by if by.get("source", 0) >= 5 and by.get("destination", 0) >= 5 else None

    wait_until(counted, 60, "5 requests at both reporters in Prometheus", interval=1)


def test_prometheus_sees_its_own_directory_and_nothing_else_of_the_home(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    """Seen from the host through /proc/PID/root, which walks the Prometheus process's own
    mount namespace."""
    pid = netns_pid(pods["prometheus"], "--config.file=")
    assert pid is not None
    status = Path(f"/proc/{pid}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uids.split()[1:] == ["65534"] * 4
    view = Path(f"/proc/{pid}/root")
    ca_key = mesh.home / "ca" / "ca-key.pem"
    assert ca_key.exists()  # the test means something only if it is there for the host
    for hidden in (ca_key, mesh.home / "ca", mesh.home / "isthmus.db", mesh.home / "xds.sock"):
        assert not (view / hidden.relative_to("/")).exists(), hidden
    assert os.listdir(view / mesh.home.relative_to("/")) == []
    assert os.listdir(view / "run" / "isthmus") == ["addon"]
    assert sorted(os.listdir(view / "run" / "isthmus" / "addon")) == [
        "data",
        "file_sd",
        "prometheus.yml",
        "rules.yml",
    ]


def test_a_users_pod_can_not_ask_for_the_addons_directory(mesh: E2EMesh) -> None:
    intruder = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: intruder, namespace: {NS}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: intruder}}}}
  template:
    metadata:
      labels: {{app: intruder}}
      annotations: {{sidecar.istio.io/inject: "false", isthmus.io/addon: prometheus}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        command: [{PYTHON}, -c, "import os; print(os.listdir('/run/isthmus'), flush=True)"]
"""
    mesh.apply(intruder)

    def refused() -> tuple[dict[str, Any], str] | None:
        found = [p for p in mesh.pods() if p["deployment"] == "intruder"]
        if not found:
            return None
        out = mesh.cli("logs", found[0]["name"], "-n", NS, check=False).stdout
        return (found[0], out) if "CreateContainerConfigError" in out else None

    pod, log = wait_until(refused, 30, "the intruder to be refused")
    assert "isthmus.io/addon is honoured only in the root namespace istio-system" in log
    assert "[" not in log  # it never ran (it would have printed what it saw)
    assert pod["ready_containers"] == 0 and not pod["ready"]
    mesh.cli("delete", "deploy", "intruder", "-n", NS)


def test_down_removes_prometheus_its_data_and_its_objects(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    pid = netns_pid(pods["prometheus"], "--config.file=")
    assert pid is not None
    assert (mesh.home / "addons" / "prometheus" / "data").is_dir()
    mesh.cli("down", timeout=240)
    assert not Path(f"/proc/{pid}").exists()
    assert not (mesh.home / "addons").exists()
    store = SqliteStore(mesh.home / "isthmus.db")
    try:
        left = [o.key.name for o in store.list(namespace=ROOT_NS)]
    finally:
        store.close()
    assert "prometheus" not in left
