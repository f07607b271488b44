"""What the agent's merged metrics endpoint costs per scrape.

    .venv/bin/python bench/metrics_rewrite.py [--series 10,100,1000,5000] [--envoy]

1. The pure text work (agent.metrics_merge), per scrape: Envoy's Prometheus text with N
   istio label sets (Istio's 25 labels each; per set one `requests_total` counter and
   three histograms of Envoy's 20 buckets + sum + count, i.e. 67 lines) next to 12,000
   lines of ordinary Envoy stats (200 clusters). Timed: `istio_names` (the rename and
   the unknown values) and the whole merge (rename, the agent's families, a 100-family
   application text). Baseline in the same run: the same text with no istio series.
2. With `--envoy`, end to end against a real Envoy: a static Envoy whose stats access
   logger counts requests with Istio's labels (N distinct source workloads, so N series
   per metric), read through the agent's MetricsServer (admin fetch, rename, agent and
   no application metrics, HTTP) against reading Envoy's admin /stats/prometheus
   directly, in the same run: the extra milliseconds per scrape are the agent's.

Medians of `--repeat` runs. Loopback only; the Envoy is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from isthmus.agent.admin import EnvoyAdmin
from isthmus.agent.metrics import AgentFacts, MetricsServer, ScrapeCounters, agent_families
from isthmus.agent.metrics_merge import istio_names, merge, parse_families
from isthmus.api.telemetry import ISTIO_METRIC_LABELS
from isthmus.testing.envoy import EnvoyProcess
from isthmus.testing.ports import LOOPBACK, free_port

NEWLINE = b"\n"
BUCKETS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000]
BUCKETS += [300000, 600000, 1800000, 3600000]
LABELS = ISTIO_METRIC_LABELS


def _label_set(index: int) -> str:
    values = []
    for position, name in enumerate(LABELS):
        if name == "reporter":
            value = "destination"
        elif name == "response_flags":
            value = "-"
        elif name == "grpc_response_status":
            value = ""
        elif position % 5 == 0:
            value = ""  # unknown to Envoy
        else:
            value = f"{name.split('_')[0]}-{index % 97}-{index}"
        values.append(f'{name}="{value}"')
    return ",".join(values)


def envoy_text(series: int, clusters: int = 200) -> bytes:
    out = []
    for stat in range(60):  # Envoy keeps each family's samples together
        name = f"envoy_cluster_stat_{stat}"
        out.append(f"# TYPE {name} counter")
        out += [
            f'{name}{{envoy_cluster_name="outbound|8080||svc-{cluster}"}} {stat}'
            for cluster in range(clusters)
        ]
    if series:
        sets = [_label_set(i) for i in range(series)]
        out.append("# TYPE envoy_istio_requests_total counter")
        out += [f"envoy_istio_requests_total{{{s}}} {i + 1}" for i, s in enumerate(sets)]
        for family in ("request_duration_milliseconds", "request_bytes", "response_bytes"):
            name = f"envoy_istio_{family}"
            out.append(f"# TYPE {name} histogram")
            for s in sets:
                out += [f'{name}_bucket{{{s},le="{b}"}} 1' for b in BUCKETS]
                out += [f'{name}_bucket{{{s},le="+Inf"}} 1', f"{name}_sum{{{s}}} 3"]
                out.append(f"{name}_count{{{s}}} 1")
    return ("\n".join(out) + "\n").encode()


APP_TEXT = "".join(
    f"# HELP app_metric_{i} An app metric.\n# TYPE app_metric_{i} counter\n"
    f'app_metric_{i}{{path="/p{i}"}} {i}\n'
    for i in range(100)
)


def _median_ms(work: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def pure(sizes: list[int], repeat: int) -> None:
    facts = AgentFacts(ScrapeCounters(), None, 100.0, 0)
    print("pure text work per scrape (median ms)")
    print(
        f"{'istio sets':>10} {'lines':>8} {'bytes':>10} {'istio_names':>11} "
        f"{'scrape':>8} {'us/set':>7} {'x baseline':>10}"
    )

    def scrape(text: bytes) -> Callable[[], object]:
        # What the agent does per scrape: rename (as parts), its families, the app's.
        return lambda: merge(text, agent_families(facts), parse_families(APP_TEXT))

    base_text = envoy_text(0)
    baseline = _median_ms(scrape(base_text), repeat)
    print(
        f"{0:>10} {base_text.count(NEWLINE):>8} {len(base_text):>10} "
        f"{_median_ms(lambda: istio_names(base_text), repeat):>11.3f} {baseline:>8.3f} "
        f"{'-':>7} {1.0:>10.2f}"
    )
    for size in sizes:
        text = envoy_text(size)
        whole = _median_ms(lambda text=text: istio_names(text), repeat)  # type: ignore[misc]
        merged = _median_ms(scrape(text), repeat)
        print(
            f"{size:>10} {text.count(NEWLINE):>8} {len(text):>10} {whole:>11.3f} "
            f"{merged:>8.3f} {1000 * (merged - baseline) / size:>7.2f} {merged / baseline:>10.2f}"
        )


def _stats_logger() -> dict[str, Any]:
    tags = [{"name": name, "value_format": "-"} for name in LABELS]
    tags[1]["value_format"] = "%REQ(x-source-workload)%"
    tags[21]["value_format"] = "%RESPONSE_CODE%"
    tags[23]["value_format"] = "%RESPONSE_FLAGS%"
    tags[22]["value_format"] = "%REQ(x-not-sent)%"
    histogram = [
        {"stat": {"name": n, "tags": tags}, "unit": "Milliseconds", "value_format": "%DURATION%"}
        for n in ("request_duration_milliseconds", "request_bytes", "response_bytes")
    ]
    return {
        "name": "envoy.access_loggers.stats",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stats.v3.Config",
            "stat_prefix": "istio",
            "counters": [{"stat": {"name": "requests_total", "tags": tags}, "value_fixed": 1}],
            "histograms": histogram,
        },
    }


def _bootstrap(port: int) -> dict[str, Any]:
    manager = {
        "@type": "type.googleapis.com/"
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "inbound",
        "access_log": [_stats_logger()],
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 200}}],
                }
            ]
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    listener = {
        "name": "inbound",
        "address": {"socket_address": {"address": LOOPBACK, "port_value": port}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager,
                    }
                ]
            }
        ],
    }
    return {"static_resources": {"listeners": [listener]}}


async def _end_to_end(sizes: list[int], repeat: int, workdir: Path) -> None:
    print("\nend to end against a real Envoy (median ms per scrape)")
    print(
        f"{'istio series':>12} {'bytes':>9} {'envoy admin':>11} {'agent :15020':>12} {'extra':>7}"
    )
    listen = free_port()
    with EnvoyProcess(_bootstrap(listen), workdir, "bench-metrics") as envoy:
        envoy.wait_ready()
        admin_url = f"{envoy.admin_url}/stats/prometheus"
        admin = EnvoyAdmin(envoy.admin_address[1])
        metrics_port = free_port()
        server = MetricsServer(admin, LOOPBACK, metrics_port, workdir=workdir)
        await server.start()
        made = 0
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                for size in sizes:
                    for index in range(made, size):
                        await client.get(
                            f"http://{LOOPBACK}:{listen}/",
                            headers={"x-source-workload": f"workload-{index}"},
                        )
                    made = max(made, size)
                    agent_url = f"http://{LOOPBACK}:{metrics_port}/stats/prometheus"
                    timings = {}
                    for name, url in (("admin", admin_url), ("agent", agent_url)):
                        times = []
                        for _ in range(repeat):
                            started = time.perf_counter()
                            answer = await client.get(url)
                            times.append(time.perf_counter() - started)
                            assert answer.status_code == 200, answer.text[:200]
                        timings[name] = statistics.median(times) * 1000
                        if name == "agent":
                            assert "envoy_istio_" not in answer.text
                            size_bytes = len(answer.content)
                    print(
                        f"{size:>12} {size_bytes:>9} {timings['admin']:>11.2f} "
                        f"{timings['agent']:>12.2f} {timings['agent'] - timings['admin']:>7.2f}"
                    )
        finally:
            await server.stop()
            await admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", default="10,100,1000,5000")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--envoy", action="store_true", help="also end to end with real Envoy")
    parser.add_argument("--envoy-series", default="10,100,1000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.series.split(",") if s]
    pure(sizes, args.repeat)
    if args.envoy:
        workdir = Path(tempfile.mkdtemp(prefix="isthmus-bench-metrics-"))
        try:
            envoy_sizes = [int(s) for s in args.envoy_series.split(",") if s]
            asyncio.run(_end_to_end(envoy_sizes, args.repeat, workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
