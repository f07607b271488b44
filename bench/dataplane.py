"""Data-plane overhead of isthmus, measured in one run through the real runtime.

Scenarios between the same kinds of pods of one mesh (`isthmus up`):

  direct      client pod -> server pod IP, no sidecars (`sidecar.istio.io/inject: "false"`)
  envoy pair  the same two pods, each with one Envoy started by the bench with a minimal
              static config: client -> 127.0.0.1:15001 (Envoy) -> server Envoy :15006 -> app
  isthmus     injected pods: client -> inventory-service:8080 (captured) -> client sidecar
              -> server sidecar -> app, under the seed's DestinationRule and VirtualService
  isthmus, no DR/VS
              the same client sidecar -> plain-service, which has no policies: the mesh's
              cost without the seed's (maxRequestsPerConnection: 10, retries, 95/5 split)

The application is `dp serve` (C, 1 KB answers) and the load generator `dp load` (C, open
loop at a fixed rate, latency from the intended send time), run inside the client pod's
namespace. Phases: the generator's own ceiling (against `dp serve` on the client's
loopback), a fixed rate (default 1000 rps on 16 connections), then maximum throughput
(closed loop). Each phase is cut into rounds that visit every scenario in rotated order,
so a change in the machine's background load hits every scenario alike; latencies of all
rounds are merged before percentiles are taken.

CPU is utime+stime of the Envoy processes (found with `ip netns pids`) over exactly the
measured windows; each Envoy's and agent's idle CPU (no traffic) and memory (VmRSS/VmHWM)
are reported per process. Everything is bounded in time (--timeout, SIGALRM) and
`isthmus down` always runs at the end.

    .venv/bin/python bench/dataplane.py --rate 1000 --duration 20
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

import _dp_envoy as bare
import _dp_manifests as manifests
import _dp_proc as proc
import _dp_report as report
import _proc
from _dp_mesh import BenchMesh
from _dp_native import LoadResult, LoadSpec, build, run_load, serve_argv
from _dp_stats import PhaseTotals, machine_busy_seconds

from isthmus.agent.envoy_process import envoy_binary

CEILING_PORT = 18090
# Client sidecar counters worth printing: requests, connections opened (and why closed),
# retries, TLS handshakes.
COUNTERS = (
    ".upstream_rq_total",
    ".upstream_cx_total",
    ".upstream_cx_max_requests",
    ".upstream_rq_retry",
    ".ssl.handshake",
)
Pod = dict[str, Any]


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


class CpuWindow:
    """CPU seconds of each group, and of the whole machine, between `open` and `close`."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self.before: dict[str, proc.Cpu] = {}
        self.busy_before = 0.0

    def open(self) -> None:
        self.busy_before = machine_busy_seconds()
        self.before = {group: proc.total_cpu(pids) for group, pids in self.pids.items()}

    def close(self) -> tuple[dict[str, proc.Cpu], float]:
        busy = machine_busy_seconds() - self.busy_before
        return {g: proc.total_cpu(p) - self.before[g] for g, p in self.pids.items()}, busy


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Data-plane overhead of isthmus, one run.")
    add = parser.add_argument
    add("--rate", type=float, default=1000, help="fixed rate, requests/s in total")
    add("--duration", type=float, default=20, help="measured seconds per scenario at --rate")
    add("--max-duration", type=float, default=12, help="measured seconds per scenario at max")
    add("--connections", type=int, default=16)
    add("--body", type=int, default=1024, help="response body bytes")
    add("--rounds", type=int, default=4, help="rounds per phase (scenarios rotate)")
    add("--warmup", type=float, default=1.0, help="unmeasured seconds before each slice")
    add("--idle-duration", type=float, default=5.0, help="seconds of idle CPU measurement")
    add("--ceiling-duration", type=float, default=3.0, help="0 skips the generator ceiling")
    add("--timeout", type=float, default=480, help="hard limit for the whole run, seconds")
    add("--wait-quiet", type=float, default=0, help="first wait up to this long for low load")
    add("--quiet-load", type=float, default=0.5, help="1-minute load average deemed low")
    add(
        "--nice",
        type=int,
        default=0,
        help="nice value for the pods, the bare pair and the generator during the fixed-rate "
        "phase (e.g. -10 keeps a busy machine's other work out of the latencies)",
    )
    add("--json", type=Path, help="also write every number to this file")
    add("--keep-home", action="store_true", help="keep the mesh's home (logs) under /tmp")
    return parser.parse_args(argv)


def wait_quiet(limit: float, threshold: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and os.getloadavg()[0] >= threshold:
        time.sleep(5)


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
        self.mesh.apply(
            manifests.manifests(serve_argv(self.binary, manifests.APP_PORT, self.args.body))
        )
        names = [
            manifests.DIRECT_SERVER,
            manifests.DIRECT_CLIENT,
            *manifests.MESH_SERVERS,
            manifests.MESH_CLIENT,
            manifests.PLAIN_SERVER,
        ]
        return self.mesh.wait_ready(names, timeout=120)

    def start_pair(self, pods: dict[str, Pod], concurrency: int) -> None:
        server, client = pods[manifests.DIRECT_SERVER], pods[manifests.DIRECT_CLIENT]
        binary = envoy_binary()
        server_config = bare.bootstrap("0.0.0.0", bare.SERVER_PORT, "127.0.0.1", manifests.APP_PORT)
        client_config = bare.bootstrap(
            "127.0.0.1", bare.CLIENT_PORT, server["ip"], bare.SERVER_PORT
        )
        for name, config, pod in (
            ("server-envoy", server_config, server),
            ("client-envoy", client_config, client),
        ):
            self.envoys.append(
                bare.start(name, binary, config, concurrency, self.workdir, self.in_pod(pod))
            )

    def scenarios(self, pods: dict[str, Pod]) -> list[Scenario]:
        d_server, d_client = pods[manifests.DIRECT_SERVER], pods[manifests.DIRECT_CLIENT]
        m_servers = [pods[n] for n in manifests.MESH_SERVERS]
        m_client = pods[manifests.MESH_CLIENT]
        p_server = pods[manifests.PLAIN_SERVER]
        server_envoy, client_envoy = self.envoys
        port, service, plain = manifests.APP_PORT, manifests.SERVICE, manifests.PLAIN_SERVICE

        def sidecars(servers: list[Pod]) -> dict[str, Callable[[], list[int]]]:
            return {
                report.CLIENT_PROXY: processes([m_client], "envoy"),
                report.SERVER_PROXY: processes(servers, "envoy"),
                report.AGENTS: processes([m_client, *servers], "agent"),
                report.APP: processes(servers, "other"),
            }

        return [
            Scenario(
                report.DIRECT,
                d_client,
                d_server["ip"],
                port,
                service,
                {report.APP: processes([d_server], "other")},
            ),
            Scenario(
                report.PAIR,
                d_client,
                "127.0.0.1",
                bare.CLIENT_PORT,
                service,
                {
                    report.CLIENT_PROXY: lambda: [client_envoy.pid],
                    report.SERVER_PROXY: lambda: [server_envoy.pid],
                    report.APP: processes([d_server], "other"),
                },
            ),
            Scenario(report.MESH, m_client, service, port, service, sidecars(m_servers)),
            Scenario(report.PLAIN, m_client, plain, port, plain, sidecars([p_server])),
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
        self, scenarios: list[Scenario], rate: float, duration: float
    ) -> dict[str, PhaseTotals]:
        totals = {s.name: PhaseTotals() for s in scenarios}
        rounds = max(1, self.args.rounds)
        for r in range(rounds):
            shift = r % len(scenarios)
            for scenario in scenarios[shift:] + scenarios[:shift]:
                window = CpuWindow({g: find() for g, find in scenario.groups.items()})
                result = self.load(scenario, rate, duration / rounds, self.args.warmup, window.open)
                cpu, busy = window.close()
                totals[scenario.name].add(result, cpu, busy)
        return totals


def sidecar_counters(bench: Bench, pod: Pod, prefix: str) -> dict[str, int]:
    """Counters of a sidecar's Envoy whose names start with `prefix` (admin 127.0.0.1:15000)."""
    script = (
        "import urllib.request;"
        "print(urllib.request.urlopen('http://127.0.0.1:15000/stats',timeout=5).read().decode())"
    )
    out = subprocess.run(
        bench.mesh.in_pod(pod, [sys.executable, "-c", script]),
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    ).stdout
    counters: dict[str, int] = {}
    for line in out.splitlines():
        name, _, value = line.partition(": ")
        if name.startswith(prefix) and value.strip().isdigit():
            counters[name] = int(value)
    return counters


@dataclass(frozen=True)
class Watched:
    """A proxy-side process whose idle CPU and memory are reported."""

    scenario: str
    pod: str
    process: str
    pid: int


def watched_processes(
    mesh: BenchMesh, pods: dict[str, Pod], envoys: list[bare.BareEnvoy]
) -> list[Watched]:
    """Every proxy-side process: the bare pair, each sidecar's Envoy, agent and shim,
    isthmusd and the node runtime."""
    rows: list[Watched] = []
    for envoy in envoys:
        client = envoy.name.startswith("client")
        pod = pods[manifests.DIRECT_CLIENT if client else manifests.DIRECT_SERVER]
        rows.append(Watched(report.PAIR, pod["name"], "envoy", envoy.pid))
    sidecar_pods = [
        (report.MESH, manifests.MESH_CLIENT),
        *((report.MESH, name) for name in manifests.MESH_SERVERS),
        (report.PLAIN, manifests.PLAIN_SERVER),
    ]
    for scenario, name in sidecar_pods:
        pod = pods[name]
        for wanted in ("envoy", "agent"):
            for pid in proc.pids_by_role(pod["netns"], wanted):
                rows.append(Watched(scenario, pod["name"], wanted, pid))
        shim = proc.shim_pid(f"{pod['namespace']}.{pod['name']}")
        if shim is not None:  # every pod has one, sidecar or not: the per-pod supervisor
            rows.append(Watched(scenario, pod["name"], "shim", shim))
    for name, pid in (("isthmusd", mesh.daemon_pid()), ("node runtime", mesh.node_pid())):
        if pid is not None:
            rows.append(Watched("control plane", "-", name, pid))
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


def measure(bench: Bench, args: argparse.Namespace, started: float) -> report.Results:
    pods = bench.start_pods()
    concurrency = sidecar_concurrency(pods[manifests.MESH_CLIENT])
    bench.start_pair(pods, concurrency)
    scenarios = bench.scenarios(pods)
    for scenario in scenarios:
        bare.wait_serving(functools.partial(bench.probe, scenario), bench.envoys, timeout=30)
    results = report.Results(setup_seconds=time.monotonic() - started, concurrency=concurrency)
    if args.ceiling_duration > 0:
        results.ceiling_rps = bench.ceiling(pods[manifests.DIRECT_CLIENT])
    watched = watched_processes(bench.mesh, pods, bench.envoys)
    results.idle_seconds = args.idle_duration
    idle = idle_cpu(watched, args.idle_duration)
    results.load_during.append(os.getloadavg())
    client = pods[manifests.MESH_CLIENT]
    outbound = f"cluster.outbound|{manifests.APP_PORT}|"
    before = sidecar_counters(bench, client, outbound)
    with niceness(args.nice, pods, bench.envoys):
        results.fixed = bench.phase(scenarios, args.rate, args.duration)
    after = sidecar_counters(bench, client, outbound)
    results.counters = {
        k: v - before.get(k, 0)
        for k, v in after.items()
        if k.endswith(COUNTERS) and v != before.get(k, 0)
    }
    results.processes = [
        report.ProcessRow(w.scenario, w.pod, w.process, idle[w.pid], _proc.memory(w.pid))
        for w in watched
    ]
    results.maximum = bench.phase(scenarios, 0, args.max_duration)
    results.load_during.append(os.getloadavg())
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
