"""`isthmus top [-n NS | -A] [--interval 5s] [--once]`: live traffic per service and per
edge, read from the sidecars themselves (no Prometheus needed).

Every sidecar's merged metrics (the agent's :15020, read from inside the pod's network
namespace, with Envoy's part narrowed to Istio's request metrics) are read twice an
interval apart; cli.top_stats turns the two reads into requests per second, the share of
5xx answers and p50/p99 latency, per destination service (as the servers' sidecars saw it)
and per edge source workload -> destination service (as the clients' sidecars saw it).
Envoy updates its histograms on its stats flush (every 5 s), so latencies need an interval
of at least that; rates and error shares are exact for any interval.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import click
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from isthmus.cli.context import CliContext, pass_cli
from isthmus.cli.errors import UserError
from isthmus.cli.pods import fetch_pods
from isthmus.cli.proxy_config import AdminError, pod_http_get
from isthmus.cli.top_stats import ENVOY_FILTER, Scrape, Traffic, edges, parse_samples, services
from isthmus.cli.waiting import parse_duration, timeout_option
from isthmus.cli.xcmd import require_root

METRICS_PORT = 15020
METRICS_PATH = "/stats/prometheus?filter=" + quote(ENVOY_FILTER, safe="")
READ_TIMEOUT = 5.0
DEFAULT_INTERVAL = "5s"
MIN_INTERVAL = 1.0
PIPE_WIDTH = 200


async def read_sidecar(netns: str) -> Scrape:
    """One read of a sidecar's merged metrics; `at` is the middle of the request."""
    started = time.monotonic()
    status, body = await pod_http_get(netns, METRICS_PORT, METRICS_PATH, READ_TIMEOUT)
    if status != 200:
        reason = body.decode(errors="replace").strip()[:200]
        raise AdminError(f"the agent's metrics answered {status}: {reason}")
    at = (started + time.monotonic()) / 2
    return Scrape(at, parse_samples(body.decode(errors="replace")))


async def read_all(pods: Sequence[dict[str, Any]]) -> dict[str, Scrape]:
    """Every pod's read, by pod key; a pod that does not answer is left out this time."""

    async def one(pod: dict[str, Any]) -> tuple[str, Scrape | None]:
        try:
            return _key(pod), await read_sidecar(pod["netns"])
        except (AdminError, OSError, TimeoutError):
            return _key(pod), None

    results = await asyncio.gather(*(one(p) for p in pods))
    return {key: scrape for key, scrape in results if scrape is not None}


def _key(pod: dict[str, Any]) -> str:
    return f"{pod['namespace']}/{pod['name']}"


def _rate(value: float) -> str:
    return f"{value:.1f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return ">max"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _row(traffic: Traffic) -> list[str]:
    return [
        _rate(traffic.rps),
        _percent(traffic.error_ratio),
        _ms(traffic.p50),
        _ms(traffic.p99),
    ]


def render(before: dict[str, Scrape], after: dict[str, Scrape], where: str, window: float) -> Group:
    """The two tables for the reads of one window."""
    pairs = [(before[k], after[k]) for k in sorted(before.keys() & after.keys())]
    heading = Text(
        f"isthmus top: {where}, {len(pairs)} sidecar(s), last {window:.1f}s", style="bold"
    )
    numbers = ("RPS", "5XX", "P50 MS", "P99 MS")
    by_service = Table(box=box.SIMPLE, title="per service (reporter=destination)")
    by_service.add_column("DESTINATION SERVICE", overflow="fold")
    for column in numbers:
        by_service.add_column(column, justify="right")
    for (service,), traffic in services(pairs).items():
        by_service.add_row(service, *_row(traffic))
    by_edge = Table(box=box.SIMPLE, title="per edge (reporter=source)")
    by_edge.add_column("SOURCE WORKLOAD", overflow="fold")
    by_edge.add_column("DESTINATION SERVICE", overflow="fold")
    for column in numbers:
        by_edge.add_column(column, justify="right")
    for (workload, namespace, service), traffic in edges(pairs).items():
        by_edge.add_row(f"{workload}.{namespace}", service, *_row(traffic))
    return Group(heading, by_service, by_edge)


def _sidecars(cli: CliContext, namespace: str | None) -> list[dict[str, Any]]:
    return [
        p
        for p in fetch_pods(cli)
        if p.get("sidecar")
        and p.get("netns")
        and p.get("phase") == "Running"
        and namespace in (None, p["namespace"])
    ]


@click.command("top")
@click.option("-n", "--namespace", help="Only the sidecars of this namespace (default: default).")
@click.option("-A", "--all-namespaces", is_flag=True, help="The sidecars of every namespace.")
@click.option(
    "--interval",
    default=DEFAULT_INTERVAL,
    show_default=True,
    help="Time between two reads (at least 1s); latencies need >= 5s (Envoy's stats flush).",
)
@click.option("--once", is_flag=True, help="Print one table after one interval and exit.")
@timeout_option
@pass_cli
def top_command(
    cli: CliContext, namespace: str | None, all_namespaces: bool, interval: str, once: bool
) -> None:
    """Live requests per second, 5xx share, p50 and p99 per service and per edge, read
    from the sidecars (as Istio's standard metrics; no Prometheus needed)."""
    if all_namespaces and namespace:
        raise UserError("use either -n/--namespace or -A/--all-namespaces, not both")
    try:
        seconds = parse_duration(interval)
    except ValueError as exc:
        raise UserError(f"--interval: {exc}") from exc
    if seconds < MIN_INTERVAL:
        raise UserError(f"--interval {interval} is shorter than {MIN_INTERVAL:.0f}s")
    wanted = None if all_namespaces else (namespace or "default")
    where = "all namespaces" if wanted is None else f"namespace {wanted}"
    pods = _sidecars(cli, wanted)
    if not pods:
        raise UserError(f"no running pods with a sidecar in {where}")
    require_root("top")
    console = Console()
    if not console.is_terminal:  # a script reads it: one line per row, however long
        console = Console(width=PIPE_WIDTH)
    before = asyncio.run(read_all(pods))
    if not before:
        raise UserError(f"no sidecar in {where} answered on :{METRICS_PORT}")
    if once:
        time.sleep(seconds)
        after = asyncio.run(read_all(pods))
        console.print(render(before, after, where, seconds))
        return
    try:
        with Live(Text(f"reading {len(pods)} sidecar(s)..."), console=console) as live:
            while True:
                started = time.monotonic()
                time.sleep(seconds)
                pods = _sidecars(cli, wanted) or pods
                after = asyncio.run(read_all(pods))
                live.update(render(before, after, where, time.monotonic() - started))
                before = after
    except KeyboardInterrupt:
        return
