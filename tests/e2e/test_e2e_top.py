"""Per pod metrics on a real mesh: Istio's scrape annotations on the pods, the agent's
merged endpoint on :15020 (Envoy's metrics under Istio's names, the agent's, the app's),
the merge-metrics opt-out, and `isthmus top` reading the sidecars under load."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml
from conftest import PYTHON, E2EMesh, app_deployment, start_load

from isthmus.testing.exposition import problems

NS = "production"
SHOP = f"shop.{NS}.svc.cluster.local"
EXPORTER = """\
import http.server
class Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"# HELP shop_orders_total Orders.\\n# TYPE shop_orders_total counter\\n"
        body += b"shop_orders_total 42\\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 9100), Metrics).serve_forever()
"""

SHOP_DEPLOYMENT = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: shop-v1, namespace: {NS}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: shop, version: v1}}}}
  template:
    metadata:
      labels: {{app: shop, version: v1}}
      annotations: {{prometheus.io/scrape: "true", prometheus.io/port: "9100"}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: app
        image: isthmus/demo-app
        command: [{PYTHON}, -m, isthmus.demo.app]
        env: [{{name: SERVICE, value: shop}}, {{name: VERSION, value: v1}}]
        ports: [{{containerPort: 8080, name: http}}]
        readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1}}
      - name: exporter
        image: isthmus/exporter
        command: [{PYTHON}, -c, {json.dumps(EXPORTER)}]
        ports: [{{containerPort: 9100}}]
---
apiVersion: v1
kind: Service
metadata: {{name: shop, namespace: {NS}}}
spec:
  selector: {{app: shop}}
  ports: [{{name: http, port: 8080}}]
---
"""
# The client opts out of merging: its own (absent) exporter annotations stay as written.
CLIENT = app_deployment("client", "client", "v1", 1).replace(
    "    metadata: {labels: {app: client, version: v1}}",
    "    metadata:\n"
    "      labels: {app: client, version: v1}\n"
    '      annotations: {prometheus.istio.io/merge-metrics: "false", '
    'prometheus.io/scrape: "true", prometheus.io/port: "9100"}',
)


def merged(mesh: E2EMesh, pod: dict[str, Any]) -> str:
    script = (
        "import urllib.request;"
        "print(urllib.request.urlopen('http://127.0.0.1:15020/stats/prometheus').read().decode(),"
        " end='')"
    )
    return mesh.exec(pod, PYTHON, "-c", script)


def annotations(mesh: E2EMesh, pod: dict[str, Any]) -> dict[str, str]:
    out = mesh.cli("get", "pod", pod["name"], "-n", NS, "-o", "yaml").stdout
    return dict(yaml.safe_load(out)["metadata"]["annotations"])


@pytest.fixture(scope="module")
def pods(mesh: E2EMesh) -> dict[str, dict[str, Any]]:
    assert "prometheus.istio.io/merge-metrics" in CLIENT
    mesh.apply(SHOP_DEPLOYMENT + CLIENT)
    mesh.wait_pods({"shop-v1": 1, "client": 1})
    return {d: mesh.pod(d) for d in ("shop-v1", "client")}


def test_pods_are_annotated_for_scraping_as_istio_does(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    shop = annotations(mesh, pods["shop-v1"])
    assert shop["prometheus.io/scrape"] == "true"
    assert shop["prometheus.io/port"] == "15020"
    assert shop["prometheus.io/path"] == "/stats/prometheus"
    client = annotations(mesh, pods["client"])
    assert client["prometheus.io/port"] == "9100"  # opted out: left as the user wrote it
    assert "prometheus.io/path" not in client


def test_merged_metrics_and_top_under_load(mesh: E2EMesh, pods: dict[str, dict[str, Any]]) -> None:
    shop, client = pods["shop-v1"], pods["client"]
    load = start_load(
        mesh, client, "http://shop:8080/", "--rate", "20", "--count", "500", "--duration", "40"
    )
    try:
        deadline = time.monotonic() + 30
        text = merged(mesh, shop)
        while "istio_requests_total{" not in text and time.monotonic() < deadline:
            time.sleep(0.5)
            text = merged(mesh, shop)
        assert problems(text) == [], problems(text)
        assert "envoy_istio_" not in text
        assert 'istio_requests_total{reporter="destination"' in text
        assert f'destination_service="{SHOP}"' in text
        assert "# TYPE istio_agent_scrapes_total counter" in text
        assert text.endswith(
            "# HELP shop_orders_total Orders.\n"
            "# TYPE shop_orders_total counter\nshop_orders_total 42\n"
        )
        client_text = merged(mesh, client)
        assert problems(client_text) == []
        assert 'istio_agent_scrape_failures_total{type="application"} 0' in client_text

        result = mesh.cli("top", "-n", NS, "--once", "--interval", "6s", timeout=90)
        rows = [line.split() for line in result.stdout.splitlines()]
        service = next(r for r in rows if r and r[0] == SHOP)
        rps, errors, p50, p99 = service[1:5]
        assert float(rps) > 5, result.stdout
        assert errors == "0.0%", result.stdout
        assert float(p50) > 0 and float(p99) >= float(p50), result.stdout
        edge = next(r for r in rows if r[:2] == [f"client.{NS}", SHOP])
        assert float(edge[2]) > 5 and edge[3] == "0.0%", result.stdout
    finally:
        summary = load.result()
    assert summary["statuses"].get("200", 0) > 0, summary


def test_top_says_when_there_is_nothing_to_read(mesh: E2EMesh) -> None:
    result = mesh.cli("top", "-n", "nowhere", "--once", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: no running pods with a sidecar in namespace nowhere"
