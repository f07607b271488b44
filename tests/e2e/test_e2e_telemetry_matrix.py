"""The rest of the telemetry request matrix: every label of Istio's standard metrics at
both reporters, read as a scraper reads them (the agent's merged endpoint on 15020:
`istio_*` names, Istio's `unknown`), for

- HTTP/2 between the sidecars (DestinationRule h2UpgradePolicy UPGRADE: the app speaks
  HTTP/1.1 to its sidecar, the sidecars HTTP/2 to each other), and gRPC, which is HTTP/2
  end to end (a real grpcio client and server: isthmus.demo.grpc_echo);
- gRPC statuses 0 and 5, and the streamed message counts;
- 2xx, 4xx and 5xx answered by the app;
- retried requests (the source counts a request once with its final answer, the
  destination counts every attempt);
- connection-pool overflow (`UO`) and an outlier-ejected upstream (`UH`), both answered by
  the client sidecar before it picks an endpoint: the destination workload is unknown.

HTTP/1.1 over mTLS, an injected fault, TCP and a sidecar-less caller are in
test_e2e_telemetry.py. Counts are compared with what the client saw and with Envoy's own
cluster counters, never with timings.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from conftest import PYTHON, E2EMesh, app_deployment, demo_deployment, service, wait_until

from isthmus.testing.exposition import problems, samples

pytestmark = pytest.mark.root

NS = "production"
PRINCIPAL = f"spiffe://cluster.local/ns/{NS}/sa/default"
N_RETRIED = 40
N_OVERFLOW = 16
N_EJECTED = 8


def outbound(name: str) -> str:
    return f"cluster.outbound|8080||{name}.{NS}.svc.cluster.local"


def traffic(name: str, policy: str = "", retries: str = "{attempts: 0}") -> str:
    """A VirtualService with `retries` and, when `policy` is given, a DestinationRule."""
    route = f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {NS}}}
spec:
  hosts: [{name}]
  http:
  - route: [{{destination: {{host: {name}}}}}]
    retries: {retries}
---
"""
    if not policy:
        return route
    return (
        route
        + f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {NS}}}
spec:
  host: {name}
  trafficPolicy: {policy}
---
"""
    )


ECHO = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: echo-v1, namespace: {NS}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: echo, version: v1}}}}
  template:
    metadata: {{labels: {{app: echo, version: v1}}}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: app
        image: isthmus/demo-app
        command: [{PYTHON}, -m, isthmus.demo.grpc_echo, serve, --port, "8080"]
        ports: [{{containerPort: 8080, name: grpc}}]
        readinessProbe:
          tcpSocket: {{port: 8080}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: {NS}}}
spec:
  selector: {{app: echo}}
  ports: [{{name: grpc, port: 8080}}]
---
"""

APPS = (
    app_deployment("client", "client", "v1", 1)
    + demo_deployment("web-v1", "web", 1)
    + service("web")
    + traffic("web")
    + demo_deployment("h2-v1", "h2", 1)
    + service("h2")
    + traffic("h2", "{connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}")
    + demo_deployment("flaky-v1", "flaky", 1, env={"ERROR_RATE": "0.5"})
    + service("flaky")
    + traffic("flaky", retries="{attempts: 3, retryOn: 5xx}")
    + demo_deployment("slow-v1", "slow", 1, env={"LATENCY": "0.5"})
    + service("slow")
    + traffic(
        "slow",
        "{connectionPool: {http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1},"
        " tcp: {maxConnections: 1}}}",
    )
    + demo_deployment("fragile-v1", "fragile", 1, env={"ERROR_RATE": "1"})
    + service("fragile")
    + traffic(
        "fragile",
        "{outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s,"
        " maxEjectionPercent: 100}}",
    )
    + ECHO
)
DEPLOYMENTS = ("client", "web-v1", "h2-v1", "flaky-v1", "slow-v1", "fragile-v1", "echo-v1")


@pytest.fixture(scope="module")
def pods(mesh: E2EMesh) -> dict[str, dict[str, Any]]:
    mesh.apply(APPS)
    mesh.wait_pods(dict.fromkeys(DEPLOYMENTS, 1))
    return {d: mesh.pod(d) for d in DEPLOYMENTS}


# --- expected labels -------------------------------------------------------------------


def _side(side: str, workload: str, app: str, principal: str) -> dict[str, str]:
    return {
        f"{side}_workload": workload,
        f"{side}_canonical_service": app,
        f"{side}_canonical_revision": "v1",
        f"{side}_workload_namespace": NS,
        f"{side}_principal": principal,
        f"{side}_app": app,
        f"{side}_version": "v1",
        f"{side}_cluster": "Kubernetes",
    }


def _unknown(side: str) -> dict[str, str]:
    keys = _side(side, "", "", "")
    return dict.fromkeys(keys, "unknown")


def labels(
    reporter: str,
    service_name: str,
    code: str,
    flags: str = "-",
    protocol: str = "http",
    grpc_status: str | None = None,
    endpoint: bool = True,
) -> dict[str, str]:
    """Every label Istio gives a request from the client workload to `service_name` (whose
    one workload is `<service_name>-v1`). `endpoint=False`: the client sidecar answered
    before choosing an endpoint (and so before any upstream connection): the destination
    workload and both principals are unknown, as in Istio."""
    source = _side("source", "client", "client", PRINCIPAL if endpoint else "unknown")
    if endpoint:
        destination = _side("destination", f"{service_name}-v1", service_name, PRINCIPAL)
    else:
        destination = _unknown("destination")
    out = {
        "reporter": reporter,
        **source,
        **destination,
        "destination_service": f"{service_name}.{NS}.svc.cluster.local",
        "destination_service_name": service_name,
        "destination_service_namespace": NS,
        "request_protocol": protocol,
        "response_code": code,
        "response_flags": flags,
        "connection_security_policy": "unknown" if reporter == "source" else "mutual_tls",
    }
    if grpc_status is not None:
        out["grpc_response_status"] = grpc_status
    return out


# --- reading the merged endpoint --------------------------------------------------------

Series = dict[tuple[tuple[str, str], ...], float]


def merged(mesh: E2EMesh, pod: dict[str, Any]) -> str:
    """The agent's merged metrics, as Prometheus scrapes them."""
    script = (
        "import urllib.request;"
        "print(urllib.request.urlopen('http://127.0.0.1:15020/stats/prometheus').read().decode(),"
        " end='')"
    )
    return mesh.exec(pod, PYTHON, "-c", script)


def key(names: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(names.items()))


def table(found: list[tuple[dict[str, str], float]]) -> Series:
    return {key(names): value for names, value in found}


def series(mesh: E2EMesh, pod: dict[str, Any], name: str, **select: str) -> Series:
    """The series of `name` on the pod's 15020 whose labels include `select`."""
    found = samples(merged(mesh, pod), name)
    return table([(ls, v) for ls, v in found if all(ls.get(k) == w for k, w in select.items())])


def wait_series(
    mesh: E2EMesh,
    pod: dict[str, Any],
    name: str,
    expected: list[tuple[dict[str, str], float]],
    timeout: float = 30,
) -> Series:
    """Poll until the pod shows exactly `expected` among the series of `name` at the
    expected reporter for the expected service (or the deadline passes); what it shows."""
    first = expected[0][0]
    select = {k: first[k] for k in ("reporter", "destination_service_name")}
    want = table(expected)
    deadline = time.monotonic() + timeout
    while True:
        seen = series(mesh, pod, name, **select)
        if seen == want or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


def check(
    mesh: E2EMesh,
    pod: dict[str, Any],
    name: str,
    expected: list[tuple[dict[str, str], float]],
) -> None:
    assert wait_series(mesh, pod, name, expected) == table(expected)


def envoy_stats(mesh: E2EMesh, pod: dict[str, Any]) -> dict[str, int]:
    """Envoy's own counters and gauges (admin /stats), by name."""
    script = (
        "import urllib.request;"
        "print(urllib.request.urlopen('http://127.0.0.1:15000/stats').read().decode(), end='')"
    )
    out: dict[str, int] = {}
    for line in mesh.exec(pod, PYTHON, "-c", script).splitlines():
        name, _, value = line.partition(": ")
        if value.isdigit():
            out[name] = int(value)
    return out


def grpc_call(mesh: E2EMesh, pod: dict[str, Any], *args: str) -> dict[str, Any]:
    out = mesh.exec(pod, PYTHON, "-m", "isthmus.demo.grpc_echo", "call", "echo:8080", *args)
    return dict(json.loads(out.strip().splitlines()[-1]))


# --- the matrix -------------------------------------------------------------------------


def test_http2_between_sidecars_keeps_every_label(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    client, server = pods["client"], pods["h2-v1"]
    result = mesh.load(client, "http://h2:8080/x", "--count", "3", "--concurrency", "1")
    assert result["statuses"] == {"200": 3}, result
    check(mesh, client, "istio_requests_total", [(labels("source", "h2", "200"), 3)])
    check(mesh, server, "istio_requests_total", [(labels("destination", "h2", "200"), 3)])
    # It was HTTP/2 between the sidecars: the client's cluster opened only HTTP/2
    # connections and the server's inbound connection manager accepted one.
    stats = envoy_stats(mesh, client)
    assert stats[f"{outbound('h2')}.upstream_cx_http2_total"] >= 1, stats
    assert stats[f"{outbound('h2')}.upstream_cx_http1_total"] == 0
    inbound = envoy_stats(mesh, server)
    accepted = {
        k: v
        for k, v in inbound.items()
        if k.startswith("http.inbound") and k.endswith(".downstream_cx_http2_total")
    }
    assert sum(accepted.values()) >= 1, sorted(k for k in inbound if k.startswith("http."))


@pytest.fixture(scope="module")
def grpc_calls(mesh: E2EMesh, pods: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """From the client's app: two unary calls, one Chat call of three messages each way,
    one unary call answered NOT_FOUND."""
    client = pods["client"]
    return {
        "unary": grpc_call(mesh, client, "--count", "2"),
        "chat": grpc_call(mesh, client, "--stream", "3"),
        "not_found": grpc_call(mesh, client, "--status", "NOT_FOUND"),
    }


def grpc_labels(reporter: str, status: str) -> dict[str, str]:
    return labels(reporter, "echo", "200", protocol="grpc", grpc_status=status)


def test_grpc_calls_are_counted_with_their_status_at_both_reporters(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]], grpc_calls: dict[str, dict[str, Any]]
) -> None:
    assert grpc_calls == {
        "unary": {"calls": 2, "codes": {"OK": 2}, "sent": 2, "received": 2},
        "chat": {"calls": 1, "codes": {"OK": 1}, "sent": 3, "received": 3},
        "not_found": {"calls": 1, "codes": {"NOT_FOUND": 1}, "sent": 1, "received": 0},
    }
    # gRPC answers HTTP 200 whatever its status, which is grpc_response_status.
    for reporter, pod in (("source", pods["client"]), ("destination", pods["echo-v1"])):
        expected = [(grpc_labels(reporter, "0"), 3), (grpc_labels(reporter, "5"), 1)]
        check(mesh, pod, "istio_requests_total", expected)
    # HTTP/2 end to end: the client's cluster to echo spoke nothing else.
    stats = envoy_stats(mesh, pods["client"])
    assert stats[f"{outbound('echo')}.upstream_cx_http2_total"] >= 1, stats
    assert stats[f"{outbound('echo')}.upstream_cx_http1_total"] == 0


def test_grpc_messages_are_counted_at_both_reporters(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]], grpc_calls: dict[str, dict[str, Any]]
) -> None:
    """Five messages each way for the OK calls (2 unary, 3 streamed), one request message
    for the NOT_FOUND call and no answer."""
    assert grpc_calls["chat"]["received"] == 3
    for reporter, pod in (("source", pods["client"]), ("destination", pods["echo-v1"])):
        ok, not_found = grpc_labels(reporter, "0"), grpc_labels(reporter, "5")
        # The message counters come from the access log that counts the requests.
        check(mesh, pod, "istio_requests_total", [(ok, 3), (not_found, 1)])
        select = {"reporter": reporter, "destination_service_name": "echo"}
        requests = series(mesh, pod, "istio_request_messages_total", **select)
        assert requests == table([(ok, 5), (not_found, 1)])
        responses = series(mesh, pod, "istio_response_messages_total", **select)
        # A call answered with no message adds 0 to its series (or does not create it).
        assert responses in (table([(ok, 5), (not_found, 0)]), table([(ok, 5)])), responses


def test_2xx_4xx_and_5xx_from_the_app(mesh: E2EMesh, pods: dict[str, dict[str, Any]]) -> None:
    client, server = pods["client"], pods["web-v1"]
    urls = [f"http://web:8080/status/{code}" for code in (200, 404, 503)]
    result = mesh.load(client, *urls, "--count", "6", "--concurrency", "1")
    assert result["statuses"] == {"200": 2, "404": 2, "503": 2}, result
    for reporter, pod in (("source", client), ("destination", server)):
        expected = [(labels(reporter, "web", code), 2) for code in ("200", "404", "503")]
        check(mesh, pod, "istio_requests_total", expected)
    # Histograms carry the same labels; Envoy writes them at its stats flush (5 s).
    check(
        mesh,
        server,
        "istio_request_duration_milliseconds_count",
        [(labels("destination", "web", code), 2) for code in ("200", "404", "503")],
    )


def test_retried_requests_count_once_at_the_source_and_per_attempt_at_the_destination(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    client, server = pods["client"], pods["flaky-v1"]
    result = mesh.load(
        client, "http://flaky:8080/x", "--count", str(N_RETRIED), "--concurrency", "2"
    )
    ok, failed = result["statuses"].get("200", 0), result["statuses"].get("503", 0)
    assert ok + failed == N_RETRIED and ok > 0, result
    stats = envoy_stats(mesh, client)
    attempts = stats[f"{outbound('flaky')}.upstream_rq_total"]
    retries = stats[f"{outbound('flaky')}.upstream_rq_retry"]
    assert retries > 0 and attempts == N_RETRIED + retries, (attempts, retries)
    # The source: one request per client request, with the final answer; a 503 that used
    # up the retries is flagged URX (upstream retry limit exceeded).
    source = [(labels("source", "flaky", "200"), ok)]
    if failed:
        source.append((labels("source", "flaky", "503", flags="URX"), failed))
    check(mesh, client, "istio_requests_total", source)

    # The destination: every attempt, as the app answered it. The client sidecar retries
    # as soon as a 503's headers arrive and, over HTTP/1.1, closes that connection: when
    # the 503's body had not passed the server sidecar yet, it flags the attempt DC
    # (downstream connection termination), as Istio's sidecar would.
    def every_attempt() -> Series | None:
        seen = series(
            mesh,
            server,
            "istio_requests_total",
            reporter="destination",
            destination_service_name="flaky",
        )
        return seen if sum(seen.values()) >= attempts else None

    seen = wait_until(every_attempt, 30, f"{attempts} attempts counted at the destination")
    answered = key(labels("destination", "flaky", "200"))
    failed = {key(labels("destination", "flaky", "503", flags=f)) for f in ("-", "DC")}
    assert set(seen) <= {answered, *failed}, seen
    assert seen[answered] == ok
    assert sum(seen.get(k, 0) for k in failed) == attempts - ok, seen


def test_connection_pool_overflow_is_UO_with_no_destination_workload(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    client, server = pods["client"], pods["slow-v1"]
    result = mesh.load(
        client, "http://slow:8080/x", "--count", str(N_OVERFLOW), "--concurrency", "6"
    )
    ok, overflowed = result["statuses"].get("200", 0), result["statuses"].get("503", 0)
    assert ok + overflowed == N_OVERFLOW and ok > 0 and overflowed > 0, result
    stats = envoy_stats(mesh, client)
    pending_overflow = stats[f"{outbound('slow')}.upstream_rq_pending_overflow"]
    assert 0 < pending_overflow <= overflowed, (pending_overflow, result)
    # Each overflow is one UO sample with no destination workload. Once in CI (13 of 14)
    # one more request of the burst got a 503 that was not a pending overflow; such a
    # request is counted with its own flags, still as a 503.
    uo = labels("source", "slow", "503", flags="UO", endpoint=False)
    expected = [(labels("source", "slow", "200"), ok), (uo, pending_overflow)]

    def all_counted() -> Series | None:
        seen = series(
            mesh, client, "istio_requests_total", reporter="source", destination_service_name="slow"
        )
        return seen if sum(seen.values()) >= N_OVERFLOW else None

    seen = wait_until(all_counted, 30, f"{N_OVERFLOW} requests counted at the source")
    assert {k: seen.get(k) for k in table(expected)} == table(expected), seen
    others = {k: v for k, v in seen.items() if k not in table(expected)}
    assert sum(others.values()) == overflowed - pending_overflow, seen
    assert all(dict(k)["response_code"] == "503" for k in others), seen
    # Only what reached the server is counted there: the answered requests, and the odd
    # 503 above if it got that far (with the flags the server sidecar gave it).
    answered = key(labels("destination", "slow", "200"))

    def server_counted() -> Series | None:
        seen = series(mesh, server, "istio_requests_total", reporter="destination")
        seen = {k: v for k, v in seen.items() if dict(k)["destination_service_name"] == "slow"}
        return seen if seen.get(answered) == ok else None

    at_server = wait_until(server_counted, 30, f"{ok} answered requests counted at the server")
    extra = {k: v for k, v in at_server.items() if k != answered}
    assert sum(extra.values()) <= overflowed - pending_overflow, at_server


def test_an_ejected_upstream_is_UH_with_no_destination_workload(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    client, server = pods["client"], pods["fragile-v1"]
    result = mesh.load(
        client, "http://fragile:8080/x", "--count", str(N_EJECTED), "--concurrency", "1"
    )
    assert result["statuses"] == {"503": N_EJECTED}, result
    stats = envoy_stats(mesh, client)
    assert stats[f"{outbound('fragile')}.outlier_detection.ejections_enforced_total"] >= 1

    # The first 503 (the app's) ejects the only endpoint; a request or two may still have
    # reached it before the ejection took effect; the rest find no healthy upstream.
    def all_counted() -> Series | None:
        seen = series(
            mesh,
            client,
            "istio_requests_total",
            reporter="source",
            destination_service_name="fragile",
        )
        return seen if sum(seen.values()) == N_EJECTED else None

    seen = wait_until(all_counted, 30, f"{N_EJECTED} requests counted at the source")
    answered = int(seen.get(key(labels("source", "fragile", "503")), 0))
    assert 1 <= answered < N_EJECTED, seen
    assert seen == table(
        [
            (labels("source", "fragile", "503"), answered),
            (labels("source", "fragile", "503", flags="UH", endpoint=False), N_EJECTED - answered),
        ]
    )
    check(
        mesh,
        server,
        "istio_requests_total",
        [(labels("destination", "fragile", "503"), answered)],
    )


def test_the_merged_endpoint_is_valid_prometheus_text(
    mesh: E2EMesh, pods: dict[str, dict[str, Any]]
) -> None:
    """After all of the above (gRPC, local replies, unknown values) each sidecar's 15020
    still reads as valid text format, with no Envoy name left for Istio's families."""
    for pod in (pods["client"], pods["echo-v1"]):
        text = merged(mesh, pod)
        assert problems(text) == [], problems(text)
        assert "envoy_istio_" not in text
