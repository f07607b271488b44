"""The tour's observability act: the seed's section 7 on the running mesh.

Early in the tour a Telemetry in the root namespace makes every sidecar sample every
request for tracing (Istio's default is 1%). At the end, order-service calls
inventory-service and the act shows what the sidecars recorded with no telemetry code in
the apps: Istio's standard metrics per edge and destination version (the canary's own
numbers, seed section 4), read from order-service's sidecar and computed with `isthmus
top`'s arithmetic; one request's trace as a tree (`isthmus traces ID`), a client and a
server span per hop; that request's access-log lines at both sidecars, joined by its
x-request-id. Last, the seed's mitigation for sidecar memory and log volume (section 8,
"accessLogFile: /dev/null for non-critical namespaces") done per workload as Istio does
it, with a Telemetry: search-service's sidecar stops logging, the others go on.

Envoy writes its access logs out every --file-flush-interval-msec (read from the sidecar's
admin API): the act reads a request's lines that long after it, and applies the
Telemetry first so that the wait overlaps the rest. Requests from search-service's pod
arrive at its sidecar on new connections, which a changed listener serves at once.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from isthmus.cli.top_stats import (
    DURATION_BUCKETS,
    ENVOY_FILTER,
    REQUESTS,
    Scrape,
    Traffic,
    by_labels,
    increase,
    parse_samples,
)
from isthmus.cli.traces import span_table
from isthmus.demo.driver import ENVOY_ADMIN, DemoError, MeshDriver
from isthmus.demo.manifests import NAMESPACE

ROOT_NAMESPACE = "istio-system"  # `isthmus up`'s root namespace (--root-namespace)
SAMPLE_EVERYTHING = f"""
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: mesh-default, namespace: {ROOT_NAMESPACE}}}
spec:
  tracing:
  - randomSamplingPercentage: 100
"""
QUIET = "search-service"  # the demo's non-critical workload
QUIET_TELEMETRY = f"{QUIET}-no-access-log"
NO_ACCESS_LOG = f"""
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: {QUIET_TELEMETRY}, namespace: {NAMESPACE}}}
spec:
  selector:
    matchLabels: {{app: {QUIET}}}
  accessLogging:
  - providers: [{{name: envoy}}]
    disabled: true
"""
INVENTORY = "http://inventory-service:8080/items"
ORDERS = "http://order-service:8080/orders"
LOAD_SECONDS = 5
PLAIN = ("--count", "150", "--rate", "30", "--concurrency", "4")
BETA = ("--count", "15", "--rate", "3", "--concurrency", "1", "--header", "x-beta-user:true")
QUIET_REQUESTS = 10
METRICS_URL = "http://127.0.0.1:15020/stats/prometheus?filter=" + quote(ENVOY_FILTER, safe="")
# The agent's merged metrics, read inside the pod; the last line is when (wall clock).
READ_METRICS = (
    "import sys,time,urllib.request;t=time.time();"
    "print(urllib.request.urlopen(sys.argv[1],timeout=5).read().decode());"
    "print((t+time.time())/2)"
)
SERVER_INFO = (
    "import json,urllib.request;"
    f"info=json.load(urllib.request.urlopen('{ENVOY_ADMIN}/server_info',timeout=5));"
    "print(info['command_line_options']['file_flush_interval'])"
)
EDGE = ("source_workload", "destination_service_name", "destination_version")
HEADER = ("SOURCE WORKLOAD", "DESTINATION", "VERSION", "REQUESTS", "RPS", "5XX", "P50 MS", "P99 MS")
ACCESS_LINE = re.compile(r'^\[[^\]]+\] "')  # Istio's text format: [START_TIME] "METHOD ...


class ObservabilityAct:
    def __init__(
        self,
        driver: MeshDriver,
        pods: Callable[[str], dict[str, Any]],
        say: Callable[[str], None],
    ) -> None:
        self.driver = driver
        self.pod = pods
        self.say = say
        self.summary: dict[str, Any] = {}
        self.nonce = secrets.token_hex(3)  # marks this run's requests in the access logs

    # --- early in the tour: trace everything ---------------------------------------------

    def sample_everything(self) -> None:
        self.driver.apply(SAMPLE_EVERYTHING, "telemetry-sampling")
        self.summary["sampling_percent"] = 100
        self.say(
            f"• tracing: Telemetry {ROOT_NAMESPACE}/mesh-default (telemetry.istio.io/v1, "
            "tracing: randomSamplingPercentage 100) makes every sidecar sample every request "
            f"from here on; Istio's default is 1% ({self.driver.scratch}/telemetry-sampling.yaml)"
        )

    # --- at the end: what the sidecars recorded -------------------------------------------

    def run(self) -> dict[str, Any]:
        order, search = self.pod("order-service"), self.pod(QUIET)
        # Envoy writes access logs out every --file-flush-interval-msec (10 s unless set):
        # what it logged is read that long after the request, without waiting idle for it.
        flush = self._flush_interval(order)
        quiet = self.quiet_traffic(search)
        answer = self._fetch(order, ORDERS)  # the request the trace and the logs follow
        traced_at = time.monotonic()
        before = self._read_metrics(order)
        bound = ("--duration", str(LOAD_SECONDS))
        running = {
            name: self.driver.exec_background(order, self.driver.load_argv([INVENTORY], *args))
            for name, args in (("plain", (*PLAIN, *bound)), ("beta", (*BETA, *bound)))
        }
        sent = {name: self.driver.finish(run, LOAD_SECONDS + 60) for name, run in running.items()}
        self.metrics(order, before, sent)
        self.trace(answer)
        _sleep_until(traced_at + flush + 0.5)
        self.access_logs(order, answer)
        _sleep_until(quiet["sent_at"] + flush + 0.5)
        self.quiet_report(quiet, order, search, flush)
        return self.summary

    def _fetch(self, pod: dict[str, Any], url: str) -> dict[str, Any]:
        out = self.driver.exec(pod, [sys.executable, "-m", "isthmus.demo.fetch", url])
        answer = dict(json.loads(out.strip().splitlines()[-1]))
        if answer["status"] != 200 or not isinstance(answer["body"], dict):
            raise DemoError(f"GET {url} from {pod['name']} answered {answer}")
        return dict(answer["body"])

    def _flush_interval(self, pod: dict[str, Any]) -> float:
        """How often the pod's Envoy writes its access log out (--file-flush-interval-msec)."""
        out = self.driver.exec(pod, [sys.executable, "-c", SERVER_INFO]).strip()
        return float(out.removesuffix("s"))

    def _read_metrics(self, pod: dict[str, Any]) -> Scrape:
        out = self.driver.exec(pod, [sys.executable, "-c", READ_METRICS, METRICS_URL])
        text, _, at = out.rstrip().rpartition("\n")
        return Scrape(float(at), parse_samples(text))

    # --- Istio's standard metrics per edge and version ------------------------------------

    def metrics(
        self, order: dict[str, Any], before: Scrape, sent: Mapping[str, Mapping[str, Any]]
    ) -> None:
        after = self._read_metrics(order)  # counters are live: the rates are the load's
        # Envoy adds latencies to its histograms at its stats flush (every 5 s): read again
        # until every request of the window is in them, for p50/p99 over all of them.
        flushed, deadline = after, time.monotonic() + 7
        while not _histograms_caught_up(before, flushed) and time.monotonic() < deadline:
            time.sleep(1)
            flushed = self._read_metrics(order)
        window = after.at - before.at
        rates = _inventory(by_labels([(before, after)], "source", EDGE))
        latencies = _inventory(by_labels([(before, flushed)], "source", EDGE))
        generated = _by_version(sent["plain"]["versions"], sent["beta"]["versions"])
        rows = [list(HEADER)]
        edges: dict[str, dict[str, Any]] = {}
        for version, traffic in sorted(rates.items()):
            timing = latencies.get(version)
            edge = {
                "requests": round(traffic.rps * window),
                "rps": round(traffic.rps, 1),
                "error_percent": _percent(traffic),
                "p50_ms": None if timing is None or timing.p50 is None else round(timing.p50, 1),
                "p99_ms": None if timing is None or timing.p99 is None else round(timing.p99, 1),
            }
            edges[version] = edge
            rows.append(
                [
                    "order-service",
                    "inventory-service",
                    version,
                    str(edge["requests"]),
                    f"{traffic.rps:.1f}",
                    "-" if edge["error_percent"] is None else f"{edge['error_percent']:.1f}%",
                    _ms(edge["p50_ms"]),
                    _ms(edge["p99_ms"]),
                ]
            )
        self.say(
            f"• Istio's standard metrics at order-service's sidecar (reporter=source; its "
            f":15020 read twice, {window:.1f} s apart, and `isthmus top`'s arithmetic) for "
            f"{LOAD_SECONDS} s of requests to inventory-service, some as beta users (pinned to "
            "v2), per destination_version as a canary analysis watches them:"
        )
        for line in _columns(rows):
            self.say(f"    {line}")
        self.say(
            "  the load generator counted "
            + ", ".join(f"{v} {n}" for v, n in sorted(generated.items()))
            + " answers; p50/p99 from Envoy's histograms (updated at its stats flush, every "
            "5 s) as Prometheus' histogram_quantile reads them. Live: `isthmus top -n production`"
        )
        self.summary["metrics"] = {
            "window_seconds": round(window, 2),
            "edges": edges,
            "generated": generated,
        }

    # --- one request's trace ----------------------------------------------------------------

    def trace(self, answer: Mapping[str, Any]) -> None:
        trace_id = str(answer.get("trace_id") or "")
        spans: list[dict[str, Any]] = []
        deadline = time.monotonic() + 15
        while trace_id:
            with contextlib.suppress(DemoError):  # not reported yet: `traces` says not found
                spans = list(json.loads(self.driver.cli("traces", trace_id, "-o", "json")))
            if _complete(spans) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        services = sorted({str(s.get("localEndpoint", {}).get("serviceName")) for s in spans})
        self.summary["trace"] = {
            "trace_id": trace_id,
            "spans": len(spans),
            "services": services,
            "kinds": sorted(
                f"{s.get('localEndpoint', {}).get('serviceName')} {s.get('kind')}" for s in spans
            ),
        }
        if not spans:
            self.say(
                f"• the request to follow was not traced (trace id {trace_id or 'none'}): is "
                f"{ROOT_NAMESPACE} this mesh's root namespace?"
            )
            return
        self.say(
            f"• one request, order-service's pod -> order-service -> inventory-service, as a "
            f"trace (`isthmus traces {trace_id}`): a CLIENT span at the caller's sidecar and a "
            "SERVER span at the callee's per hop; the apps only pass the B3 headers on"
        )
        for line in span_table(spans).splitlines():
            self.say(f"    {line}")

    # --- that request's access-log lines --------------------------------------------------

    def access_logs(self, order: dict[str, Any], answer: Mapping[str, Any]) -> None:
        request_id = str(answer.get("request_id") or "")
        upstream = answer.get("upstream")
        inventory = str(upstream.get("pod", "")) if isinstance(upstream, dict) else ""
        names = [order["name"], inventory]
        lines: dict[str, list[str]] = {}
        deadline = time.monotonic() + 5
        while True:
            lines = {
                name: [line for line in self._proxy_log(name) if request_id in line]
                for name in names
            }
            if all(lines.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.summary["access_log"] = {
            "request_id": request_id,
            "lines": {name: len(found) for name, found in lines.items()},
        }
        self.say(
            f"• its access-log lines at both sidecars, joined by its x-request-id {request_id} "
            f"(`isthmus logs POD -n {NAMESPACE} -c istio-proxy`):"
        )
        for name, found in lines.items():
            self.say(f"    {name}:")
            for line in found:
                self.say(f"      {line}")

    def _proxy_log(self, pod: str) -> list[str]:
        return self.driver.cli("logs", pod, "-n", NAMESPACE, "-c", "istio-proxy").splitlines()

    # --- the seed's mitigation: no access log for a non-critical workload -------------------

    def quiet_traffic(self, search: dict[str, Any]) -> dict[str, Any]:
        """Requests from search-service's pod before and after its access log is turned off;
        their log lines are read at the end, once Envoy has written them out."""
        versions = self.driver.proxy_versions()
        with contextlib.suppress(DemoError):  # an earlier run's: not there, nothing to do
            self.driver.cli("delete", "telemetry", QUIET_TELEMETRY, "-n", NAMESPACE)
            self._wait_acked(search, versions)
        self._send_quiet(search, "before")
        versions = self.driver.proxy_versions()
        started = time.monotonic()
        self.driver.apply(NO_ACCESS_LOG, "telemetry-no-access-log")
        self._wait_acked(search, versions)
        acked, acked_ms = time.time(), round((time.monotonic() - started) * 1000)
        self._send_quiet(search, "after")
        return {"acked": acked, "acked_ms": acked_ms, "sent_at": time.monotonic()}

    def _send_quiet(self, search: dict[str, Any], phase: str) -> None:
        url = f"http://order-service:8080/status/200?demo={self.nonce}-{phase}"
        result = self.driver.load(
            search, [url], "--count", str(QUIET_REQUESTS), "--concurrency", "2", "--duration", "30"
        )
        if result["statuses"] != {"200": QUIET_REQUESTS}:
            raise DemoError(f"{QUIET} -> order-service: {result['statuses']}")

    def quiet_report(
        self, quiet: Mapping[str, Any], order: dict[str, Any], search: dict[str, Any], flush: float
    ) -> None:
        logs = {
            "order-service": self._proxy_log(order["name"]),
            QUIET: self._proxy_log(search["name"]),
        }
        counts = {
            phase: {
                workload: sum(f"demo={self.nonce}-{phase}" in line for line in lines)
                for workload, lines in logs.items()
            }
            for phase in ("before", "after")
        }
        since = _utc(quiet["acked"])  # lines start with their request's start time
        grown = sum(1 for line in logs[QUIET] if ACCESS_LINE.match(line) and line[1:25] >= since)
        self.summary["quiet"] = {
            "workload": QUIET,
            "telemetry": f"{NAMESPACE}/{QUIET_TELEMETRY}",
            "requests": QUIET_REQUESTS,
            **counts,
            "lines_since": grown,
        }
        self.say(
            "• the seed's mitigation for sidecar memory and log volume (\"accessLogFile: "
            '/dev/null for non-critical namespaces"), per workload as Istio does it: Telemetry '
            f"{NAMESPACE}/{QUIET_TELEMETRY} (accessLogging: envoy, disabled: true), applied at "
            f"this act's start; {QUIET}'s sidecar had ACKed it {quiet['acked_ms']} ms after "
            f"`isthmus apply` started ({self.driver.scratch}/telemetry-no-access-log.yaml)"
        )
        before, after = counts["before"], counts["after"]
        self.say(
            f"  {QUIET_REQUESTS} requests {QUIET} -> order-service before it, {QUIET_REQUESTS} "
            f"after it; access-log lines at {QUIET}'s sidecar: {before[QUIET]}, then "
            f"{after[QUIET]} ({grown} lines of any request since); at order-service's: "
            f"{before['order-service']}, then {after['order-service']} (read once Envoy had "
            f"written them out: it does so every {flush:g} s)"
        )

    def _wait_acked(self, pod: dict[str, Any], before: Mapping[str, tuple[Any, ...]]) -> None:
        """Until the pod's sidecar got a new configuration and ACKed it."""
        node = f"~{pod['name']}.{pod['namespace']}~"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = self.driver.proxy_versions()
            mine = [n for n in now if node in n]
            changed = [n for n in mine if now[n] != before.get(n)]
            pending = any(p for n in mine for _, _, p in now[n])
            if changed and not pending:
                return
            time.sleep(0.05)
        raise DemoError(f"{pod['name']}'s sidecar did not ACK the Telemetry within 10s")


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def _utc(seconds: float) -> str:
    """A moment as access logs print START_TIME: 2026-01-02T03:04:05.678Z."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _inventory(traffic: Mapping[tuple[str, ...], Traffic]) -> dict[str, Traffic]:
    """The order-service -> inventory-service edges, by destination version."""
    return {
        version: t
        for (source, service, version), t in traffic.items()
        if source == "order-service" and service == "inventory-service"
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _percent(traffic: Traffic) -> float | None:
    return None if traffic.error_ratio is None else round(100 * traffic.error_ratio, 1)


def _histograms_caught_up(before: Scrape, after: Scrape) -> bool:
    """Whether the latency histograms hold as many observations as requests were counted
    (on order-service's edges to inventory-service) between the two reads."""
    requests = observed = 0.0
    for (name, pairs), grown in increase(before, after).items():
        labels = dict(pairs)
        if labels.get("reporter") != "source":
            continue
        if labels.get("destination_service_name") != "inventory-service":
            continue
        if name == REQUESTS:
            requests += grown
        elif name == DURATION_BUCKETS and labels.get("le") == "+Inf":
            observed += grown
    return observed >= requests


def _complete(spans: Sequence[Mapping[str, Any]]) -> bool:
    """Two hops, each with its client and its server span."""
    kinds = [s.get("kind") for s in spans]
    return kinds.count("CLIENT") >= 2 and kinds.count("SERVER") >= 2


def _by_version(*counts: Mapping[str, int]) -> dict[str, int]:
    """Answers per version, from the load generator's counts per "service/version"."""
    total: dict[str, int] = {}
    for count in counts:
        for key, value in count.items():
            version = key.rpartition("/")[2]
            total[version] = total.get(version, 0) + value
    return total


def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
