"""What the telemetry scenarios' sidecars recorded, and the checks that each scenario's
telemetry is what it claims.

Per sidecar, read outside the measured windows:
- Istio's request count: Envoy's own `envoy_istio_requests_total` (its admin
  `/stats/prometheus`), summed over the series of the scenario's path: at the client
  `reporter="source"` towards its service, at the server `reporter="destination"` for its
  service (probes and other callers are not counted: neither matches);
- spans the Zipkin tracer sent (`tracing.zipkin.spans_sent`; absent without a tracer);
- access log lines: the lines of Istio's text format whose authority is the scenario's
  service, in the pod's istio-proxy log (`$ISTHMUS_HOME/pods/NS/POD/istio-proxy.log`,
  the sidecar's stdout, what `isthmus logs POD -c istio-proxy` shows).

A scenario with metrics on must have counted every request it was sent at both sidecars
(between the generator's 2xx answers and its sends, warmups included); with metrics off
no `envoy_istio_requests_total` may grow; the same for access log lines, and spans must
be sent with the tracer on (1% sampling) and not without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from _dp_counters import Envoy, http_get

REQUESTS = "envoy_istio_requests_total"
SPANS = "tracing.zipkin.spans_sent"
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sidecar:
    envoy: Envoy
    log: Path  # the pod's istio-proxy log
    reporter: str  # "source" (client) or "destination" (server)


@dataclass(frozen=True)
class TelemetryClaim:
    """A scenario's two sidecars and which parts of telemetry they should record."""

    client: Sidecar
    server: Sidecar
    service: str  # destination_service_name, and the requests' authority
    pods: tuple[str, str]  # client, server pod names
    metrics: bool
    access_log: bool
    tracing: bool

    @property
    def sidecars(self) -> tuple[Sidecar, Sidecar]:
        return self.client, self.server


@dataclass(frozen=True)
class Reading:
    """One sidecar's telemetry counters at one moment."""

    requests: int  # envoy_istio_requests_total of the scenario's path
    series: int  # envoy_istio_requests_total series of any kind in this Envoy
    spans: int | None  # None: no Zipkin tracer in this Envoy
    log_lines: int


def requests_total(text: str, reporter: str, service: str) -> tuple[int, int]:
    """(requests of the path, series of any kind) from Prometheus text."""
    total = series = 0
    for line in text.splitlines():
        if not line.startswith(REQUESTS + "{"):
            continue
        series += 1
        labels_text, _, value = line.rpartition("} ")
        labels = dict(_LABEL.findall(labels_text))
        if labels.get("reporter") == reporter and labels.get("destination_service_name") == service:
            total += int(float(value))
    return total, series


def log_lines(path: Path, service: str) -> int:
    """Access log lines (Istio's text format) whose authority is `service`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    return data.count(f'"{service}" "'.encode())


def read(sidecar: Sidecar, service: str) -> Reading:
    envoy = sidecar.envoy
    prometheus = http_get(
        envoy.in_pod, f"http://127.0.0.1:{envoy.admin_port}/stats/prometheus?filter=requests_total"
    )
    requests, series = requests_total(prometheus, sidecar.reporter, service)
    stats = http_get(envoy.in_pod, f"http://127.0.0.1:{envoy.admin_port}/stats?filter=^tracing")
    spans = None
    for line in stats.splitlines():
        name, _, value = line.partition(": ")
        if name == SPANS:
            spans = int(value)
    return Reading(requests, series, spans, log_lines(sidecar.log, service))


Snapshot = dict[str, tuple[Reading, Reading]]  # scenario -> (client, server)


def snapshot(claims: dict[str, TelemetryClaim]) -> Snapshot:
    return {
        name: (read(c.client, c.service), read(c.server, c.service)) for name, c in claims.items()
    }


def logs_settled(
    claims: dict[str, TelemetryClaim], before: Snapshot, at_least: dict[str, int]
) -> bool:
    """Envoy writes its access log in batches (on a timer or a full buffer): whether every
    scenario with access logs on has at least `at_least` new lines at both sidecars."""
    for name, claim in claims.items():
        if not claim.access_log:
            continue
        for side, old in zip(claim.sidecars, before[name], strict=True):
            if log_lines(side.log, claim.service) - old.log_lines < at_least[name]:
                return False
    return True


@dataclass
class TelemetryCheck:
    """The growth of each counter over the fixed-rate phase, against the requests the
    generator sent (warmups included) and what the scenario claims."""

    scenario: str
    claim: TelemetryClaim
    sent: int
    ok: int
    requests: tuple[int, int]  # client, server
    series: tuple[int, int]  # series present at the end
    spans: tuple[int | None, int | None]  # None: no tracer
    log_lines: tuple[int, int]
    scrapes: int = 0  # of its sidecars' :15020 in its measured windows
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def _grew(before: int | None, after: int | None) -> int | None:
    if after is None:
        return None
    return after - (before or 0)


def check(
    scenario: str, claim: TelemetryClaim, before: Snapshot, after: Snapshot, sent: int, ok: int
) -> TelemetryCheck:
    (c0, s0), (c1, s1) = before[scenario], after[scenario]
    found = TelemetryCheck(
        scenario,
        claim,
        sent,
        ok,
        requests=(c1.requests - c0.requests, s1.requests - s0.requests),
        series=(c1.series, s1.series),
        spans=(_grew(c0.spans, c1.spans), _grew(s0.spans, s1.spans)),
        log_lines=(c1.log_lines - c0.log_lines, s1.log_lines - s0.log_lines),
    )
    for side, counted, lines, spans in zip(
        ("client", "server"), found.requests, found.log_lines, found.spans, strict=True
    ):
        if claim.metrics and not ok <= counted <= sent:
            found.problems.append(f"{side} {REQUESTS} grew by {counted}, sent {sent} ({ok} 2xx)")
        if not claim.metrics and counted:
            found.problems.append(f"metrics off but {side} {REQUESTS} grew by {counted}")
        if claim.access_log and not ok <= lines <= sent:
            found.problems.append(f"{side} access log grew by {lines} lines, sent {sent}")
        if not claim.access_log and lines:
            found.problems.append(f"access log off but {side} wrote {lines} lines")
        if claim.tracing and not spans:
            found.problems.append(f"tracer on but {side} sent no span")
        if not claim.tracing and spans:
            found.problems.append(f"tracer off but {side} sent {spans} spans")
    return found
