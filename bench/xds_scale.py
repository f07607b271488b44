"""Control plane at scale: how fast and how cheaply isthmusd pushes xDS to many proxies.

    .venv/bin/python bench/xds_scale.py --services 1000 --proxies 2000

A synthetic mesh (see `_mesh_gen`: per service two ports, a DestinationRule with subsets
v1/v2, two WorkloadEntries and a VirtualService splitting v1/v2) is applied to a real
isthmusd over its HTTP API, and fake sidecars (`_ads_load`: real gRPC ADS streams, SotW
and later Delta, that ACK at once and only count what they receive) connect from
separate processes.
Measured, for a baseline size and the requested size in the same run:

1. VirtualService weight change (HTTP apply) -> every proxy ACKed the new routes;
2. endpoint change (a WorkloadEntry of a service applied, then deleted, over HTTP) ->
   every proxy ACKed an EDS response holding the new endpoint set, and which types
   isthmusd pushed for it;
3. full push after an isthmusd restart: wall time and isthmusd CPU seconds
   (utime+stime from /proc) until every proxy ACKed CDS, EDS, LDS and RDS;
4. isthmusd RSS at steady state and peak (VmRSS / VmHWM);
5. Delta resume: the sidecars switch to Delta ADS (one more restart: a full Delta push),
   then isthmusd restarts once more with nothing changed and the sidecars reconnect with
   `initial_resource_versions`: wall time, isthmusd CPU and what was sent (ideally no
   resource at all), against the SotW restart push;
6. a real Envoy joining the mesh (the sidecar of svc-1 v1, with an explicit HTTP proxy
   port instead of iptables): its RSS once synced;
7. the transport floor: the same sidecars against a trivial server (`_floor`) that
   sends shared, ready bytes, i.e. the cost of moving the bytes without a control plane.

`--sidecar-scoping` puts every tenth service in a shared namespace and gives every
namespace a default Sidecar importing `./*` and the shared namespace (see `_mesh_gen`).

Everything runs on unix sockets. Each phase has a timeout and the whole run a hard
deadline; isthmusd and the client processes are stopped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType
from typing import Any

from _ads_load import client_main
from _floor import floor_main
from _mesh_gen import (
    HTTP_PORT,
    SHARED_EVERY,
    MeshShape,
    eds_cluster,
    extra_workload_entry,
    mesh_documents,
    virtual_service,
)
from _proc import Memory, Profiler, cpu_seconds, machine_facts, memory
from _profile import summarize

from isthmus.testing.daemon import DaemonError, DaemonProcess, start_sidecar
from isthmus.testing.ports import free_port

DEBOUNCE = 0.1  # isthmusd's default quiet window (Istio's PILOT_DEBOUNCE_AFTER)
SETTLE = 1.0  # seconds to let late responses of a phase arrive before counting them
# Release epochs of the client fleet: which (re)connect a retried stream belonged to.
EPOCH_INITIAL, EPOCH_RESTART, EPOCH_DELTA_FULL, EPOCH_DELTA_RESUME = 1, 2, 3, 4


class PhaseTimeout(Exception):
    """A phase did not finish in time; the scenario reports what it measured so far."""


class Deadline(Exception):
    """The whole run exceeded --timeout."""


@dataclass
class Result:
    """Everything one scenario measured; None where a phase did not run or finish."""

    shape: MeshShape
    objects: int = 0
    apply_s: float | None = None
    initial_sync_s: float | None = None
    initial_cpu_s: float | None = None
    change_all_s: list[float] = field(default_factory=list)
    change_proxy_p50_s: list[float] = field(default_factory=list)
    change_cpu_s: list[float] = field(default_factory=list)
    change_responses: dict[str, float] = field(default_factory=dict)  # per change
    endpoint_all_s: list[float] = field(default_factory=list)
    endpoint_cpu_s: list[float] = field(default_factory=list)
    endpoint_responses: dict[str, float] = field(default_factory=dict)  # per change
    steady: Memory | None = None
    first_peak: Memory | None = None
    startup_cpu_s: float | None = None
    restart_push_s: float | None = None
    restart_cpu_s: float | None = None
    restart_bytes_per_proxy: float | None = None
    restart_resources_per_proxy: float | None = None
    restart_after: Memory | None = None
    server_synced: str | None = None
    envoy_sync_s: float | None = None
    envoy_rss_mib: float | None = None
    envoy_allocated_mib: float | None = None
    envoy_clusters: int | None = None
    delta_ran: bool = False
    delta_full_s: float | None = None
    delta_full_cpu_s: float | None = None
    delta_resume_s: float | None = None
    delta_resume_cpu_s: float | None = None
    delta_resume_resources: int | None = None
    delta_resume_removed: int | None = None
    delta_resume_responses: dict[str, int] = field(default_factory=dict)
    delta_server_synced: str | None = None
    client_errors: list[str] = field(default_factory=list)
    client_error_count: int = 0
    stream_errors: list[str] = field(default_factory=list)
    stream_error_count: int = 0
    stream_errors_by_epoch: dict[int, int] = field(default_factory=dict)  # see EPOCH_*
    streams_cut: int | None = None  # by the SotW restart's stop
    floor_push_s: float | None = None
    floor_cpu_s: float | None = None
    incomplete: str | None = None
    profiles: dict[str, str] = field(default_factory=dict)  # phase -> py-spy summary


# -- client processes ---------------------------------------------------------------------


class Clients:
    """The fake sidecars, split over a few processes; commands go to all of them."""

    def __init__(
        self, target: str, shape: MeshShape, processes: int, lifetime: float, cpu: int | None
    ) -> None:
        ctx = multiprocessing.get_context("spawn")  # no gRPC state inherited across fork
        self._conns: list[Connection] = []
        self._procs: list[multiprocessing.process.BaseProcess] = []
        for n in range(processes):
            ours, theirs = ctx.Pipe()
            indices = list(range(n, shape.proxies, processes))
            proc = ctx.Process(
                target=_client_entry,
                args=(theirs, target, shape, indices, lifetime, cpu),
                name=f"xds-bench-clients-{n}",
                daemon=True,
            )
            proc.start()
            theirs.close()
            self._conns.append(ours)
            self._procs.append(proc)

    def command(self, *command: Any, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Send `command` to every process, then collect one reply from each."""
        for conn in self._conns:
            conn.send(command)
        replies = []
        deadline = time.monotonic() + timeout
        for conn in self._conns:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise PhaseTimeout(f"client process did not answer {command[0]!r} in {timeout}s")
            replies.append(conn.recv())
        return replies

    def stats(self) -> dict[str, Any]:
        replies = self.command("stats")
        out: dict[str, Any] = {"connected": 0, "errors": [], "stream_errors": []}
        for key in ("error_count", "streams_cut", "stream_error_count"):
            out[key] = 0
        out["held_own"] = sum(reply["held_own"] for reply in replies)
        for key in ("responses", "resources", "removed", "bytes"):
            out[key] = {}
            for reply in replies:
                for t, v in reply[key].items():
                    out[key][t] = out[key].get(t, 0) + v
        for reply in replies:
            for key in ("connected", "error_count", "streams_cut", "stream_error_count"):
                out[key] += reply[key]
            out["errors"] += reply["errors"]
            out["stream_errors"] += reply["stream_errors"]
            for epoch, count in reply["stream_errors_by_epoch"].items():
                by_epoch = out.setdefault("stream_errors_by_epoch", {})
                by_epoch[epoch] = by_epoch.get(epoch, 0) + count
        return out

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError, EOFError, BrokenPipeError):
                conn.send(("stop",))
        for proc in self._procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        for conn in self._conns:
            conn.close()


def _client_entry(
    conn: Connection,
    target: str,
    shape: MeshShape,
    indices: list[int],
    lifetime: float,
    cpu: int | None,
) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    client_main(conn, target, shape, indices, lifetime)


# -- the scenario -------------------------------------------------------------------------


@contextlib.contextmanager
def _pinned(cpu: int | None) -> Iterator[None]:
    """Processes started inside inherit affinity to `cpu` (the driver gets its own back)."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _daemon_pid(daemon: DaemonProcess) -> int:
    return int((daemon.home / "isthmusd.pid").read_text())


def _wait_all(clients: Clients, command: str, timeout: float) -> list[float]:
    replies = clients.command(command, timeout, timeout=timeout + 30)
    times = [t for r in replies for t in r["times"]]
    if not all(r["ok"] for r in replies):
        done = sum(r["done"] for r in replies)
        raise PhaseTimeout(f"{command}: only {done} proxies done after {timeout:.0f}s")
    return times


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}


def _total(after: dict[str, Any], before: dict[str, Any], key: str) -> int:
    """How many `key` (responses, resources, ...) the proxies received between two stats."""
    return sum(_delta(after[key], before[key]).values())


def _server_synced(daemon: DaemonProcess) -> str:
    """isthmusd's own view, after the measurements: does it see every proxy synced?"""
    proxies = daemon.proxies()
    synced = sum(1 for p in proxies if p["synced"])
    return f"{synced}/{len(proxies)}"


def _delete(daemon: DaemonProcess, text: str, source: str) -> None:
    """Delete the objects `text` describes over the HTTP API (`isthmus delete -f`)."""
    response = daemon.client.request(
        "DELETE", "/v1/objects", json={"documents": [{"source": source, "text": text}]}
    )
    if response.status_code != 200:
        raise DaemonError("\n".join(response.json().get("errors", [response.text])))


@dataclass(frozen=True)
class ExtraEndpoint:
    """One more pod of a service (`_mesh_gen.extra_workload_entry`) and the EDS cluster
    whose assignment shows whether the proxies have it."""

    service: int
    text: str
    address: str
    cluster: str

    @classmethod
    def of(cls, shape: MeshShape, k: int, n: int) -> ExtraEndpoint:
        text, address = extra_workload_entry(shape, k, n)
        return cls(k, text, address, eds_cluster(shape, k, HTTP_PORT, "v1"))


class Scenario:
    """One mesh size, start to finish, on its own isthmusd home."""

    def __init__(self, shape: MeshShape, args: argparse.Namespace, deadline: float) -> None:
        self.shape = shape
        self.args = args
        self.deadline = deadline
        self.result = Result(shape)
        self.guard: RssGuard = args.rss_guard
        pin = args.pin and (os.cpu_count() or 1) >= 2
        self.server_cpu = 0 if pin else None
        self.client_cpu = 1 if pin else None

    def timeout(self, phase_limit: float) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining < 5:
            raise Deadline("the run's --timeout is used up")
        return min(phase_limit, remaining - 5)

    def run(self) -> Result:
        home = Path(tempfile.mkdtemp(prefix="isx-", dir="/tmp"))
        self.daemon = DaemonProcess(home, debounce=DEBOUNCE)
        clients: Clients | None = None
        try:
            with _pinned(self.server_cpu):
                self.daemon.start()
            self.guard.watch(_daemon_pid(self.daemon))
            self._apply(self.daemon)
            clients = Clients(
                f"unix:{self.daemon.xds_socket}",
                self.shape,
                self.args.client_processes,
                lifetime=max(10.0, self.deadline - time.monotonic()),
                cpu=self.client_cpu,
            )
            clients.command("stats", timeout=self.timeout(120))  # processes are up
            self._initial_sync(self.daemon, clients)
            if self.args.real_envoy:
                self._real_envoy(self.daemon)
            self._changes(self.daemon, clients)
            self._endpoint_changes(self.daemon, clients)
            self._restart(clients)
            self.result.server_synced = _server_synced(self.daemon)
            if self.args.delta:
                self._delta_phases(clients)
        except (PhaseTimeout, Deadline) as exc:
            self.result.incomplete = str(exc)
        finally:
            remaining = signal.alarm(0)  # cleanup must not be interrupted
            if clients is not None:
                with contextlib.suppress(Exception):
                    final = clients.stats()
                    self.result.client_errors = final["errors"]
                    self.result.client_error_count = final["error_count"]
                    self.result.stream_errors = final["stream_errors"]
                    self.result.stream_error_count = final["stream_error_count"]
                    self.result.stream_errors_by_epoch = final.get("stream_errors_by_epoch", {})
                clients.close()
            self.daemon.stop()
            if not self.args.keep_home:
                _remove_tree(home)
            if remaining:
                signal.alarm(remaining)
        if self.result.incomplete is None and self.args.floor:
            try:
                self._floor()
            except (PhaseTimeout, Deadline) as exc:
                self.result.incomplete = f"transport floor: {exc}"
        return self.result

    def _floor(self) -> None:
        """The same fake sidecars against a server that only sends shared, ready bytes."""
        home = Path(tempfile.mkdtemp(prefix="isx-floor-", dir="/tmp"))
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        server = ctx.Process(
            target=floor_main,
            args=(theirs, str(home / "xds.sock"), self.shape, self.server_cpu),
            name="xds-bench-floor",
            daemon=True,
        )
        server.start()
        theirs.close()
        clients: Clients | None = None
        try:
            if not ours.poll(self.timeout(300)):
                raise PhaseTimeout("the floor server did not start")
            pid = int(ours.recv()["pid"])
            clients = Clients(
                f"unix:{home / 'xds.sock'}",
                self.shape,
                self.args.client_processes,
                lifetime=max(10.0, self.deadline - time.monotonic()),
                cpu=self.client_cpu,
            )
            clients.command("stats", timeout=self.timeout(120))
            cpu0 = cpu_seconds(pid)
            started = clients.command("release")[0]["at"]
            times = _wait_all(clients, "wait_synced", self.timeout(self.args.phase_timeout))
            self.result.floor_cpu_s = cpu_seconds(pid) - cpu0
            self.result.floor_push_s = max(times) - started
            log(
                f"  transport floor: {self.shape.proxies} proxies synced in "
                f"{self.result.floor_push_s:.1f}s, server CPU {self.result.floor_cpu_s:.1f}s"
            )
        finally:
            remaining = signal.alarm(0)
            if clients is not None:
                clients.close()
            with contextlib.suppress(OSError):
                ours.send("stop")
            server.join(10)
            if server.is_alive():
                server.kill()
                server.join(5)
            ours.close()
            _remove_tree(home)
            if remaining:
                signal.alarm(remaining)

    def _apply(self, daemon: DaemonProcess) -> None:
        started = time.monotonic()
        for text in mesh_documents(self.shape):
            self.result.objects += len(daemon.apply(text, source="bench-mesh.yaml"))
        self.result.apply_s = time.monotonic() - started
        log(
            f"{self.shape.services} services: applied {self.result.objects} objects "
            f"in {self.result.apply_s:.1f}s"
        )

    def _initial_sync(self, daemon: DaemonProcess, clients: Clients) -> None:
        pid = _daemon_pid(daemon)
        profiler = self._profiler(pid, "initial-connect")
        cpu0 = cpu_seconds(pid)
        started = clients.command("release")[0]["at"]
        try:
            times = _wait_all(clients, "wait_synced", self.timeout(self.args.phase_timeout))
        finally:
            self._profile_done(profiler, "initial connect")
        self.result.initial_cpu_s = cpu_seconds(pid) - cpu0
        self.result.initial_sync_s = max(times) - started
        log(
            f"  initial connect of {self.shape.proxies} proxies synced in "
            f"{self.result.initial_sync_s:.1f}s, isthmusd CPU {self.result.initial_cpu_s:.1f}s"
        )

    def _changes(self, daemon: DaemonProcess, clients: Clients) -> None:
        pid = _daemon_pid(daemon)
        before = clients.stats()["responses"]
        profiler = self._profiler(pid, "changes")
        try:
            self._change_loop(daemon, clients, pid)
        finally:
            self._profile_done(profiler, "VirtualService changes")
        after = clients.stats()["responses"]
        changes = max(1, len(self.result.change_all_s))
        self.result.change_responses = {
            t: v / changes for t, v in _delta(after, before).items() if v
        }
        time.sleep(1.0)
        self.result.steady = memory(pid)

    def _change_loop(self, daemon: DaemonProcess, clients: Clients, pid: int) -> None:
        rng = random.Random(7)
        weights: dict[int, int] = {}
        budget_end = time.monotonic() + self.args.change_budget
        for n in range(self.args.changes):
            if n >= 3 and time.monotonic() > budget_end:
                log(f"  change budget of {self.args.change_budget:.0f}s used: {n} changes timed")
                break
            k = self._changed_service(rng)
            current = weights.get(k, 90)
            weight = rng.choice([w for w in range(10, 91, 10) if w != current])
            weights[k] = weight
            clients.command("mark")
            cpu0 = cpu_seconds(pid)
            started = time.monotonic()
            daemon.apply(virtual_service(self.shape, k, weight), source="bench-change.yaml")
            times = _wait_all(clients, "wait_rds", self.timeout(self.args.phase_timeout))
            self.result.change_cpu_s.append(cpu_seconds(pid) - cpu0)
            self.result.change_all_s.append(max(times) - started)
            self.result.change_proxy_p50_s.append(statistics.median(times) - started)
            log(
                f"  change {n + 1}/{self.args.changes}: svc-{k} v1={weight}% -> all ACKed in "
                f"{self.result.change_all_s[-1]:.2f}s, CPU {self.result.change_cpu_s[-1]:.2f}s"
            )
            time.sleep(2 * DEBOUNCE)

    def _changed_service(self, rng: random.Random) -> int:
        """A random service every proxy sees: any, or with Sidecar scoping a shared one."""
        if self.shape.scoped:
            return rng.randrange(0, self.shape.services, SHARED_EVERY)
        return rng.randrange(self.shape.services)

    def _real_envoy(self, daemon: DaemonProcess) -> None:
        """A real Envoy joins the mesh as the sidecar of svc-1 v1: its RSS once synced (the
        seed's sidecar memory growth), then it leaves before the changes are timed."""
        k = 1
        namespace = self.shape.namespace_of(k)
        pod = f"svc-{k}-v1-real-envoy"
        workdir = daemon.home / "real-envoy"
        workdir.mkdir(exist_ok=True)
        envoy = start_sidecar(
            daemon,
            workdir,
            pod=pod,
            namespace=namespace,
            http_proxy_port=free_port(),
            labels={"app": f"svc-{k}", "version": "v1"},
        )
        try:
            started = time.monotonic()
            # LIVE: Envoy's initial fetch of every type (CDS, EDS, LDS, RDS) is done.
            envoy.wait_ready(timeout=self.timeout(self.args.phase_timeout))
            self.result.envoy_sync_s = time.monotonic() - started
            time.sleep(2.0)  # let its workers settle
            self.result.envoy_rss_mib = memory(envoy.pid).rss_mib
            self.result.envoy_clusters = envoy.stat("cluster_manager.active_clusters")
            allocated = json.loads(envoy.admin_get("/memory"))["allocated"]
            self.result.envoy_allocated_mib = int(allocated) / 2**20
            log(
                f"  real Envoy synced in {self.result.envoy_sync_s:.1f}s: "
                f"{self.result.envoy_clusters} clusters, RSS {self.result.envoy_rss_mib:.0f} MiB"
            )
        finally:
            envoy.stop()

    def _endpoint_changes(self, daemon: DaemonProcess, clients: Clients) -> None:
        """Endpoint-only changes: time EDS to every proxy, count what else was pushed."""
        pid = _daemon_pid(daemon)
        before = clients.stats()["responses"]
        profiler = self._profiler(pid, "endpoints")
        try:
            extra = self._endpoint_loop(daemon, clients, pid)
        finally:
            self._profile_done(profiler, "endpoint changes")
        time.sleep(SETTLE)  # responses of the last change sent after its EDS still count
        after = clients.stats()["responses"]
        changes = max(1, len(self.result.endpoint_all_s))
        self.result.endpoint_responses = {
            t: v / changes for t, v in _delta(after, before).items() if v
        }
        if extra is not None:  # the budget ended between an add and its remove: restore
            self._endpoint_change(daemon, clients, extra, present=False)
            log(f"  endpoint restored, untimed: svc-{extra.service} -{extra.address}")

    def _endpoint_loop(
        self, daemon: DaemonProcess, clients: Clients, pid: int
    ) -> ExtraEndpoint | None:
        """Add an endpoint to a random service, remove it on the next change, and so on.

        Returns the endpoint still applied when the budget ended, if any.
        """
        rng = random.Random(11)
        extra: ExtraEndpoint | None = None
        budget_end = time.monotonic() + self.args.change_budget
        total = self.args.endpoint_changes
        for n in range(total):
            if n >= 3 and time.monotonic() > budget_end:
                log(f"  change budget of {self.args.change_budget:.0f}s used: {n} changes timed")
                break
            present = extra is None
            if extra is None:
                extra = ExtraEndpoint.of(self.shape, self._changed_service(rng), n)
            cpu0 = cpu_seconds(pid)
            started = time.monotonic()
            times = self._endpoint_change(daemon, clients, extra, present)
            self.result.endpoint_cpu_s.append(cpu_seconds(pid) - cpu0)
            self.result.endpoint_all_s.append(max(times) - started)
            log(
                f"  endpoint change {n + 1}/{total}: svc-{extra.service} "
                f"{'+' if present else '-'}{extra.address} -> EDS all ACKed in "
                f"{self.result.endpoint_all_s[-1]:.2f}s, CPU {self.result.endpoint_cpu_s[-1]:.2f}s"
            )
            if not present:
                extra = None
            time.sleep(2 * DEBOUNCE)
        return extra

    def _endpoint_change(
        self, daemon: DaemonProcess, clients: Clients, extra: ExtraEndpoint, present: bool
    ) -> list[float]:
        """Apply (present) or delete `extra`; each proxy's time of ACKing EDS with it."""
        clients.command("watch_eds", extra.cluster, extra.address, present)
        if present:
            daemon.apply(extra.text, source="bench-endpoint.yaml")
        else:
            _delete(daemon, extra.text, source="bench-endpoint.yaml")
        return _wait_all(clients, "wait_eds", self.timeout(self.args.phase_timeout))

    def _restart(self, clients: Clients) -> None:
        """Stop isthmusd, start it again and time the full push to the returning proxies."""
        self.result.first_peak = memory(_daemon_pid(self.daemon))
        cut = clients.stats()["streams_cut"]
        pid = self._restart_daemon(clients)
        self.result.startup_cpu_s = cpu_seconds(pid)
        before = clients.stats()
        wall, cpu = self._timed_sync(clients, pid, "restart full push")
        self.result.restart_push_s, self.result.restart_cpu_s = wall, cpu
        after = clients.stats()
        self.result.streams_cut = after["streams_cut"] - cut
        sent = sum(_delta(after["bytes"], before["bytes"]).values())
        count = sum(_delta(after["resources"], before["resources"]).values())
        self.result.restart_bytes_per_proxy = sent / self.shape.proxies
        self.result.restart_resources_per_proxy = count / self.shape.proxies
        log(
            f"  restart: full push to {self.shape.proxies} proxies in "
            f"{self.result.restart_push_s:.1f}s, isthmusd CPU {self.result.restart_cpu_s:.1f}s"
        )
        time.sleep(1.0)
        self.result.restart_after = memory(pid)

    def _delta_phases(self, clients: Clients) -> None:
        """Switch the proxies to Delta (a full push), then time their resume after a
        restart of isthmusd in which nothing changed."""
        self.result.delta_ran = True
        clients.command("mode", "delta")  # streams opened from now on speak Delta
        pid = self._restart_daemon(clients)
        before = clients.stats()
        wall, cpu = self._timed_sync(clients, pid, "delta full push")
        self.result.delta_full_s, self.result.delta_full_cpu_s = wall, cpu
        after = clients.stats()
        per_proxy = _total(after, before, "resources") / self.shape.proxies
        held = after["held_own"] / self.shape.proxies
        log(
            f"  delta full push to {self.shape.proxies} proxies in {wall:.1f}s, isthmusd CPU "
            f"{cpu:.1f}s, {per_proxy:.0f} resources per proxy (each keeps {held:.1f} versions "
            "of its own beyond the shared ones)"
        )
        pid = self._restart_daemon(clients)
        before = clients.stats()
        wall, cpu = self._timed_sync(clients, pid, "delta resume")
        self.result.delta_resume_s, self.result.delta_resume_cpu_s = wall, cpu
        time.sleep(SETTLE)  # anything sent after the last proxy synced counts too
        after = clients.stats()
        self.result.delta_resume_resources = _total(after, before, "resources")
        self.result.delta_resume_removed = _total(after, before, "removed")
        self.result.delta_resume_responses = _delta(after["responses"], before["responses"])
        self.result.delta_server_synced = _server_synced(self.daemon)
        log(
            f"  delta resume of {self.shape.proxies} proxies in {wall:.2f}s, isthmusd CPU "
            f"{cpu:.2f}s, {self.result.delta_resume_resources} resources sent"
        )

    def _restart_daemon(self, clients: Clients) -> int:
        """Hold the proxies, stop isthmusd, start it on the same home; its new pid.

        The proxies stay held (not reconnecting) until `_timed_sync` releases them.
        """
        clients.command("hold")
        self.daemon.stop()
        replies = clients.command("wait_disconnected", 30.0, timeout=60)
        if not all(r["ok"] for r in replies):
            raise PhaseTimeout("proxies did not see isthmusd go away within 30s")
        daemon = self.daemon = DaemonProcess(self.daemon.home, debounce=DEBOUNCE)
        with _pinned(self.server_cpu):
            daemon.start()
        pid = _daemon_pid(daemon)
        self.guard.watch(pid)
        return pid

    def _timed_sync(self, clients: Clients, pid: int, phase: str) -> tuple[float, float]:
        """Release the held proxies; wall time and isthmusd CPU until all are synced."""
        profiler = self._profiler(pid, phase.replace(" ", "-"))
        cpu0 = cpu_seconds(pid)
        started = clients.command("release")[0]["at"]
        try:
            times = _wait_all(clients, "wait_synced", self.timeout(self.args.phase_timeout))
            return max(times) - started, cpu_seconds(pid) - cpu0
        finally:
            self._profile_done(profiler, phase)

    def _profiler(self, pid: int, phase: str) -> Profiler | None:
        """py-spy on isthmusd for one phase, if asked for and this is the profiled size."""
        if self.args.profile is None or self.shape != self.args.profile_shape:
            return None
        profiler = Profiler(pid, self.args.profile / f"isthmusd-{self.shape.services}-{phase}.raw")
        time.sleep(1.0)  # let py-spy attach before the phase starts
        return profiler

    def _profile_done(self, profiler: Profiler | None, phase: str) -> None:
        if profiler is None:
            return
        err = profiler.stop()
        if profiler.output.exists():
            self.result.profiles[phase] = summarize(profiler.output)
        else:
            self.result.profiles[phase] = f"py-spy wrote nothing: {err[-500:]}"


class RssGuard:
    """Kills isthmusd if its RSS passes a limit, so a runaway run can not take the machine.

    The watcher thread then interrupts the driver's main thread (SIGUSR1), whose handler
    raises PhaseTimeout: the scenario reports what it measured and cleans up.
    """

    def __init__(self, limit_mib: float) -> None:
        self.limit_mib = limit_mib
        self._pid: int | None = None
        self._stop = threading.Event()
        self.tripped: str | None = None
        signal.signal(signal.SIGUSR1, self._interrupt)
        self._thread = threading.Thread(target=self._watch, name="rss-guard", daemon=True)
        self._thread.start()

    def watch(self, pid: int) -> None:
        self._pid = pid
        self.tripped = None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _interrupt(self, _signum: int, _frame: FrameType | None) -> None:
        raise PhaseTimeout(self.tripped or "isthmusd RSS limit")

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            pid = self._pid
            if pid is None or self.tripped:
                continue
            with contextlib.suppress(OSError, KeyError):
                rss = memory(pid).rss_mib
                if rss > self.limit_mib:
                    self.tripped = (
                        f"isthmusd RSS {rss:.0f} MiB passed --max-rss {self.limit_mib:.0f}"
                    )
                    os.kill(pid, signal.SIGKILL)
                    os.kill(os.getpid(), signal.SIGUSR1)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# -- report -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (with 20 samples p99 is the maximum)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def _p(values: list[float], q: float) -> float | None:
    return percentile(values, q) if values else None


def _by_type(counts: dict[str, float] | dict[str, int]) -> str | None:
    """`CDS 1, EDS 200`: counts per xDS type, the types with none left out."""
    return ", ".join(f"{t} {v:.0f}" for t, v in sorted(counts.items()) if v) or None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _endpoint_rows(r: Result) -> dict[str, float | str | None]:
    return {
        "endpoint changes timed": len(r.endpoint_all_s),
        "endpoint change -> all ACKed EDS, p50 (s)": _p(r.endpoint_all_s, 50),
        "endpoint change -> all ACKed EDS, p99 (s)": _p(r.endpoint_all_s, 99),
        "endpoint change: isthmusd CPU, p50 (s)": _p(r.endpoint_cpu_s, 50),
        "endpoint change: responses sent per change": _by_type(r.endpoint_responses),
    }


def _delta_rows(r: Result) -> dict[str, float | str | None]:
    return {
        "delta full push after restart: all synced (s)": r.delta_full_s,
        "delta full push after restart: isthmusd CPU (s)": r.delta_full_cpu_s,
        "delta restart resume: all synced (s)": r.delta_resume_s,
        "delta restart resume: isthmusd CPU (s)": r.delta_resume_cpu_s,
        "delta restart resume: responses sent": _by_type(r.delta_resume_responses),
        "delta restart resume: resources sent to proxies": r.delta_resume_resources,
        "delta restart resume: removals sent to proxies": r.delta_resume_removed,
        "delta resume CPU / SotW restart push CPU": _ratio(r.delta_resume_cpu_s, r.restart_cpu_s),
        "isthmusd sees proxies synced after delta resume": r.delta_server_synced,
    }


def _rows(r: Result) -> dict[str, float | str | None]:
    def mem(m: Memory | None, attr: str) -> float | None:
        return None if m is None else float(getattr(m, attr))

    changes = r.change_all_s
    per_proxy_ms = None if r.restart_cpu_s is None else 1000 * r.restart_cpu_s / r.shape.proxies
    epochs = r.stream_errors_by_epoch
    return {
        "config objects applied": r.objects,
        "apply all objects (s)": r.apply_s,
        "initial connect: all synced (s)": r.initial_sync_s,
        "initial connect: isthmusd CPU (s)": r.initial_cpu_s,
        "VS changes timed": len(changes),
        "VS change -> all ACKed, p50 (s)": percentile(changes, 50) if changes else None,
        "VS change -> all ACKed, p99 (s)": percentile(changes, 99) if changes else None,
        "VS change -> median proxy ACK, p50 (s)": (
            percentile(r.change_proxy_p50_s, 50) if r.change_proxy_p50_s else None
        ),
        "VS change: isthmusd CPU, p50 (s)": (
            percentile(r.change_cpu_s, 50) if r.change_cpu_s else None
        ),
        "VS change: responses sent per change": _by_type(r.change_responses),
        **_endpoint_rows(r),
        "services each proxy sees": r.shape.visible_services(r.shape.namespace_of(1)),
        "real Envoy: synced (s)": r.envoy_sync_s,
        "real Envoy: active clusters": r.envoy_clusters,
        "real Envoy: RSS (MiB)": r.envoy_rss_mib,
        "real Envoy: heap allocated (MiB)": r.envoy_allocated_mib,
        "isthmusd RSS steady (MiB)": mem(r.steady, "rss_mib"),
        "isthmusd RSS peak, first run (MiB)": mem(r.first_peak, "hwm_mib"),
        "isthmusd startup CPU, no proxies (s)": r.startup_cpu_s,
        "restart full push: all synced (s)": r.restart_push_s,
        "restart full push: isthmusd CPU (s)": r.restart_cpu_s,
        "restart full push: CPU per proxy (ms)": per_proxy_ms,
        "restart full push: resources per proxy": r.restart_resources_per_proxy,
        "restart full push: MiB per proxy": (
            None if r.restart_bytes_per_proxy is None else r.restart_bytes_per_proxy / 2**20
        ),
        "isthmusd RSS after restart push (MiB)": mem(r.restart_after, "rss_mib"),
        "isthmusd RSS peak after restart (MiB)": mem(r.restart_after, "hwm_mib"),
        "isthmusd sees proxies synced": r.server_synced,
        **_delta_rows(r),
        "transport floor: all synced (s)": r.floor_push_s,
        "transport floor: server CPU (s)": r.floor_cpu_s,
        "restart push CPU / floor CPU": _ratio(r.restart_cpu_s, r.floor_cpu_s),
        "protocol errors seen by clients": r.client_error_count,
        "streams failed and retried (initial/restart)": (
            f"{epochs.get(EPOCH_INITIAL, 0)} / {epochs.get(EPOCH_RESTART, 0)}"
        ),
        "streams failed and retried (delta full/resume)": (
            f"{epochs.get(EPOCH_DELTA_FULL, 0)} / {epochs.get(EPOCH_DELTA_RESUME, 0)}"
            if r.delta_ran
            else None
        ),
        "streams cut while isthmusd stopped": r.streams_cut,
    }


def _cell(value: float | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def table(results: list[Result]) -> str:
    heads = [f"{r.shape.services} svc / {r.shape.proxies} px" for r in results]
    with_ratio = len(results) == 2
    header = ["metric", *heads, *(["ratio"] if with_ratio else [])]
    rows_of = [_rows(r) for r in results]
    lines = []
    for metric in rows_of[0]:
        values = [rows[metric] for rows in rows_of]
        row = [metric, *(_cell(v) for v in values)]
        if with_ratio:
            a, b = values
            ok = isinstance(a, int | float) and isinstance(b, int | float) and a
            row.append(f"{b / a:.1f}x" if ok else "")  # type: ignore[operator]
        lines.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*row) for row in lines]
    return "\n".join(out)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _default_rss_limit() -> float:
    total_kib = int(Path("/proc/meminfo").read_text().split()[1])  # MemTotal comes first
    return 0.6 * total_kib / 1024


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--proxies", type=int, default=2000)
    p.add_argument("--namespaces", type=int, default=4)
    p.add_argument("--baseline-services", type=int, default=100)
    p.add_argument("--baseline-proxies", type=int, default=200)
    p.add_argument("--no-baseline", action="store_true", help="only the requested size")
    p.add_argument("--changes", type=int, default=20, help="VirtualService changes to time")
    p.add_argument(
        "--endpoint-changes",
        type=int,
        default=20,
        help="endpoint changes to time (an added endpoint, then its removal, and so on)",
    )
    p.add_argument(
        "--change-budget",
        type=float,
        default=300.0,
        help="seconds per kind of change; after at least 3, stop timing once this is used",
    )
    p.add_argument("--client-processes", type=int, default=2)
    p.add_argument("--phase-timeout", type=float, default=420.0, help="seconds per wait")
    p.add_argument("--timeout", type=float, default=2700.0, help="hard limit for the run")
    p.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin isthmusd to CPU 0 and the clients to CPU 1",
    )
    p.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="skip the transport floor (a trivial server sending shared, ready bytes)",
    )
    p.add_argument(
        "--max-rss",
        type=float,
        default=_default_rss_limit(),
        help="MiB; isthmusd is killed above it (default: 60%% of the machine's RAM)",
    )
    p.add_argument(
        "--no-delta",
        dest="delta",
        action="store_false",
        help="skip the Delta phases (a full Delta push, then a resume after a restart)",
    )
    p.add_argument(
        "--sidecar-scoping",
        dest="scoped",
        action="store_true",
        help="every tenth service in a shared namespace; each namespace's default Sidecar "
        "imports './*' and the shared namespace (changes are made to shared services)",
    )
    p.add_argument(
        "--no-real-envoy",
        dest="real_envoy",
        action="store_false",
        help="skip the real Envoy that joins the mesh to have its RSS measured",
    )
    p.add_argument("--profile", type=Path, help="py-spy the largest size into this directory")
    p.add_argument("--keep-home", action="store_true", help="keep isthmusd homes (logs)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    shapes = [MeshShape(args.services, args.proxies, args.namespaces, args.scoped)]
    if not args.no_baseline:
        base = MeshShape(
            args.baseline_services, args.baseline_proxies, args.namespaces, args.scoped
        )
        shapes.insert(0, base)
    args.profile_shape = shapes[-1]
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)

    def on_alarm(_signum: int, _frame: FrameType | None) -> None:
        raise Deadline(f"the run exceeded --timeout {args.timeout:.0f}s")

    load_at_start = _loadavg()
    args.rss_guard = RssGuard(args.max_rss)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.timeout))
    deadline = time.monotonic() + args.timeout
    results: list[Result] = []
    try:
        for shape in shapes:
            log(
                f"== {shape.services} services, {shape.proxies} proxies, "
                f"{shape.namespaces} namespaces"
            )
            results.append(Scenario(shape, args, deadline).run())
    except Deadline as exc:
        log(f"stopped: {exc}")
    finally:
        signal.alarm(0)
        args.rss_guard.close()
    if not results:
        return 1
    facts = machine_facts()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
    print(
        f"load average (1/5/15 min, whole machine): at start {load_at_start}, at end {_loadavg()}"
    )
    pinned = "isthmusd pinned to CPU 0, clients to CPU 1" if args.pin else "no CPU pinning"
    print(
        f"setup: {args.namespaces} namespaces"
        f"{' + bench-shared, Sidecar scoping' if args.scoped else ''}, "
        f"{args.client_processes} client processes, "
        f"debounce {DEBOUNCE}s, up to {args.changes} VS changes and "
        f"{args.endpoint_changes} endpoint changes (budget {args.change_budget:.0f}s each), "
        f"{pinned}"
    )
    if len(results) == 2:
        a, b = (r.shape for r in results)
        print(
            f"ratio column: second size / first size (services x{b.services / a.services:g}, "
            f"proxies x{b.proxies / a.proxies:g})"
        )
    print()
    print(table(results))
    for r in results:
        if r.incomplete:
            print(f"\nINCOMPLETE ({r.shape.services} svc / {r.shape.proxies} px): {r.incomplete}")
        if r.client_errors:
            print(f"\nclient errors ({r.shape.services} svc): " + "; ".join(r.client_errors))
        if r.stream_errors:
            print(
                f"\nretried streams ({r.shape.services} svc), first: " + "; ".join(r.stream_errors)
            )
        for phase, summary in r.profiles.items():
            print(
                f"\nprofile of isthmusd, {phase} ({r.shape.services} svc / "
                f"{r.shape.proxies} px, py-spy):\n{summary}"
            )
    return 0 if all(r.incomplete is None and not r.client_error_count for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
