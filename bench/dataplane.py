"""Data-plane overhead of isthmus, measured in one run through the real runtime.

Scenarios between the same kinds of pods of one mesh (`isthmus up`):

  direct      client pod -> server pod IP, no sidecars (`sidecar.istio.io/inject: "false"`)
  envoy pair  the same two pods, each with one Envoy started by the bench with a minimal
              static config: client -> 127.0.0.1:15001 (Envoy) -> server Envoy :15006 -> app
  isthmus     injected pods: client -> inventory-service:8080 (captured) -> client sidecar
              -> server sidecar -> app, under the seed's DestinationRule and VirtualService
  envoy pair, mTLS
              a second bare pair between the same pods whose hop is mutual TLS with the
              mesh's TLS settings (TLS 1.2-1.3, client certificate, SPIFFE checks, ALPN,
              SNI), certificates from the mesh's own CA code, read from files
  isthmus, mTLS off / PERMISSIVE / STRICT
              the same client sidecar -> a service with no DestinationRule or
              VirtualService, one per mTLS mode of its server workload (PeerAuthentication
              DISABLE, none, STRICT): the mesh's cost without the seed's policies
              (maxRequestsPerConnection: 10, retries, 95/5 split), with and without mTLS
  envoy pair, mTLS + XFCC (--pair-xfcc)
              the mTLS pair whose server also fills x-forwarded-client-cert for the app,
              the one per-request step the mesh's mTLS chains add
  isthmus, mTLS, telemetry on / off
              a client workload -> a service of its own (PERMISSIVE, no DestinationRule
              or VirtualService), one such pair of workloads each: the mesh's default
              telemetry (Istio's metrics, access logs, Zipkin tracer at 1%), and all of it
              off by a Telemetry selecting both workloads; with --telemetry-breakdown,
              the six other combinations (all parts but one, only one part)

The application is `dp serve` (C, 1 KB answers) and the load generator `dp load` (C, open
loop at a fixed rate, latency from the intended send time), run inside the client pod's
namespace. Phases: the generator's own ceiling (against `dp serve` on the client's
loopback), a fixed rate (default 1000 rps on 16 connections), then maximum throughput
(closed loop). Each phase is cut into rounds that visit every scenario in rotated order,
so a change in the machine's background load hits every scenario alike; latencies of all
rounds are merged before percentiles are taken. With --churn N a last phase at the fixed
rate makes every proxy open a new upstream connection every N requests (a
DestinationRule maxRequestsPerConnection on the mode services, the same on the bare
pairs' clusters), so TLS handshakes are part of the cost.

Each proxy's Envoy counters (requests, connections, TLS handshakes, resumed sessions) are
read per phase, and each scenario's mTLS mode is checked against them and against a
plaintext request from a pod without a sidecar (STRICT must refuse it). With --syscalls
the proxies' system calls per request are counted too (perf stat). The telemetry
scenarios are checked against Istio's request count in their sidecars' Envoys, the spans
their tracers sent and the access log lines in their istio-proxy logs. While measuring, a
Prometheus-like scraper in the pod without a sidecar reads every sidecar whose metrics are
on (the agent's :15020) every --scrape-interval seconds, so the agents' per-scrape work is
part of what is measured; the per-scrape CPU is also measured alone, without traffic.

CPU is utime+stime of the Envoy processes and the agents (found with `ip netns pids`), and
of isthmusd, over exactly the measured windows; each Envoy's and agent's idle CPU (no
traffic) and memory (VmRSS/VmHWM) are reported per process. Everything is bounded in
time (--timeout, SIGALRM) and `isthmus down` always runs at the end.

    .venv/bin/python bench/dataplane.py --rate 1000 --duration 20 --churn 10
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import _dp_counters as counters
import _dp_envoy as bare
import _dp_manifests as manifests
import _dp_proc as proc
import _dp_report as report
import _dp_scrape as scrape
import _dp_telemetry as telemetry
import _proc
from _dp_certs import TlsFiles, pair_certificates
from _dp_counters import Counted, Side
from _dp_mesh import BenchMesh
from _dp_native import LoadResult, LoadSpec, build, run_load, serve_argv
from _dp_stats import PhaseTotals, machine_busy_seconds
from _dp_syscalls import SyscallCount
from _dp_telemetry import Sidecar, TelemetryClaim

from isthmus.agent.envoy_process import envoy_binary
from isthmus.pilot.security.tls import outbound_sni

CEILING_PORT = 18090
SIDECAR_ADMIN = 15000
AGENT_METRICS = 15020  # the agent's merged metrics, what Prometheus scrapes
INBOUND = "listener.0.0.0.0_15006."  # the sidecar's virtualInbound (its stat prefix)
Pod = dict[str, Any]


@dataclass(frozen=True)
class PairPorts:
    """Listeners of a bare pair (client on its pod's 127.0.0.1, server on 0.0.0.0) and
    their admins (127.0.0.1 in each pod)."""

    client: int
    server: int
    client_admin: int
    server_admin: int


PLAIN_PAIR = PairPorts(bare.CLIENT_PORT, bare.SERVER_PORT, 15100, 15101)
MTLS_PAIR = PairPorts(15011, 15016, 15102, 15103)
CHURN_PLAIN_PAIR = PairPorts(15031, 15036, 15104, 15105)
CHURN_MTLS_PAIR = PairPorts(15041, 15046, 15106, 15107)
XFCC_PAIR = PairPorts(15051, 15056, 15108, 15109)
MODE_SCENARIOS = {
    manifests.MTLS_OFF: report.MTLS_OFF,
    manifests.PERMISSIVE: report.PERMISSIVE,
    manifests.STRICT: report.STRICT,
}
TELEMETRY_SCENARIOS = {
    manifests.TELEMETRY_ON: report.TEL_ON,
    manifests.TELEMETRY_OFF: report.TEL_OFF,
    **{path: report.TEL_ALL_BUT[next(iter(path.off))] for path in manifests.TELEMETRY_ALL_BUT},
    **{
        path: report.TEL_ONLY[next(iter(manifests.ALL_PARTS - path.off))]
        for path in manifests.TELEMETRY_ONLY
    },
}


class Timeout(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Timeout("the bench ran past --timeout")


@dataclass
class Scenario:
    """Where the generator sends and which processes' CPU is counted for it."""

    name: str
    client: Pod
    host: str
    port: int
    host_header: str
    groups: dict[str, Callable[[], list[int]]]  # CPU group -> pids (looked up per slice)
    counted: Counted | None = None  # its proxies' counters and claimed mTLS mode
    claim: TelemetryClaim | None = None  # what its sidecars' telemetry records


class CpuWindow:
    """CPU seconds of each group, and of the whole machine, between `open` and `close`."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self.before: dict[str, proc.Cpu] = {}
        self.busy_before = 0.0
        self.opened_at = 0.0  # wall clock, to place the scrapes
        self.closed_at = 0.0

    def open(self) -> None:
        self.opened_at = time.time()
        self.busy_before = machine_busy_seconds()
        self.before = {group: proc.total_cpu(pids) for group, pids in self.pids.items()}

    def close(self) -> tuple[dict[str, proc.Cpu], float]:
        busy = machine_busy_seconds() - self.busy_before
        self.closed_at = time.time()
        return {g: proc.total_cpu(p) - self.before[g] for g, p in self.pids.items()}, busy


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Data-plane overhead of isthmus, one run.")
    add = parser.add_argument
    add("--rate", type=float, default=1000, help="fixed rate, requests/s in total")
    add("--duration", type=float, default=20, help="measured seconds per scenario at --rate")
    add(
        "--max-duration",
        type=float,
        default=8,
        help="measured seconds per scenario at max (0: no maximum-throughput phase)",
    )
    add("--connections", type=int, default=16, help="the generator's keep-alive connections")
    add("--body", type=int, default=1024, help="response body bytes")
    add("--rounds", type=int, default=4, help="rounds per phase (scenarios rotate)")
    add("--warmup", type=float, default=1.0, help="unmeasured seconds before each slice")
    add("--idle-duration", type=float, default=5.0, help="seconds of idle CPU measurement")
    add("--ceiling-duration", type=float, default=3.0, help="0 skips the generator ceiling")
    add(
        "--churn",
        type=int,
        default=0,
        metavar="N",
        help="add a phase at --rate where every proxy opens a new upstream connection every "
        "N requests (0: no such phase)",
    )
    add("--churn-duration", type=float, default=12, help="measured seconds per scenario")
    add(
        "--pair-xfcc",
        action="store_true",
        help="add a scenario: the mTLS bare pair whose server also fills "
        "x-forwarded-client-cert for the app, as the mesh's mTLS chains do",
    )
    add(
        "--telemetry-breakdown",
        action="store_true",
        help="add the six other telemetry combinations (all but one part on, only one part "
        "on; parts: metrics, access log, tracer), each with its own client and server workload",
    )
    add(
        "--telemetry-only",
        action="store_true",
        help="measure only the bare mTLS pair(s), isthmus PERMISSIVE and the telemetry "
        "scenarios (e.g. with more --rounds for the breakdown); not with --churn",
    )
    add(
        "--scrape-interval",
        type=float,
        default=15.0,
        help="seconds between scrapes of each metrics-on sidecar's :15020 while measuring "
        "(Prometheus's default; 0: no scrapes)",
    )
    add(
        "--key-type",
        choices=["RSA", "ECDSA"],
        default="RSA",
        help="workload keys of the sidecars and the mTLS bare pair (RSA 2048, or ECDSA P-256)",
    )
    add("--timeout", type=float, default=1200, help="hard limit for the whole run, seconds")
    add("--wait-quiet", type=float, default=0, help="first wait up to this long for low load")
    add("--quiet-load", type=float, default=0.5, help="1-minute load average deemed low")
    add(
        "--nice",
        type=int,
        default=0,
        help="nice value for the pods, the bare pair and the generator during the fixed-rate "
        "phase (e.g. -10 keeps a busy machine's other work out of the latencies)",
    )
    add(
        "--syscalls",
        action="store_true",
        help="count the proxies' system calls per request (perf stat) in the fixed-rate and "
        "churn phases; perf's tracepoints cost the proxies some CPU, so read the CPU of such a "
        "run with care",
    )
    add("--json", type=Path, help="also write every number to this file")
    add("--keep-home", action="store_true", help="keep the mesh's home (logs) under /tmp")
    args = parser.parse_args(argv)
    if args.telemetry_only and args.churn:
        parser.error("--telemetry-only measures no churn phase")
    return args


def wait_quiet(limit: float, threshold: float) -> None:
    deadline = time.monotonic() + limit
    begin = time.monotonic()
    while time.monotonic() < deadline and os.getloadavg()[0] >= threshold:
        time.sleep(5)
    load = os.getloadavg()[0]
    quiet = "quiet" if load < threshold else "NOT quiet"
    waited = time.monotonic() - begin
    print(f"waited {waited:.0f} s for load < {threshold}: {quiet} ({load:.2f})", file=sys.stderr)


def processes(pods: Sequence[Pod], wanted: str) -> Callable[[], list[int]]:
    """A lookup of the pods' processes of one role ('envoy', 'agent', 'other' = the app)."""
    return lambda: [pid for p in pods for pid in proc.pids_by_role(p["netns"], wanted)]


def sidecar_concurrency(pod: Pod) -> int:
    for pid in proc.pids_by_role(pod["netns"], "envoy"):
        argv = proc.cmdline(pid)
        if "--concurrency" in argv:
            return int(argv[argv.index("--concurrency") + 1])
    raise RuntimeError(f"no sidecar Envoy with --concurrency in pod {pod['name']}")


class Bench:
    """The bench's pods, its bare Envoy pair and the generator runs against them."""

    def __init__(self, args: argparse.Namespace, binary: Path, mesh: BenchMesh) -> None:
        self.args = args
        self.binary = binary
        self.mesh = mesh
        self.workdir = mesh.home / "bench"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.envoys: list[bare.BareEnvoy] = []
        self.tls: tuple[TlsFiles, TlsFiles] | None = None  # the mTLS pair's client, server
        self.scraper: scrape.Scraper | None = None
        self.paths = manifests.telemetry_paths(args.telemetry_breakdown)

    def in_pod(self, pod: Pod) -> Callable[[Sequence[str]], list[str]]:
        return lambda argv: self.mesh.in_pod(pod, argv)

    def load(
        self,
        scenario: Scenario,
        rate: float,
        duration: float,
        warmup: float,
        on_measuring: Callable[[], None] = lambda: None,
    ) -> LoadResult:
        spec = LoadSpec(
            scenario.host,
            scenario.port,
            scenario.host_header,
            self.args.connections,
            rate,
            duration,
            warmup,
        )
        return run_load(self.binary, spec, self.in_pod(scenario.client), on_measuring, self.workdir)

    def probe(self, scenario: Scenario) -> bool:
        """One short burst end to end: every request answered 2xx."""
        result = self.load(scenario, 0, 0.3, 0)
        return result.ok > 0 and result.ok == result.count("sent")

    # --- setup -----------------------------------------------------------------------

    def start_pods(self) -> dict[str, Pod]:
        self.mesh.up()
        server = serve_argv(self.binary, manifests.APP_PORT, self.args.body)
        breakdown = self.args.telemetry_breakdown
        self.mesh.apply(manifests.manifests(server, self.args.key_type, breakdown))
        names = [
            manifests.DIRECT_SERVER,
            manifests.DIRECT_CLIENT,
            *manifests.MESH_SERVERS,
            manifests.MESH_CLIENT,
            *(s.deployment for s in manifests.MODE_SERVERS),
            *(name for path in self.paths for name in (path.client, path.server)),
        ]
        return self.mesh.wait_ready(names, timeout=120 + 10 * len(names))

    def make_certificates(self) -> None:
        directory = self.workdir / "tls"
        directory.mkdir(mode=0o700)
        accounts = (manifests.DIRECT_CLIENT, manifests.DIRECT_SERVER)
        self.tls = pair_certificates(directory, manifests.NAMESPACE, accounts, self.args.key_type)

    def start_pair(
        self,
        name: str,
        pods: dict[str, Pod],
        concurrency: int,
        ports: PairPorts,
        mtls: bool,
        max_requests: tuple[int, int] = (0, 0),
        xfcc: bool = False,
    ) -> tuple[bare.BareEnvoy, bare.BareEnvoy]:
        """A bare pair between the direct pods: (client, server). `max_requests` is per
        cluster: (client Envoy -> server Envoy, server Envoy -> app)."""
        server, client = pods[manifests.DIRECT_SERVER], pods[manifests.DIRECT_CLIENT]
        listener_tls = upstream_tls = None
        if mtls:
            assert self.tls is not None
            client_files, server_files = self.tls
            sni = outbound_sni(f"outbound|{manifests.APP_PORT}||{manifests.DIRECT_SERVER}")
            listener_tls = bare.downstream_tls(server_files)
            upstream_tls = bare.upstream_tls(client_files, sni, server_files.identity)
        server_config = bare.bootstrap(
            "0.0.0.0",
            ports.server,
            "127.0.0.1",
            manifests.APP_PORT,
            admin_port=ports.server_admin,
            listener_tls=listener_tls,
            max_requests=max_requests[1],
            xfcc=xfcc,
        )
        client_config = bare.bootstrap(
            "127.0.0.1",
            ports.client,
            server["ip"],
            ports.server,
            admin_port=ports.client_admin,
            upstream_tls=upstream_tls,
            max_requests=max_requests[0],
        )
        started = []
        for role, config, pod, admin in (
            ("server", server_config, server, ports.server_admin),
            ("client", client_config, client, ports.client_admin),
        ):
            envoy = bare.start(
                f"{name}-{role}",
                envoy_binary(),
                config,
                admin,
                concurrency,
                self.workdir,
                self.in_pod(pod),
            )
            self.envoys.append(envoy)
            started.append(envoy)
        return started[1], started[0]

    def admin(self, pod: Pod, port: int = SIDECAR_ADMIN) -> counters.Envoy:
        return counters.Envoy(f"{pod['netns']}:{port}", self.in_pod(pod), port)

    def pair_scenario(
        self,
        name: str,
        pods: dict[str, Pod],
        envoys: tuple[bare.BareEnvoy, bare.BareEnvoy],
        ports: PairPorts,
        mtls: bool,
    ) -> Scenario:
        d_server, d_client = pods[manifests.DIRECT_SERVER], pods[manifests.DIRECT_CLIENT]
        client_envoy, server_envoy = envoys
        counted = Counted(
            client=(Side(self.admin(d_client, ports.client_admin), "cluster.up."),),
            server=(
                Side(
                    self.admin(d_server, ports.server_admin),
                    "cluster.up.",
                    f"listener.0.0.0.0_{ports.server}.",
                ),
            ),
            mtls=mtls,
            plaintext_url=f"http://{d_server['ip']}:{ports.server}/",
            plaintext_answered=not mtls,
        )
        return Scenario(
            name,
            d_client,
            "127.0.0.1",
            ports.client,
            manifests.SERVICE,
            {
                report.CLIENT_PROXY: lambda: [client_envoy.pid],
                report.SERVER_PROXY: lambda: [server_envoy.pid],
                report.APP: processes([d_server], "other"),
            },
            counted,
        )

    def mesh_scenario(
        self,
        name: str,
        pods: dict[str, Pod],
        service: str,
        servers: list[Pod],
        subsets: Sequence[str],
        mode: str | None,
        client_name: str = manifests.MESH_CLIENT,
    ) -> Scenario:
        """The client sidecar -> `service`, served by `servers` under PeerAuthentication
        `mode` (None: no policy, PERMISSIVE)."""
        client = pods[client_name]
        port = manifests.APP_PORT
        host = f"{service}.{manifests.NAMESPACE}.svc.cluster.local"
        counted = Counted(
            client=tuple(
                Side(self.admin(client), f"cluster.outbound|{port}|{subset}|{host}.")
                for subset in subsets
            ),
            server=tuple(
                Side(self.admin(s), f"cluster.inbound|{port}||.", INBOUND) for s in servers
            ),
            mtls=mode != "DISABLE",
            plaintext_url=f"http://{servers[0]['ip']}:{port}/",
            plaintext_answered=mode != "STRICT",
        )
        groups = {
            report.CLIENT_PROXY: processes([client], "envoy"),
            report.SERVER_PROXY: processes(servers, "envoy"),
            report.AGENTS: processes([client, *servers], "agent"),
            report.APP: processes(servers, "other"),
        }
        return Scenario(name, client, service, port, service, groups, counted)

    def mode_scenarios(self, pods: dict[str, Pod]) -> list[Scenario]:
        return [
            self.mesh_scenario(
                MODE_SCENARIOS[s], pods, s.service, [pods[s.deployment]], [""], s.mode
            )
            for s in manifests.MODE_SERVERS
        ]

    def log_of(self, pod: Pod) -> Path:
        """The pod's istio-proxy log: the sidecar's stdout, its access log among it."""
        return (
            self.mesh.home / "pods" / str(pod["namespace"]) / str(pod["name"]) / "istio-proxy.log"
        )

    def telemetry_scenarios(self, pods: dict[str, Pod]) -> list[Scenario]:
        """Each telemetry path: its own client sidecar -> its own service (PERMISSIVE)."""
        out = []
        for path in self.paths:
            client, server = pods[path.client], pods[path.server]
            scenario = self.mesh_scenario(
                TELEMETRY_SCENARIOS[path], pods, path.service, [server], [""], None, path.client
            )
            scenario.claim = TelemetryClaim(
                client=Sidecar(self.admin(client), self.log_of(client), "source"),
                server=Sidecar(self.admin(server), self.log_of(server), "destination"),
                service=path.service,
                pods=(client["name"], server["name"]),
                metrics=path.records(manifests.METRICS),
                access_log=path.records(manifests.ACCESS_LOG),
                tracing=path.records(manifests.TRACING),
            )
            out.append(scenario)
        return out

    def scrape_targets(self, pods: dict[str, Pod]) -> dict[str, str]:
        """Every sidecar whose metrics are on: pod name -> its agent's merged metrics."""
        names = [
            manifests.MESH_CLIENT,
            *manifests.MESH_SERVERS,
            *(s.deployment for s in manifests.MODE_SERVERS),
            *(
                name
                for path in self.paths
                if path.records(manifests.METRICS)
                for name in (path.client, path.server)
            ),
        ]
        return {
            pods[n]["name"]: f"http://{pods[n]['ip']}:{AGENT_METRICS}/stats/prometheus"
            for n in names
        }

    def start_scraper(self, pods: dict[str, Pod], interval: float) -> list[str]:
        """The periodic scraper, in the pod without a sidecar; returns its targets."""
        targets = self.scrape_targets(pods)
        argv = scrape.script_argv(sys.executable, ["--interval", str(interval)], targets)
        self.scraper = scrape.Scraper(self.mesh.in_pod(pods[manifests.DIRECT_CLIENT], argv))
        self.scraper.start()
        return list(targets)

    def stop_scraper(self) -> list[scrape.Scrape]:
        scraper, self.scraper = self.scraper, None
        if scraper is None:
            return []
        scraper.stop()
        return scraper.records

    def scenarios(
        self,
        pods: dict[str, Pod],
        plain: tuple[bare.BareEnvoy, bare.BareEnvoy],
        mtls: tuple[bare.BareEnvoy, bare.BareEnvoy],
        xfcc: tuple[bare.BareEnvoy, bare.BareEnvoy] | None,
    ) -> list[Scenario]:
        d_server, d_client = pods[manifests.DIRECT_SERVER], pods[manifests.DIRECT_CLIENT]
        seed_servers = [pods[n] for n in manifests.MESH_SERVERS]
        extra = (
            []
            if xfcc is None
            else [self.pair_scenario(report.PAIR_XFCC, pods, xfcc, XFCC_PAIR, True)]
        )
        return [
            Scenario(
                report.DIRECT,
                d_client,
                d_server["ip"],
                manifests.APP_PORT,
                manifests.SERVICE,
                {report.APP: processes([d_server], "other")},
            ),
            self.pair_scenario(report.PAIR, pods, plain, PLAIN_PAIR, False),
            self.pair_scenario(report.PAIR_MTLS, pods, mtls, MTLS_PAIR, True),
            *extra,
            self.mesh_scenario(
                report.MESH, pods, manifests.SERVICE, seed_servers, ["v1", "v2"], None
            ),
            *self.mode_scenarios(pods),
            *self.telemetry_scenarios(pods),
        ]

    # --- measuring -------------------------------------------------------------------

    def ceiling(self, client: Pod) -> float:
        """The generator alone: max rps against `dp serve` on the client pod's loopback."""
        server = subprocess.Popen(
            self.mesh.in_pod(client, serve_argv(self.binary, CEILING_PORT, self.args.body)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            scenario = Scenario("ceiling", client, "127.0.0.1", CEILING_PORT, "ceiling", {})
            deadline = time.monotonic() + 10
            while not self.probe(scenario):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("dp serve for the generator ceiling did not start")
            result = self.load(scenario, 0, self.args.ceiling_duration, self.args.warmup)
            return len(result.latencies_ns) / result.measured_seconds
        finally:
            server.terminate()
            server.wait(timeout=5)

    def phase(
        self, scenarios: list[Scenario], rate: float, duration: float, syscalls: bool = False
    ) -> dict[str, PhaseTotals]:
        """Rounds over the scenarios; with `syscalls`, the proxies' system calls are
        counted in the measured windows too."""
        totals = {s.name: PhaseTotals() for s in scenarios}
        rounds = max(1, self.args.rounds)
        for r in range(rounds):
            shift = r % len(scenarios)
            for scenario in scenarios[shift:] + scenarios[:shift]:
                pids = {g: find() for g, find in scenario.groups.items()}
                daemon = self.mesh.daemon_pid()
                if daemon is not None:
                    pids[report.ISTHMUSD] = [daemon]
                window = CpuWindow(pids)
                counting: dict[str, SyscallCount] = {}

                def measuring(
                    window: CpuWindow = window, counting: dict[str, Any] = counting
                ) -> None:
                    window.open()
                    if syscalls:
                        for group in report.PROXIES:
                            if window.pids.get(group):
                                counting[group] = SyscallCount(window.pids[group])

                result = self.load(scenario, rate, duration / rounds, self.args.warmup, measuring)
                cpu, busy = window.close()
                totals[scenario.name].add(result, cpu, busy, (window.opened_at, window.closed_at))
                for group, count in counting.items():
                    totals[scenario.name].add_syscalls(group, *count.stop(), result)
        return totals


@dataclass(frozen=True)
class Watched:
    """A proxy-side process whose idle CPU and memory are reported."""

    scenario: str
    pod: str
    process: str
    pid: int


def watched_processes(
    mesh: BenchMesh,
    pods: dict[str, Pod],
    pairs: dict[str, tuple[bare.BareEnvoy, bare.BareEnvoy]],
    paths: Sequence[manifests.TelemetryPath],
) -> list[Watched]:
    """Every proxy-side process: the bare pairs, each sidecar's Envoy, agent and shim,
    isthmusd and the node runtime."""
    rows: list[Watched] = []
    for scenario, (client, server) in pairs.items():
        rows.append(Watched(scenario, pods[manifests.DIRECT_CLIENT]["name"], "envoy", client.pid))
        rows.append(Watched(scenario, pods[manifests.DIRECT_SERVER]["name"], "envoy", server.pid))
    sidecar_pods = [
        (report.MESH, manifests.MESH_CLIENT),
        *((report.MESH, name) for name in manifests.MESH_SERVERS),
        *((MODE_SCENARIOS[s], s.deployment) for s in manifests.MODE_SERVERS),
        *((TELEMETRY_SCENARIOS[p], n) for p in paths for n in (p.client, p.server)),
    ]
    for scenario, name in sidecar_pods:
        pod = pods[name]
        for wanted in ("envoy", "agent"):
            for pid in proc.pids_by_role(pod["netns"], wanted):
                rows.append(Watched(scenario, pod["name"], wanted, pid))
        shim = proc.shim_pid(f"{pod['namespace']}.{pod['name']}")
        if shim is not None:  # every pod has one, sidecar or not: the per-pod supervisor
            rows.append(Watched(scenario, pod["name"], "shim", shim))
    for name, control in (("isthmusd", mesh.daemon_pid()), ("node runtime", mesh.node_pid())):
        if control is not None:
            rows.append(Watched("control plane", "-", name, control))
    return rows


def idle_cpu(watched: list[Watched], seconds: float) -> dict[int, float]:
    """vCPU of each process over `seconds` without traffic (polling, probes, xDS)."""
    before = {w.pid: proc.cpu(w.pid).total for w in watched}
    time.sleep(seconds)
    return {w.pid: (proc.cpu(w.pid).total - before[w.pid]) / seconds for w in watched}


@contextlib.contextmanager
def niceness(value: int, pods: dict[str, Pod], envoys: list[bare.BareEnvoy]) -> Iterator[None]:
    """Run the block with every pod process, the bare pair and this process (so the
    generators it starts inherit it) at nice `value`; back to 0 afterwards."""
    if value == 0:
        yield
        return
    pids = [pid for p in pods.values() for pid in proc.netns_pids(p["netns"])]
    pids += [e.pid for e in envoys] + [os.getpid()]
    proc.renice(pids, value)
    try:
        yield
    finally:
        proc.renice(pids, 0)


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def mode_checks(
    bench: Bench, scenarios: list[Scenario], pods: dict[str, Pod]
) -> list[counters.ModeCheck]:
    """Each scenario's mTLS mode against its counters since its Envoys started and a
    plaintext request from the pod without a sidecar."""
    counted = [s.counted for s in scenarios if s.counted is not None]
    snap = counters.snapshot(counted)
    probe_from = bench.in_pod(pods[manifests.DIRECT_CLIENT])
    return [
        counters.check(s.name, s.counted, snap, probe_from)
        for s in scenarios
        if s.counted is not None
    ]


def counted_phase(
    bench: Bench, scenarios: list[Scenario], rate: float, duration: float, syscalls: bool
) -> tuple[dict[str, PhaseTotals], dict[str, counters.Counters]]:
    """A phase, and the counters of each scenario's proxies over it."""
    counted = [s.counted for s in scenarios if s.counted is not None]
    before = counters.snapshot(counted)
    totals = bench.phase(scenarios, rate, duration, syscalls)
    after = counters.snapshot(counted)
    deltas = {
        s.name: counters.delta(s.counted, before, after) for s in scenarios if s.counted is not None
    }
    return totals, deltas


def wait_churn(bench: Bench, pods: dict[str, Pod], max_requests: int, timeout: float) -> bool:
    """Until the client sidecar's clusters to the mode services open a new connection
    every `max_requests` requests; then whether the servers' inbound clusters (to the
    app) do too, as the seed's DestinationRule makes them (see BENCHMARKS.md)."""
    needle = f'"max_requests_per_connection": {max_requests}'
    host = "{}." + manifests.NAMESPACE + ".svc.cluster.local"
    wanted = {
        f"outbound|{manifests.APP_PORT}||{host.format(s.service)}" for s in manifests.MODE_SERVERS
    }

    def churning(pod: Pod, names: set[str]) -> set[str]:
        found = set()
        for config in bench.admin(pod).config_dump("dynamic_active_clusters"):
            cluster = config.get("cluster")
            name = cluster.get("name") if isinstance(cluster, dict) else None
            if name in names and needle in json.dumps(cluster):
                found.add(str(name))
        return found

    deadline = time.monotonic() + timeout
    while churning(pods[manifests.MESH_CLIENT], wanted) != wanted:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the churn DestinationRules did not reach the client in {timeout}s")
        time.sleep(0.5)
    inbound = {f"inbound|{manifests.APP_PORT}||"}
    return all(churning(pods[s.deployment], inbound) for s in manifests.MODE_SERVERS)


def churn(
    bench: Bench, args: argparse.Namespace, pods: dict[str, Pod], results: report.Results
) -> None:
    """The fixed rate again, with a new upstream connection every --churn requests on
    every hop between the proxies, so TLS handshakes are part of what is measured."""
    bench.mesh.apply(manifests.churn_rules(args.churn))
    inbound = wait_churn(bench, pods, args.churn, timeout=30)
    results.churn_inbound = inbound
    per_hop = (args.churn, args.churn if inbound else 0)
    concurrency = results.concurrency
    plain = bench.start_pair("churn-pair", pods, concurrency, CHURN_PLAIN_PAIR, False, per_hop)
    mtls = bench.start_pair("churn-mtls-pair", pods, concurrency, CHURN_MTLS_PAIR, True, per_hop)
    scenarios = [
        bench.pair_scenario(report.PAIR, pods, plain, CHURN_PLAIN_PAIR, False),
        bench.pair_scenario(report.PAIR_MTLS, pods, mtls, CHURN_MTLS_PAIR, True),
        *bench.mode_scenarios(pods),
    ]
    for scenario in scenarios:
        bare.wait_serving(functools.partial(bench.probe, scenario), bench.envoys, timeout=30)
    results.churn, results.tls_churn = counted_phase(
        bench, scenarios, args.rate, args.churn_duration, args.syscalls
    )


def scrape_costs(
    bench: Bench, pods: dict[str, Pod], idle: dict[int, float], count: int = 40
) -> list[report.ScrapeCost]:
    """CPU per scrape of the agent and Envoy of the telemetry on and off sidecars, without
    traffic: `count` scrapes 0.1 s apart from the pod without a sidecar, their CPU minus
    what they use idle over the same time."""
    rows = []
    for path in (manifests.TELEMETRY_ON, manifests.TELEMETRY_OFF):
        for name in (path.client, path.server):
            pod = pods[name]
            groups = {role: proc.pids_by_role(pod["netns"], role) for role in ("agent", "envoy")}
            url = f"http://{pod['ip']}:{AGENT_METRICS}/stats/prometheus"
            argv = scrape.script_argv(
                sys.executable, ["--count", str(count), "--gap", "0.1"], {pod["name"]: url}
            )
            before = {role: proc.total_cpu(pids) for role, pids in groups.items()}
            begin = time.monotonic()
            done = scrape.scrape_times(bench.in_pod(pods[manifests.DIRECT_CLIENT])(argv), 120)
            elapsed = time.monotonic() - begin
            ms = {
                role: 1000
                * (
                    (proc.total_cpu(pids) - before[role]).total
                    - elapsed * sum(idle.get(pid, 0.0) for pid in pids)
                )
                / max(1, len(done))
                for role, pids in groups.items()
            }
            ok = [d for d in done if d.ok]
            sizes = sorted(d.bytes for d in ok) or [0]
            seconds = sorted(d.seconds for d in ok) or [0.0]
            rows.append(
                report.ScrapeCost(
                    TELEMETRY_SCENARIOS[path],
                    pod["name"],
                    len(done),
                    len(done) - len(ok),
                    sizes[len(sizes) // 2],
                    seconds[len(seconds) // 2],
                    ms["agent"],
                    ms["envoy"],
                )
            )
    return rows


def telemetry_phase(
    scenarios: list[Scenario], run: Callable[[], dict[str, PhaseTotals]]
) -> tuple[dict[str, PhaseTotals], list[telemetry.TelemetryCheck]]:
    """`run` (the fixed-rate phase) between two readings of the telemetry scenarios'
    counters and logs; the second waits until Envoy has flushed its access logs (on a
    timer or a full buffer; at most 15 s)."""
    claims = {s.name: s.claim for s in scenarios if s.claim is not None}
    before = telemetry.snapshot(claims)
    totals = run()
    least = {name: totals[name].ok for name in claims}
    deadline = time.monotonic() + 15
    while not telemetry.logs_settled(claims, before, least) and time.monotonic() < deadline:
        time.sleep(0.5)
    after = telemetry.snapshot(claims)
    checks = [
        telemetry.check(name, claim, before, after, totals[name].sent, totals[name].ok)
        for name, claim in claims.items()
    ]
    return totals, checks


def count_scrapes(
    checks: list[telemetry.TelemetryCheck],
    totals: dict[str, PhaseTotals],
    scrapes: list[scrape.Scrape],
) -> None:
    """How many scrapes of each telemetry scenario's sidecars fell in its measured windows."""
    for found in checks:
        pods = set(found.claim.pods)
        window = totals[found.scenario]
        found.scrapes = sum(1 for x in scrapes if x.target in pods and window.within(x.started))


def measure(bench: Bench, args: argparse.Namespace, started: float) -> report.Results:
    pods = bench.start_pods()
    concurrency = sidecar_concurrency(pods[manifests.MESH_CLIENT])
    bench.make_certificates()
    plain = bench.start_pair("pair", pods, concurrency, PLAIN_PAIR, False)
    mtls = bench.start_pair("mtls-pair", pods, concurrency, MTLS_PAIR, True)
    xfcc = None
    if args.pair_xfcc:
        xfcc = bench.start_pair("xfcc-pair", pods, concurrency, XFCC_PAIR, True, xfcc=True)
    scenarios = bench.scenarios(pods, plain, mtls, xfcc)
    if args.telemetry_only:
        scenarios = [s for s in scenarios if s.name in report.TELEMETRY_ROWS]
    for scenario in scenarios:
        bare.wait_serving(functools.partial(bench.probe, scenario), bench.envoys, timeout=30)
    results = report.Results(setup_seconds=time.monotonic() - started, concurrency=concurrency)
    if args.ceiling_duration > 0:
        results.ceiling_rps = bench.ceiling(pods[manifests.DIRECT_CLIENT])
    pairs = {report.PAIR: plain, report.PAIR_MTLS: mtls}
    if xfcc is not None:
        pairs[report.PAIR_XFCC] = xfcc
    watched = watched_processes(bench.mesh, pods, pairs, bench.paths)
    results.idle_seconds = args.idle_duration
    idle = idle_cpu(watched, args.idle_duration)
    results.scrape_costs = scrape_costs(bench, pods, idle)
    if args.scrape_interval > 0:
        results.scrape_interval = args.scrape_interval
        results.scrape_targets = bench.start_scraper(pods, args.scrape_interval)
    results.load_during.append(os.getloadavg())
    deltas: dict[str, counters.Counters] = {}

    def fixed() -> dict[str, PhaseTotals]:
        totals, found = counted_phase(bench, scenarios, args.rate, args.duration, args.syscalls)
        deltas.update(found)
        return totals

    with niceness(args.nice, pods, bench.envoys):
        results.fixed, results.telemetry_checks = telemetry_phase(scenarios, fixed)
    results.tls_fixed = deltas
    results.checks = mode_checks(bench, scenarios, pods)
    results.processes = [
        report.ProcessRow(w.scenario, w.pod, w.process, idle[w.pid], _proc.memory(w.pid))
        for w in watched
    ]
    if args.max_duration > 0:
        results.maximum = bench.phase(scenarios, 0, args.max_duration)
    if args.churn > 0:
        churn(bench, args, pods, results)
    results.load_during.append(os.getloadavg())
    results.scrapes = bench.stop_scraper()
    count_scrapes(results.telemetry_checks, results.fixed, results.scrapes)
    return results


def run(args: argparse.Namespace) -> report.Results:
    binary = build()
    mesh = BenchMesh(Path(tempfile.mkdtemp(prefix="idp-", dir="/tmp")), "dp" + secrets.token_hex(3))
    bench = Bench(args, binary, mesh)
    started = time.monotonic()
    load_before = os.getloadavg()
    try:
        with time_limit(args.timeout):
            results = measure(bench, args, started)
    finally:
        bench.stop_scraper()
        for envoy in bench.envoys:
            envoy.stop()
        mesh.down()
        if not args.keep_home:
            mesh.remove_home()
    results.load_before = load_before
    results.run_seconds = time.monotonic() - started
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("the data-plane bench needs root (network namespaces, iptables)", file=sys.stderr)
        return 1
    if args.wait_quiet > 0:
        wait_quiet(args.wait_quiet, args.quiet_load)
    try:
        results = run(args)
    except (Timeout, RuntimeError, subprocess.SubprocessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    command = " ".join([".venv/bin/python", "bench/dataplane.py", *(argv or sys.argv[1:])])
    print(report.render(args, command, results, report.machine_facts(envoy_binary())))
    if args.json:
        args.json.write_text(json.dumps(report.to_json(command, results), indent=2) + "\n")
    wrong = [(c.scenario, c.problems) for c in results.checks if c.problems]
    wrong += [(c.scenario, c.problems) for c in results.telemetry_checks if c.problems]
    for scenario, problems in wrong:
        print(f"error: {scenario}: {'; '.join(problems)}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
