"""Telemetry on a real mesh: Istio's standard metrics with Istio's labels at both
reporters (HTTP over mTLS, an injected fault, TCP, a sidecar-less caller), peer metadata
that no app sees and no plaintext caller can forge, access log lines at both sidecars for
the same x-request-id (in Istio's JSON, set by `isthmus up --mesh-config`), one trace
across two hops, and the Telemetry kind."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import PYTHON, E2EMesh, app_deployment, running_mesh

NS = "production"
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

APPS = (
    app_deployment("client", "client", "v1", 1)
    + app_deployment("server-v1", "server", "v1", 1)
    + app_deployment("server-v2", "server", "v2", 1)
    + app_deployment("db-v1", "db", "v1", 1)
    + """
apiVersion: v1
kind: Service
metadata: {name: server, namespace: production}
spec:
  selector: {app: server}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: production}
spec:
  selector: {app: db}
  ports: [{name: tcp, port: 9080, targetPort: 8080}]
---
apiVersion: v1
kind: Namespace
metadata:
  name: monitoring
  labels: {istio-injection: disabled}
---
"""
    + app_deployment("scraper", "scraper", "v1", 1, namespace="monitoring")
    + """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: server, namespace: production}
spec:
  host: server
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: server, namespace: production}
spec:
  hosts: [server]
  http:
  - match: [{headers: {x-canary: {exact: "yes"}}}]
    fault:
      abort: {httpStatus: 503, percentage: {value: 100}}
    route: [{destination: {host: server, subset: v2}}]
  - route: [{destination: {host: server, subset: v1}}]
"""
)


def samples(text: str, family: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match["name"] == family:
            out.append((dict(_LABEL.findall(match["labels"] or "")), float(match["value"])))
    return out


def metrics(mesh: E2EMesh, pod: dict[str, Any]) -> str:
    script = (
        "import urllib.request;"
        "print(urllib.request.urlopen('http://127.0.0.1:15000/stats/prometheus').read().decode())"
    )
    return mesh.exec(pod, PYTHON, "-c", script)


def fetch(mesh: E2EMesh, pod: dict[str, Any], url: str, *headers: str) -> dict[str, Any]:
    args = [a for h in headers for a in ("-H", h)]
    out = mesh.exec(pod, PYTHON, "-m", "isthmus.demo.fetch", url, *args)
    return dict(json.loads(out.strip().splitlines()[-1]))


def series(
    mesh: E2EMesh, pod: dict[str, Any], family: str, **want: str
) -> list[tuple[dict[str, str], float]]:
    return [
        (labels, value)
        for labels, value in samples(metrics(mesh, pod), family)
        if all(labels.get(k) == v for k, v in want.items())
    ]


def wait_series(
    mesh: E2EMesh, pod: dict[str, Any], family: str, **want: str
) -> list[tuple[dict[str, str], float]]:
    deadline = time.monotonic() + 30
    while True:
        found = series(mesh, pod, family, **want)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


# Istio's MeshConfig, as `isthmus up --mesh-config` takes it: access logs in Istio's JSON.
MESH_CONFIG = "accessLogFile: /dev/stdout\naccessLogEncoding: JSON\n"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EMesh]:
    path = tmp_path_factory.mktemp("mesh-config") / "mesh.yaml"
    path.write_text(MESH_CONFIG)
    with running_mesh("--mesh-config", str(path)) as m:
        yield m


@pytest.fixture(scope="module")
def pods(mesh: E2EMesh) -> dict[str, dict[str, Any]]:
    mesh.apply(APPS)
    names = ("client", "server-v1", "server-v2", "db-v1", "scraper")
    mesh.wait_pods(dict.fromkeys(names, 1))
    return {d: mesh.pod(d) for d in names}


SOURCE_CLIENT = {
    "source_workload": "client",
    "source_workload_namespace": NS,
    "source_principal": f"spiffe://cluster.local/ns/{NS}/sa/default",
    "source_app": "client",
    "source_version": "v1",
    "source_canonical_service": "client",
    "source_canonical_revision": "v1",
    "source_cluster": "Kubernetes",
}
DEST_SERVER_V1 = {
    "destination_workload": "server-v1",
    "destination_workload_namespace": NS,
    "destination_principal": f"spiffe://cluster.local/ns/{NS}/sa/default",
    "destination_app": "server",
    "destination_version": "v1",
    "destination_canonical_service": "server",
    "destination_canonical_revision": "v1",
    "destination_cluster": "Kubernetes",
    "destination_service": f"server.{NS}.svc.cluster.local",
    "destination_service_name": "server",
    "destination_service_namespace": NS,
}


def test_http_request_has_istio_labels_at_both_reporters(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    client, server = pods["client"], pods["server-v1"]
    # The app tries to pass itself off as another workload: the client sidecar overwrites.
    answer = fetch(mesh, client, "http://server:8080/headers", "x-isthmus-peer-workload: forged")
    assert answer["status"] == 200
    seen = {k.lower() for k in answer["body"]["headers"]}
    assert not [h for h in seen if h.startswith("x-isthmus-peer")], seen
    common = {**SOURCE_CLIENT, **DEST_SERVER_V1, "request_protocol": "http"}
    common |= {"response_code": "200", "response_flags": "-"}
    source = wait_series(mesh, client, "envoy_istio_requests_total", reporter="source", **common)
    assert source and source[0][0]["connection_security_policy"] == "unknown", source
    destination = wait_series(
        mesh, server, "envoy_istio_requests_total", reporter="destination", **common
    )
    assert destination, metrics(mesh, server)
    assert destination[0][0]["connection_security_policy"] == "mutual_tls"
    # Every label Istio has, and no other (grpc_response_status is empty on plain HTTP).
    assert set(destination[0][0]) == {
        "reporter",
        *SOURCE_CLIENT,
        *DEST_SERVER_V1,
        "request_protocol",
        "response_code",
        "response_flags",
        "connection_security_policy",
    }
    # Histograms reach the stats output at Envoy's stats flush (every 5 s).
    deadline = time.monotonic() + 30
    durations: list[tuple[dict[str, str], float]] = []
    while time.monotonic() < deadline and not (durations and durations[0][1] >= 1):
        time.sleep(1)
        durations = series(
            mesh, server, "envoy_istio_request_duration_milliseconds_count", reporter="destination"
        )
    assert durations and durations[0][1] >= 1, durations


def test_injected_fault_is_reported_by_the_client_with_flag_FI(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    client = pods["client"]
    for _ in range(3):
        assert fetch(mesh, client, "http://server:8080/x", "x-canary: yes")["status"] == 503
    faults = wait_series(
        mesh,
        client,
        "envoy_istio_requests_total",
        reporter="source",
        response_code="503",
        response_flags="FI",
        destination_service_name="server",
    )
    assert faults and sum(v for _, v in faults) == 3, faults
    # Envoy answered before choosing an endpoint: the destination workload is unknown
    # (empty here; the agent's merged endpoint shows Istio's `unknown`).
    assert faults[0][0]["destination_workload"] == ""


def test_tcp_connections_are_counted_at_both_reporters(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    client, server = pods["client"], pods["db-v1"]
    assert fetch(mesh, client, "http://db:9080/tcp")["status"] == 200
    want = {"request_protocol": "tcp", "destination_workload": "db-v1"}
    opened = wait_series(
        mesh, client, "envoy_istio_tcp_connections_opened_total", reporter="source", **want
    )
    assert opened and opened[0][0]["destination_service_name"] == "db", opened
    closed = wait_series(
        mesh, client, "envoy_istio_tcp_connections_closed_total", reporter="source", **want
    )
    assert closed
    sent = wait_series(
        mesh,
        server,
        "envoy_istio_tcp_received_bytes_total",
        reporter="destination",
        connection_security_policy="mutual_tls",
        source_principal=SOURCE_CLIENT["source_principal"],
    )
    assert sent and sent[0][1] > 0, metrics(mesh, server)


def test_a_sidecar_less_caller_is_unknown_and_can_not_forge_its_identity(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    scraper, server = pods["scraper"], pods["server-v1"]
    # Without a sidecar there is no service VIP: it calls the pod, as a scraper does.
    url = f"http://{server['ip']}:8080/headers"
    answer = fetch(mesh, scraper, url, "x-isthmus-peer-workload: forged")
    assert answer["status"] == 200
    assert not [h for h in answer["body"]["headers"] if h.lower().startswith("x-isthmus-peer")]
    found = wait_series(
        mesh,
        server,
        "envoy_istio_requests_total",
        reporter="destination",
        connection_security_policy="none",
    )
    assert found, metrics(mesh, server)
    labels = found[0][0]
    assert labels["source_workload"] == "unknown" and labels["source_principal"] == "unknown"
    assert labels["destination_workload"] == "server-v1"


def test_access_log_lines_at_both_sidecars_share_the_request_id(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    client, server = pods["client"], pods["server-v1"]
    request_id = "e2e-telemetry-0123456789"
    fetch(mesh, client, "http://server:8080/logged", f"x-request-id: {request_id}")
    deadline = time.monotonic() + 20
    lines: dict[str, list[str]] = {}
    while time.monotonic() < deadline:
        lines = {
            name: [
                line
                for line in mesh.cli(
                    "logs", pod["name"], "-n", NS, "-c", "istio-proxy"
                ).stdout.splitlines()
                if request_id in line
            ]
            for name, pod in (("client", client), ("server", server))
        }
        if all(lines.values()):
            break
        time.sleep(0.5)
    assert all(lines.values()), lines
    # The mesh runs with accessLogEncoding JSON: Istio's JSON fields, one object a line.
    client_line, server_line = json.loads(lines["client"][0]), json.loads(lines["server"][0])
    assert client_line["method"] == "GET" and client_line["path"] == "/logged"
    assert client_line["response_code"] == 200 and client_line["request_id"] == request_id
    assert client_line["upstream_cluster"] == "outbound|8080|v1|server.production.svc.cluster.local"
    assert server_line["upstream_cluster"] == "inbound|8080||"
    assert server_line["downstream_remote_address"].startswith(client["ip"] + ":")


SAMPLE_ALL = """
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - randomSamplingPercentage: 100
"""

NO_ACCESS_LOG = """
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: quiet, namespace: production}
spec:
  selector: {matchLabels: {app: server}}
  accessLogging:
  - providers: [{name: envoy}]
    disabled: true
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - match: {metric: REQUEST_COUNT, mode: SERVER}
      tagOverrides:
        destination_app: {operation: REMOVE}
        team: {value: "'storage'"}
"""


def traces(mesh: E2EMesh, *args: str) -> list[list[dict[str, Any]]]:
    return list(json.loads(mesh.cli("traces", "-o", "json", *args).stdout))


def test_a_request_across_two_hops_is_one_trace_with_parented_spans(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    """The scraper (no sidecar) calls the client app, which calls the server: three
    spans (client's inbound, its outbound, the server's inbound), one trace."""
    mesh.apply(SAMPLE_ALL)
    scraper, client = pods["scraper"], pods["client"]
    url = f"http://{client['ip']}:8080/call/server:8080/traced"
    deadline = time.monotonic() + 60
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not found:
        answer = fetch(mesh, scraper, url)
        assert answer["status"] == 200, answer
        trace_id = answer["body"]["trace_id"]
        if not trace_id:  # the proxies have not received the new sampling yet
            time.sleep(1)
            continue
        for _ in range(20):
            spans = [s for t in traces(mesh, "--limit", "50") for s in t]
            found = [s for s in spans if s["traceId"] == trace_id.rjust(32, "0")]
            if len(found) >= 3:
                break
            time.sleep(0.5)
    assert len(found) >= 3, found
    by_kind = {(s["localEndpoint"]["serviceName"], s.get("kind")): s for s in found}
    inbound = by_kind[("client.production", "SERVER")]
    outbound = by_kind[("client.production", "CLIENT")]
    server = by_kind[("server-v1.production", "SERVER")]
    assert "parentId" not in inbound
    assert outbound["parentId"] == inbound["id"]
    assert server["parentId"] == outbound["id"]
    assert server["tags"]["http.status_code"] == "200"


def spans_of(mesh: E2EMesh, trace_id: str) -> list[dict[str, Any]]:
    spans = [s for t in traces(mesh, "--limit", "100") for s in t]
    return [s for s in spans if s["traceId"] == trace_id]


def test_sampling_zero_records_nothing_but_a_sampled_caller_is_honoured(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    mesh.apply(SAMPLE_ALL.replace("randomSamplingPercentage: 100", "randomSamplingPercentage: 0"))
    scraper, client = pods["scraper"], pods["client"]
    url = f"http://{client['ip']}:8080/call/server:8080/headers"
    deadline = time.monotonic() + 30
    sampled = "1"
    while time.monotonic() < deadline and sampled != "0":
        answer = fetch(mesh, scraper, url)
        sampled = answer["body"]["upstream"]["headers"].get("x-b3-sampled", "")
        time.sleep(0.5)
    assert sampled == "0", "the proxies never took 0% sampling"
    unsampled = [fetch(mesh, scraper, url)["body"]["trace_id"] for _ in range(5)]
    # The caller (no sidecar) decided to sample: the sidecars follow its B3 headers.
    trace_id = "5" * 16 + "0123456789abcdef"
    b3 = (f"x-b3-traceid: {trace_id}", "x-b3-spanid: 00000000000000aa", "x-b3-sampled: 1")
    assert fetch(mesh, scraper, url, *b3)["status"] == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(spans_of(mesh, trace_id)) < 3:
        time.sleep(0.5)
    found = spans_of(mesh, trace_id)
    assert len(found) >= 3, found
    inbound = next(
        s
        for s in found
        if s.get("kind") == "SERVER" and "client" in s["localEndpoint"]["serviceName"]
    )
    assert inbound["parentId"] == "00000000000000aa"
    # Envoy reports spans at least every 5 s per worker: after two more periods nothing
    # of the unsampled requests has arrived.
    time.sleep(11)
    assert not [t for t in unsampled if spans_of(mesh, t.rjust(32, "0"))]


def test_telemetry_turns_a_workloads_access_log_off_and_overrides_its_tags(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    client, server = pods["client"], pods["server-v1"]
    mesh.apply(NO_ACCESS_LOG)
    request_id = "e2e-quiet-0"
    deadline = time.monotonic() + 30
    tagged: list[tuple[dict[str, str], float]] = []
    while time.monotonic() < deadline and not tagged:
        request_id = f"e2e-quiet-{time.monotonic_ns()}"
        fetch(mesh, client, "http://server:8080/quiet", f"x-request-id: {request_id}")
        tagged = series(
            mesh, server, "envoy_istio_requests_total", reporter="destination", team="storage"
        )
        time.sleep(0.5)
    assert tagged, metrics(mesh, server)
    assert "destination_app" not in tagged[-1][0]
    # Only the server side's requests_total changed: its duration keeps every label.
    durations = series(
        mesh, server, "envoy_istio_request_duration_milliseconds_count", reporter="destination"
    )
    assert all("destination_app" in labels for labels, _ in durations)
    # Envoy flushes access logs about once a second: wait for the client's line first.
    deadline = time.monotonic() + 20
    logs: dict[str, str] = {}
    while time.monotonic() < deadline:
        logs = {
            name: mesh.cli("logs", pod["name"], "-n", NS, "-c", "istio-proxy").stdout
            for name, pod in (("client", client), ("server", server))
        }
        if request_id in logs["client"]:
            break
        time.sleep(0.5)
    assert request_id in logs["client"]
    assert request_id not in logs["server"]
