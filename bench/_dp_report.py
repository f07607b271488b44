"""The data-plane bench's report: Markdown tables (they paste into BENCHMARKS.md as
printed), the machine facts the numbers depend on, and a JSON form of every number."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _dp_counters import Counters, ModeCheck
from _dp_scrape import Scrape
from _dp_stats import PhaseTotals
from _dp_syscalls import EVENTS
from _dp_telemetry import TelemetryCheck
from _proc import Memory

DIRECT, PAIR, PAIR_MTLS, MESH = "direct", "envoy pair", "envoy pair, mTLS", "isthmus"
PAIR_XFCC = "envoy pair, mTLS + XFCC"  # --pair-xfcc: the server also fills the header
# No DestinationRule or VirtualService; the server workload's PeerAuthentication mode.
MTLS_OFF, PERMISSIVE, STRICT = "isthmus, mTLS off", "isthmus, PERMISSIVE", "isthmus, STRICT"
# Each mTLS scenario's plaintext twin: what TLS adds is the difference between the two.
TWINS = {PAIR_MTLS: PAIR, PAIR_XFCC: PAIR, PERMISSIVE: MTLS_OFF, STRICT: MTLS_OFF}
MTLS_ROWS = (PAIR, PAIR_MTLS, PAIR_XFCC, MTLS_OFF, PERMISSIVE, STRICT)
# Telemetry (PERMISSIVE, a client and a server workload of their own each): the mesh's
# defaults (metrics, access logs, Zipkin tracer at 1%), all three off by a Telemetry, and
# (--telemetry-breakdown) one of them off each.
TEL_ON, TEL_OFF = "isthmus, mTLS, telemetry on", "isthmus, mTLS, telemetry off"
TEL_ALL_BUT = {  # part -> the scenario with every part on but that one
    "metrics": "isthmus, mTLS, telemetry on but metrics",
    "access log": "isthmus, mTLS, telemetry on but access log",
    "tracer": "isthmus, mTLS, telemetry on but tracer",
}
TEL_ONLY = {  # part -> the scenario with only that part on
    "metrics": "isthmus, mTLS, only metrics",
    "access log": "isthmus, mTLS, only access log",
    "tracer": "isthmus, mTLS, only tracer",
}
TELEMETRY_ROWS = (
    PAIR_MTLS,
    PAIR_XFCC,
    PERMISSIVE,
    TEL_ON,
    *TEL_ALL_BUT.values(),
    *TEL_ONLY.values(),
    TEL_OFF,
)
CLIENT_PROXY = "client proxy"
SERVER_PROXY = "server proxy"
AGENTS = "agents"
APP = "app"
ISTHMUSD = "isthmusd"  # the control plane, with the embedded Zipkin collector
PROXIES = [CLIENT_PROXY, SERVER_PROXY]
WITH_AGENTS = [CLIENT_PROXY, SERVER_PROXY, AGENTS]


@dataclass(frozen=True)
class ProcessRow:
    """One proxy-side process: its idle CPU (no traffic) and its memory after the
    fixed-rate phase."""

    scenario: str
    pod: str
    process: str
    idle_vcpu: float
    memory: Memory


@dataclass(frozen=True)
class ScrapeCost:
    """CPU of one sidecar's agent and Envoy per scrape of its :15020, measured without
    traffic: their CPU over `count` scrapes minus their idle CPU over the same time."""

    scenario: str
    pod: str
    count: int
    failed: int
    bytes: int  # median body
    seconds: float  # median, as the scraper saw it
    agent_ms: float  # CPU per scrape
    envoy_ms: float


LoadAverage = tuple[float, float, float]


@dataclass
class Results:
    setup_seconds: float
    concurrency: int
    ceiling_rps: float | None = None
    fixed: dict[str, PhaseTotals] = field(default_factory=dict)
    maximum: dict[str, PhaseTotals] = field(default_factory=dict)
    processes: list[ProcessRow] = field(default_factory=list)
    idle_seconds: float = 0.0
    tls_fixed: dict[str, Counters] = field(default_factory=dict)  # scenario -> over the phase
    checks: list[ModeCheck] = field(default_factory=list)
    churn: dict[str, PhaseTotals] = field(default_factory=dict)
    tls_churn: dict[str, Counters] = field(default_factory=dict)
    churn_inbound: bool = False  # the DestinationRule also churns server sidecar -> app
    telemetry_checks: list[TelemetryCheck] = field(default_factory=list)
    scrape_interval: float = 0.0
    scrapes: list[Scrape] = field(default_factory=list)  # while measuring
    scrape_targets: list[str] = field(default_factory=list)
    scrape_costs: list[ScrapeCost] = field(default_factory=list)
    load_before: LoadAverage = (0.0, 0.0, 0.0)
    load_during: list[LoadAverage] = field(default_factory=list)  # at its start and end
    run_seconds: float = 0.0


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def _f(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _ratio(a: float, b: float) -> str:
    return "n/a" if not b or math.isnan(a) or math.isnan(b) else f"{a / b:.2f}x"


def fixed_rate(totals: dict[str, PhaseTotals]) -> str:
    rows = []
    for name, t in totals.items():
        proxied = CLIENT_PROXY in t.cpu
        rows.append(
            [
                name,
                f"{t.rps:.0f}",
                _f(t.percentile_ms(0.50)),
                _f(t.percentile_ms(0.90)),
                _f(t.percentile_ms(0.99)),
                str(t.sent - t.ok + t.missed),
                _f(t.vcpu(CLIENT_PROXY)) if proxied else "-",
                _f(t.vcpu(SERVER_PROXY)) if proxied else "-",
                _f(t.vcpu_per_krps(PROXIES)) if proxied else "-",
                f"{t.system_share(PROXIES):.0%}" if proxied else "-",
                _f(t.vcpu(AGENTS)) if AGENTS in t.cpu else "-",
                _f(t.vcpu(ISTHMUSD)) if ISTHMUSD in t.cpu else "-",
                _f(t.vcpu(APP)),
                _f(t.vcpu_loadgen),
                _f(t.vcpu_others, 2),
                f"{t.late_share:.1%}",
                f"{t.late_max_ms:.1f}",
            ]
        )
    header = [
        "scenario",
        "rps",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "failed",
        "client proxy vCPU",
        "server proxy vCPU",
        "proxy vCPU/1000 rps",
        "of it kernel",
        "agents vCPU",
        "isthmusd vCPU",
        "app vCPU",
        "loadgen vCPU",
        "others vCPU",
        "loadgen woke >1 ms late",
        "latest wake ms",
    ]
    return table(header, rows)


def overhead(totals: dict[str, PhaseTotals], direct: str, baseline: str) -> str:
    """Latency each proxied scenario adds over `direct`, and every number against the bare
    pair (`baseline`): total latency and proxy CPU per 1000 rps."""
    d, b = totals[direct], totals[baseline]
    quantiles = (0.50, 0.90, 0.99)
    rows = []
    for name, t in totals.items():
        if name == direct:
            continue
        rows.append(
            [
                name,
                *(f"{t.percentile_ms(q) - d.percentile_ms(q):+.3f}" for q in quantiles),
                *(_ratio(t.percentile_ms(q), b.percentile_ms(q)) for q in quantiles),
                _f(t.vcpu_per_krps(PROXIES)),
                _ratio(t.vcpu_per_krps(PROXIES), b.vcpu_per_krps(PROXIES)),
            ]
        )
    header = [
        "scenario",
        "p50 added ms",
        "p90 added ms",
        "p99 added ms",
        f"p50 vs {baseline}",
        f"p90 vs {baseline}",
        f"p99 vs {baseline}",
        "proxy vCPU/1000 rps",
        f"vs {baseline}",
    ]
    return table(header, rows)


def max_throughput(totals: dict[str, PhaseTotals], baseline: str) -> str:
    rows = []
    base = totals[baseline].rps
    for name, t in totals.items():
        proxied = CLIENT_PROXY in t.cpu
        rows.append(
            [
                name,
                f"{t.rps:.0f}",
                _ratio(t.rps, base),
                _f(t.percentile_ms(0.50)),
                _f(t.percentile_ms(0.99)),
                str(t.sent - t.ok),
                _f(t.vcpu(CLIENT_PROXY) + t.vcpu(SERVER_PROXY), 2) if proxied else "-",
                _f(t.vcpu_per_krps(PROXIES)) if proxied else "-",
                f"{t.system_share(PROXIES):.0%}" if proxied else "-",
                _f(t.vcpu(APP), 2),
                _f(t.vcpu_loadgen, 2),
                _f(t.vcpu_others, 2),
            ]
        )
    header = [
        "scenario",
        "max rps",
        f"vs {baseline}",
        "p50 ms",
        "p99 ms",
        "failed",
        "proxies vCPU",
        "proxy vCPU/1000 rps",
        "of it kernel",
        "app vCPU",
        "loadgen vCPU",
        "others vCPU",
    ]
    return table(header, rows)


def mtls_cost(totals: dict[str, PhaseTotals]) -> str:
    """The mTLS scenarios against the bare pair with the same TLS settings, and what TLS
    adds to each over its plaintext twin (same proxies, mTLS off)."""
    base = totals.get(PAIR_MTLS)
    quantiles = (0.50, 0.90, 0.99)
    rows = []
    for name in MTLS_ROWS:
        t = totals.get(name)
        if t is None or base is None:
            continue
        twin = totals.get(TWINS.get(name, ""))
        cpu = t.vcpu_per_krps(PROXIES)
        rows.append(
            [
                name,
                *(_f(t.percentile_ms(q)) for q in quantiles),
                _f(cpu),
                *(_ratio(t.percentile_ms(q), base.percentile_ms(q)) for q in quantiles),
                _ratio(cpu, base.vcpu_per_krps(PROXIES)),
                f"{t.percentile_ms(0.5) - twin.percentile_ms(0.5):+.3f}" if twin else "-",
                f"{cpu - twin.vcpu_per_krps(PROXIES):+.3f}" if twin else "-",
                _ratio(cpu, twin.vcpu_per_krps(PROXIES)) if twin else "-",
            ]
        )
    header = [
        "scenario",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "proxy vCPU/1000 rps",
        f"p50 vs {PAIR_MTLS}",
        f"p90 vs {PAIR_MTLS}",
        f"p99 vs {PAIR_MTLS}",
        f"CPU vs {PAIR_MTLS}",
        "TLS adds p50 ms",
        "TLS adds vCPU/1000 rps",
        "CPU vs mTLS off twin",
    ]
    return table(header, rows)


def telemetry_baseline(totals: dict[str, PhaseTotals]) -> str:
    """The bare pair closest to the mesh's mTLS chains: with XFCC when it ran."""
    return PAIR_XFCC if PAIR_XFCC in totals else PAIR_MTLS


def telemetry_cost(totals: dict[str, PhaseTotals]) -> str:
    """The telemetry scenarios with their agents' CPU included, against the bare mTLS
    pair and against telemetry off (same mTLS mode, pods of their own)."""
    base_name = telemetry_baseline(totals)
    base, off = totals.get(base_name), totals.get(TEL_OFF)
    quantiles = (0.50, 0.90, 0.99)
    rows = []
    for name in TELEMETRY_ROWS:
        t = totals.get(name)
        if t is None or base is None:
            continue
        full = t.vcpu_per_krps(WITH_AGENTS)
        off_full = off.vcpu_per_krps(WITH_AGENTS) if off else math.nan
        compare = off is not None and name not in (PAIR_MTLS, PAIR_XFCC, TEL_OFF)
        rows.append(
            [
                name,
                *(_f(t.percentile_ms(q)) for q in quantiles),
                _f(t.vcpu_per_krps(PROXIES)),
                _f(t.vcpu_per_krps([AGENTS])) if AGENTS in t.cpu else "-",
                _f(full),
                _ratio(t.percentile_ms(0.9), base.percentile_ms(0.9)),
                _ratio(full, base.vcpu_per_krps(WITH_AGENTS)),
                _ratio(full, off_full) if compare else "-",
                *(
                    f"{t.percentile_ms(q) - off.percentile_ms(q):+.3f}" if compare and off else "-"
                    for q in (0.5, 0.9)
                ),
                f"{full - off_full:+.3f}" if compare else "-",
            ]
        )
    header = [
        "scenario",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "proxy vCPU/1000 rps",
        "agents vCPU/1000 rps",
        "proxy+agents vCPU/1000 rps",
        f"p90 vs {base_name}",
        f"CPU vs {base_name}",
        "CPU vs telemetry off",
        "adds p50 ms",
        "adds p90 ms",
        "adds vCPU/1000 rps",
    ]
    return table(header, rows)


def scrape_share(costs: Sequence[ScrapeCost], scenario: str, interval: float) -> float:
    """vCPU the scenario's sidecars spend on scrapes every `interval` seconds, from the
    per-scrape cost measured without traffic."""
    if not interval:
        return 0.0
    per_round = sum(c.agent_ms + c.envoy_ms for c in costs if c.scenario == scenario) / 1000
    return per_round / interval


def telemetry_parts(
    totals: dict[str, PhaseTotals], costs: Sequence[ScrapeCost], interval: float
) -> str:
    """--telemetry-breakdown: what each part costs alone (only it on, minus telemetry off)
    and last (telemetry on, minus all but it); the difference between the whole and the
    parts alone is what they cost together beyond their sum; the agents' scrapes from their
    per-scrape cost. proxy+agents vCPU per 1000 rps and p90."""
    on, off = totals.get(TEL_ON), totals.get(TEL_OFF)
    if on is None or off is None:
        return ""

    def cpu(t: PhaseTotals) -> float:
        return t.vcpu_per_krps(WITH_AGENTS)

    def p90(t: PhaseTotals) -> float:
        return t.percentile_ms(0.9)

    total, total_p90 = cpu(on) - cpu(off), p90(on) - p90(off)
    rows = []
    alone_sum = alone_p90 = 0.0
    for part in TEL_ALL_BUT:
        only, but = totals.get(TEL_ONLY[part]), totals.get(TEL_ALL_BUT[part])
        if only is None and but is None:
            continue
        cells = [part]
        if only is not None:
            alone_sum += cpu(only) - cpu(off)
            alone_p90 += p90(only) - p90(off)
            cells += [f"{cpu(only) - cpu(off):+.3f}", f"{p90(only) - p90(off):+.3f}"]
        else:
            cells += ["-", "-"]
        if but is not None:
            cells += [f"{cpu(on) - cpu(but):+.3f}", f"{p90(on) - p90(but):+.3f}"]
        else:
            cells += ["-", "-"]
        rows.append(cells)
    if all(name in totals for name in TEL_ONLY.values()):
        rows.append(
            [
                "together beyond the sum of each alone",
                f"{total - alone_sum:+.3f}",
                f"{total_p90 - alone_p90:+.3f}",
                "-",
                "-",
            ]
        )
    if interval and on.rps:
        scrapes = scrape_share(costs, TEL_ON, interval) / (on.rps / 1000)
        rows.append(
            [
                f"of it: agent scrapes every {interval:g} s (per-scrape cost without traffic)",
                f"{scrapes:+.3f}",
                "-",
                "-",
                "-",
            ]
        )
    rows.append(
        ["all of it (telemetry on minus off)", f"{total:+.3f}", f"{total_p90:+.3f}", "-", "-"]
    )
    header = [
        "part",
        "alone: vCPU/1000 rps",
        "alone: p90 ms",
        "last: vCPU/1000 rps",
        "last: p90 ms",
    ]
    return table(header, rows)


def telemetry_checks(checks: Sequence[TelemetryCheck]) -> str:
    def pair(values: tuple[int | None, int | None]) -> str:
        return " / ".join("none" if v is None else str(v) for v in values)

    rows = [
        [
            c.scenario,
            ", ".join(
                part
                for part, on in (
                    ("metrics", c.claim.metrics),
                    ("access log", c.claim.access_log),
                    ("tracer", c.claim.tracing),
                )
                if on
            )
            or "nothing",
            f"{c.sent} ({c.ok} 2xx)",
            pair(c.requests),
            pair(c.series),
            pair(c.log_lines),
            pair(c.spans),
            str(c.scrapes),
            "ok" if c.passed else "WRONG: " + "; ".join(c.problems),
        ]
        for c in checks
    ]
    header = [
        "scenario",
        "claims",
        "sent by the generator",
        "istio_requests_total grew, client / server",
        "series at the end",
        "access log lines",
        "spans sent",
        "scrapes in its windows",
        "check",
    ]
    return table(header, rows)


def scrape_costs(costs: Sequence[ScrapeCost]) -> str:
    return table(
        [
            "scenario",
            "pod",
            "scrapes",
            "failed",
            "body bytes",
            "scrape ms",
            "agent CPU ms/scrape",
            "Envoy CPU ms/scrape",
        ],
        [
            [
                c.scenario,
                c.pod,
                str(c.count),
                str(c.failed),
                str(c.bytes),
                f"{c.seconds * 1000:.1f}",
                f"{c.agent_ms:.1f}",
                f"{c.envoy_ms:.1f}",
            ]
            for c in costs
        ],
    )


def scrapes_summary(r: Results) -> str:
    if not r.scrapes:
        return "no scrapes while measuring"
    failed = [s for s in r.scrapes if not s.ok]
    sizes = sorted(s.bytes for s in r.scrapes if s.ok) or [0]
    times = sorted(s.seconds for s in r.scrapes if s.ok) or [0.0]
    return (
        f"{len(r.scrapes)} scrapes of {len(r.scrape_targets)} sidecars every "
        f"{r.scrape_interval:g} s while measuring, {len(failed)} failed"
        + (f" ({', '.join(sorted({s.status for s in failed}))})" if failed else "")
        + f"; median body {sizes[len(sizes) // 2]} bytes, "
        f"median {times[len(times) // 2] * 1000:.1f} ms"
    )


def tls_counters(deltas: dict[str, Counters]) -> str:
    """Requests, connections and TLS handshakes on each scenario's hop between the
    proxies, from the proxies' own counters over the phase (warmups included)."""
    rows = []
    for name, c in deltas.items():
        per_k = 1000 * c["client handshakes"] / c["requests"] if c["requests"] else math.nan
        rows.append(
            [
                name,
                str(c["requests"]),
                str(c["connections"]),
                str(c["closed at max requests"]),
                str(c["client handshakes"]),
                str(c["client resumed"]),
                str(c["server handshakes"]),
                str(c["server resumed"]),
                _f(per_k, 1),
                str(c["app connections"]),
                str(c["retries"]),
            ]
        )
    header = [
        "scenario",
        "requests",
        "upstream connections",
        "closed at max requests",
        "client handshakes",
        "of them resumed",
        "server handshakes",
        "of them resumed",
        "handshakes/1000 requests",
        "server -> app connections",
        "retries",
    ]
    return table(header, rows)


def syscall_table(totals: dict[str, PhaseTotals]) -> str:
    """--syscalls: each proxy's system calls per request, by kind."""
    names = list(EVENTS)
    rows = []
    for name, t in totals.items():
        for group in PROXIES:
            if group in t.syscalls:
                rows.append(
                    [name, group, *(_f(t.syscalls_per_request(group, n), 2) for n in names)]
                )
    return table(["scenario", "proxy", *(f"{n}/request" for n in names)], rows)


def mode_checks(checks: Sequence[ModeCheck]) -> str:
    rows = [
        [
            c.scenario,
            "mTLS" if c.mtls else "plaintext",
            str(c.since_start["connections"]),
            str(c.since_start["client handshakes"]),
            str(c.since_start["server handshakes"]),
            str(c.since_start["server TLS errors"]),
            "answered" if c.plaintext_expected else "refused",
            c.plaintext_result,
            "ok" if c.ok else "WRONG: " + "; ".join(c.problems),
        ]
        for c in checks
    ]
    header = [
        "scenario",
        "claims",
        "connections",
        "client handshakes",
        "server handshakes",
        "server TLS errors",
        "plaintext from outside: expected",
        "got",
        "check",
    ]
    return table(header, rows)


def processes(rows: Sequence[ProcessRow]) -> str:
    return table(
        ["scenario", "pod", "process", "idle vCPU", "VmRSS MiB", "VmHWM MiB"],
        [
            [
                r.scenario,
                r.pod,
                r.process,
                f"{r.idle_vcpu:.4f}",
                f"{r.memory.rss_mib:.1f}",
                f"{r.memory.hwm_mib:.1f}",
            ]
            for r in rows
        ],
    )


def _load(values: Sequence[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def machine_facts(envoy: str) -> dict[str, str]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    version = subprocess.run([envoy, "--version"], capture_output=True, text=True, timeout=30)
    return {
        "cpus": str(os.cpu_count()),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "envoy": version.stdout.strip().rsplit(" ", 1)[-1].split("/")[1],
    }


def telemetry_section(r: Results, totals: dict[str, PhaseTotals], with_checks: bool) -> list[str]:
    if TEL_ON not in totals:
        return []
    lines = [
        f"Telemetry: agents' CPU included, against {telemetry_baseline(totals)} and against "
        'telemetry off ("adds": telemetry on minus off):',
        "",
        telemetry_cost(totals),
        "",
    ]
    parts = telemetry_parts(totals, r.scrape_costs, r.scrape_interval)
    if parts:
        lines += [
            "What each part adds, agents included: alone (only it on, minus telemetry off) "
            "and last (telemetry on, minus all but it):",
            "",
            parts,
            "",
        ]
    if not with_checks:
        return lines
    return [
        *lines,
        "Telemetry checks over the fixed-rate phase (warmups included): client / server "
        "sidecar; access log lines are those of the scenario's authority in the pod's "
        "istio-proxy log:",
        "",
        telemetry_checks(r.telemetry_checks),
        "",
        scrapes_summary(r) + ". Per-scrape cost without traffic:",
        "",
        scrape_costs(r.scrape_costs),
        "",
    ]


def render(args: argparse.Namespace, command: str, r: Results, facts: dict[str, str]) -> str:
    during = r.load_during or [r.load_before]
    lines = [
        f"command: {command}",
        "machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()),
        f"load average (1/5/15 min): before setup {_load(r.load_before)}; "
        f"measuring from {_load(during[0])} to {_load(during[-1])}",
        f"setup {r.setup_seconds:.1f} s, whole run {r.run_seconds:.1f} s; every proxy runs "
        f"Envoy --concurrency {r.concurrency} (the sidecar's)",
    ]
    if r.ceiling_rps is not None:
        lines.append(
            f"generator ceiling: {r.ceiling_rps:.0f} rps ({args.connections} connections, "
            "closed loop against dp serve on the client pod's loopback)"
        )
    lines += [
        "",
        f"### Fixed rate: {args.rate:.0f} rps, {args.connections} connections, "
        f"{args.body}-byte responses, {args.duration:g} s per scenario in {args.rounds} rounds"
        + (f", measured processes at nice {args.nice}" if args.nice else ""),
        "",
        fixed_rate(r.fixed),
        "",
        *([overhead(r.fixed, DIRECT, PAIR), ""] if DIRECT in r.fixed and PAIR in r.fixed else []),
        "mTLS: against the bare pair with the mesh's TLS settings, and what TLS adds over "
        "the plaintext twin (envoy pair; isthmus, mTLS off):",
        "",
        mtls_cost(r.fixed),
        "",
        *telemetry_section(r, r.fixed, with_checks=True),
        "The hop between the proxies over the fixed-rate phase (the proxies' own counters, "
        "warmups included):",
        "",
        tls_counters(r.tls_fixed),
        "",
        *(
            [
                "System calls per request of each proxy (perf stat, measured windows):",
                "",
                syscall_table(r.fixed),
                "",
            ]
            if args.syscalls
            else []
        ),
        "Mode checks (counters since each Envoy started; a plain HTTP GET from the pod "
        "without a sidecar to the server proxy):",
        "",
        mode_checks(r.checks),
        "",
    ]
    if r.maximum:
        lines += [
            f"### Maximum throughput: closed loop, {args.connections} connections, "
            f"{args.max_duration:g} s per scenario in {args.rounds} rounds",
            "",
            *([max_throughput(r.maximum, DIRECT), ""] if DIRECT in r.maximum else []),
            *telemetry_section(r, r.maximum, with_checks=False),
        ]
    if r.churn:
        inbound = (
            "and server proxy -> app (as the DestinationRule does to the server sidecar's "
            "inbound cluster)"
            if r.churn_inbound
            else "only (the DestinationRule left the server sidecar's inbound cluster alone)"
        )
        lines += [
            f"### Connection churn: {args.rate:.0f} rps, a new upstream connection every "
            f"{args.churn} requests, {args.churn_duration:g} s per scenario in {args.rounds} "
            "rounds",
            "",
            f"maxRequestsPerConnection {args.churn} on client proxy -> server proxy {inbound}; "
            "the bare pairs' clusters the same.",
            "",
            fixed_rate(r.churn),
            "",
            mtls_cost(r.churn),
            "",
            tls_counters(r.tls_churn),
            "",
            *([syscall_table(r.churn), ""] if args.syscalls else []),
        ]
    lines += [
        f"### Processes: idle CPU (over {r.idle_seconds:g} s without traffic, before the "
        "fixed-rate phase) and memory (after it)",
        "",
        processes(r.processes),
    ]
    return "\n".join(lines)


def _phase_json(totals: dict[str, PhaseTotals]) -> dict[str, Any]:
    return {
        name: {
            "rps": t.rps,
            "p50_ms": t.percentile_ms(0.5),
            "p90_ms": t.percentile_ms(0.9),
            "p99_ms": t.percentile_ms(0.99),
            "sent": t.sent,
            "ok": t.ok,
            "missed": t.missed,
            "connects": t.connects,
            "seconds": t.seconds,
            "vcpu": {g: t.vcpu(g) for g in t.cpu},
            "kernel_share": {g: t.system_share([g]) for g in t.cpu},
            "loadgen_vcpu": t.vcpu_loadgen,
            "others_vcpu": t.vcpu_others,
            "loadgen_late_over_1ms_share": t.late_share,
            "loadgen_latest_wake_ms": t.late_max_ms,
            "proxy_vcpu_per_1000_rps": t.vcpu_per_krps(PROXIES),
            "proxy_and_agents_vcpu_per_1000_rps": t.vcpu_per_krps(WITH_AGENTS),
            "windows": t.windows,
        }
        for name, t in totals.items()
    }


def to_json(command: str, r: Results) -> dict[str, Any]:
    return {
        "command": command,
        "setup_seconds": r.setup_seconds,
        "run_seconds": r.run_seconds,
        "envoy_concurrency": r.concurrency,
        "generator_ceiling_rps": r.ceiling_rps,
        "load_average_before": r.load_before,
        "load_average_during": r.load_during,
        "fixed": _phase_json(r.fixed),
        "max": _phase_json(r.maximum),
        "processes": [
            {
                "scenario": p.scenario,
                "pod": p.pod,
                "process": p.process,
                "idle_vcpu": p.idle_vcpu,
                "rss_mib": p.memory.rss_mib,
                "hwm_mib": p.memory.hwm_mib,
            }
            for p in r.processes
        ],
        "proxy_counters_fixed": r.tls_fixed,
        "mode_checks": [
            {
                "scenario": c.scenario,
                "mtls": c.mtls,
                "since_start": c.since_start,
                "plaintext_expected_answered": c.plaintext_expected,
                "plaintext_result": c.plaintext_result,
                "problems": c.problems,
            }
            for c in r.checks
        ],
        "telemetry_checks": [
            {
                "scenario": c.scenario,
                "metrics": c.claim.metrics,
                "access_log": c.claim.access_log,
                "tracer": c.claim.tracing,
                "sent": c.sent,
                "ok": c.ok,
                "istio_requests_total_grew": c.requests,
                "series_at_end": c.series,
                "access_log_lines": c.log_lines,
                "spans_sent": c.spans,
                "scrapes_in_windows": c.scrapes,
                "problems": c.problems,
            }
            for c in r.telemetry_checks
        ],
        "scrape_interval": r.scrape_interval,
        "scrape_targets": r.scrape_targets,
        "scrapes": [
            {
                "target": x.target,
                "started": x.started,
                "seconds": x.seconds,
                "bytes": x.bytes,
                "status": x.status,
            }
            for x in r.scrapes
        ],
        "scrape_costs": [dataclasses.asdict(c) for c in r.scrape_costs],
        "churn": _phase_json(r.churn),
        "proxy_counters_churn": r.tls_churn,
        "churn_inbound": r.churn_inbound,
    }
