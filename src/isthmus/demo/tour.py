"""`isthmus demo`: the seed's story, end to end, on the local runtime (root).

Pods with Envoy sidecars: inventory-service v1 (two pods) and v2 (one canary pod), and
its callers order-, cart- and search-service. The tour applies the seed's YAML verbatim,
drives traffic from inside order-service's pod and says what it observes: the 95/5
canary split, beta users pinned to v2 through order-service, one inventory pod made slow
(p99 4 s) taking its callers down when only their own 2 s x 3 retries protect them, the
same storm contained by the seed's timeout, retries, connection pool and outlier
detection, the instant rollback by weight, the seed's security section (demo.security)
and its observability section (demo.observability: every request traced from the start).
The mesh stays up to explore.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from isthmus.demo.cascade import caller_envoy_counters, storm
from isthmus.demo.driver import DemoError, MeshDriver
from isthmus.demo.manifests import (
    CALLERS,
    NAMESPACE,
    replicas,
    rollback_vs,
    routing_only,
    workloads,
)
from isthmus.demo.observability import ObservabilityAct
from isthmus.demo.security import SecurityAct
from isthmus.demo.seed import SEED_YAML

INVENTORY = "http://inventory-service:8080/items"
SLOW_LATENCY = 4.0  # the seed's p99 of inventory-service on Black Friday
BOUNDED = ("--concurrency", "4", "--duration", "30")  # a load run never takes longer
TRACE_ID = "463ac35c9f6413ad48485a3953bb6124"


@dataclass(frozen=True)
class Profile:
    """How much traffic each step sends; `quick` is for tests and small machines."""

    name: str
    split_requests: int
    beta_requests: int
    storm_seconds: float
    storm_rate: float  # requests per second over the three callers
    rollback_seconds: float
    after_requests: int


PROFILES = {
    "quick": Profile("quick", 600, 60, 12.0, 45.0, 5.0, 200),
    "full": Profile("full", 2000, 200, 20.0, 45.0, 8.0, 500),
}


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1]))


class Tour:
    """The scripted tour; `run` returns the structured summary that --json prints."""

    def __init__(self, driver: MeshDriver, profile: Profile, say: Callable[[str], None]) -> None:
        self.driver = driver
        self.profile = profile
        self.say = say
        self.summary: dict[str, Any] = {"profile": asdict(profile), "home": str(driver.home.root)}
        self.pods: list[dict[str, Any]] = []
        self.slow: dict[str, Any] | None = None
        self.observability = ObservabilityAct(driver, self.pod, say)

    def pod(self, deployment: str, index: int = 0) -> dict[str, Any]:
        return [p for p in self.pods if p["deployment"] == deployment][index]

    def run(self, mesh: str) -> dict[str, Any]:
        started = time.monotonic()
        try:
            self.start(mesh)
            self.observability.sample_everything()
            self.canary_split()
            self.beta_users()
            self.slow_pod()
            self.cascade_without_policies()
            self.contained_with_policies()
            self.heal_slow_pod()
            self.rollback()
            self.security()
            self.summary["observability"] = self.observability.run()
        finally:
            with contextlib.suppress(DemoError):
                self.heal_slow_pod()
        self.summary["seconds"] = round(time.monotonic() - started, 1)
        self.explore()
        return self.summary

    # --- 0: the mesh and the workloads -----------------------------------------------------

    def start(self, mesh: str) -> None:
        root = self.driver.home.root
        out = self.driver.cli("up", "--mesh", mesh)
        reused = "already up" in out
        if not self.driver.runtime_on():
            raise DemoError(
                f"isthmusd at {root} runs without the local runtime; stop it "
                f"(`isthmus --home {root} down`) or use another --home"
            )
        self.say(
            f"• mesh {'already up, reused' if reused else 'up'}: "
            f"isthmusd with the local runtime, home {root}"
        )
        manifests = workloads()
        expected = replicas(manifests)
        self.driver.apply(manifests, "workloads")
        self.driver.apply(SEED_YAML, "seed-inventory")
        scratch = self.driver.scratch
        self.say(
            f"• applied {scratch}/workloads.yaml: 4 Services, {len(expected)} Deployments "
            f"({sum(expected.values())} pods). `image` is recorded, not used: each container "
            f"runs `{sys.executable} -m isthmus.demo.app`"
        )
        self.say(
            f"• applied the seed's DestinationRule and VirtualService verbatim ({scratch}"
            "/seed-inventory.yaml)"
        )
        began = time.monotonic()
        self.pods = self.driver.wait_ready(NAMESPACE, expected, timeout=150)
        if reused:  # a stopped earlier run may have left a pod slow
            for pod in self.pods:
                if pod["deployment"].startswith("inventory-"):
                    self._knobs(pod, latency=0.0, error_rate=0.0)
        self.say(
            f"• {len(self.pods)} pods ready in {time.monotonic() - began:.1f} s, each in its own "
            "network namespace with iptables capture and an Envoy sidecar: "
            + ", ".join(p["name"] for p in self.pods)
        )
        self.summary["mesh"] = mesh
        self.summary["reused"] = reused
        self.summary["pods"] = {
            d: [p["name"] for p in self.pods if p["deployment"] == d] for d in expected
        }

    # --- 1: the canary split and the beta users ---------------------------------------------

    def canary_split(self) -> None:
        n = self.profile.split_requests
        result = self.driver.load(
            self.pod("order-service"), [INVENTORY], "--count", str(n), *BOUNDED
        )
        versions = result["versions"]
        v1 = versions.get("inventory-service/v1", 0)
        v2 = versions.get("inventory-service/v2", 0)
        share = _pct(v2, result["count"])
        self.say(
            f"• canary split, {result['count']} requests from order-service's pod to "
            f"inventory-service: v1 {v1}, v2 {v2} ({share}% v2; the VirtualService says 5%), "
            f"errors {result['count'] - result['statuses'].get('200', 0)}, "
            f"p50 {result['p50'] * 1000:.0f} ms, p99 {result['p99'] * 1000:.0f} ms"
        )
        self.say(f"  served by {_counts(result['pods'])}")
        self.summary["split"] = {
            "requests": result["count"],
            "statuses": result["statuses"],
            "v1": v1,
            "v2": v2,
            "v2_percent": share,
            "pods": result["pods"],
        }

    def beta_users(self) -> None:
        n = self.profile.beta_requests
        result = self.driver.load(
            self.pod("order-service"),
            ["http://order-service:8080/orders"],
            "--count",
            str(n),
            "--concurrency",
            "2",
            "--duration",
            "30",
            "--header",
            "x-beta-user:true",
            "--header",
            f"x-b3-traceid:{TRACE_ID}",
            "--header",
            "x-b3-spanid:48485a3953bb6124",
            "--header",
            "x-b3-sampled:1",
        )
        upstream = result["upstream_versions"]
        propagated = result["propagated"]
        self.say(
            f"• beta users, {result['count']} requests to order-service with x-beta-user: true: "
            f"order-service reached {_counts(upstream)} ({_counts(result['upstream_pods'])})"
        )
        self.say(
            f"  x-request-id (made by the first Envoy) arrived unchanged at inventory in "
            f"{propagated['x-request-id']}/{result['count']}, x-b3-traceid "
            f"{TRACE_ID[:8]}… in {propagated['x-b3-traceid']}/{result['count']}"
        )
        self.summary["beta"] = {
            "requests": result["count"],
            "statuses": result["statuses"],
            "upstream_versions": upstream,
            "upstream_pods": result["upstream_pods"],
            "request_id_propagated": propagated["x-request-id"],
            "trace_id_propagated": propagated["x-b3-traceid"],
        }

    # --- 2: one slow inventory pod ------------------------------------------------------------

    def slow_pod(self) -> None:
        before = self.driver.proxy_versions()
        self.driver.apply(routing_only(), "routing-only")
        self.driver.wait_synced(before)
        self.say(
            "• the seed's resilience policies removed (routing only: same subsets and 95/5 "
            "split, no timeout, retries, connectionPool or outlierDetection); the callers keep "
            "their own: a pool of 4 workers, 2 s timeout x 3 attempts"
        )
        self.slow = self.pod("inventory-v1", 0)
        self._knobs(self.slow, latency=SLOW_LATENCY)
        result = self.driver.load(
            self.pod("order-service"),
            [INVENTORY],
            "--count",
            "20",
            "--concurrency",
            "10",
            "--duration",
            "30",
        )
        self.say(
            f"• {self.slow['name']} made slow (a {SLOW_LATENCY:g} s database query): "
            f"inventory-service now answers order-service with p50 {result['p50']:.2f} s, "
            f"p99 {result['p99']:.1f} s (the seed's p99)"
        )
        self.summary["slow_pod"] = {
            "pod": self.slow["name"],
            "latency": SLOW_LATENCY,
            "p50": round(result["p50"], 3),
            "p99": round(result["p99"], 3),
        }

    def heal_slow_pod(self) -> None:
        if self.slow is not None:
            pod, self.slow = self.slow, None
            self._knobs(pod, latency=0.0)
            self.say(f"• {pod['name']} is fast again")

    def _knobs(self, pod: dict[str, Any], **knobs: float) -> None:
        settings = [f"{k}={v:g}" for k, v in knobs.items()]
        self.driver.exec(pod, [sys.executable, "-m", "isthmus.demo.knobs", *settings])

    # --- 3: the cascade, then contained ----------------------------------------------------

    def _storm(self, title: str) -> dict[str, Any]:
        p = self.profile
        result = storm(self.driver, self.pod("order-service"), p.storm_seconds, p.storm_rate)
        self.say(
            f"• {title}: {p.storm_seconds:g} s of {p.storm_rate:g} req/s (open loop) to "
            f"order-, cart- and search-service:"
        )
        for name, c in result["callers"].items():
            down = "stayed ready"
            if c["not_ready_after"] is not None:
                down = (
                    f"NOT READY after {c['not_ready_after']:.1f} s "
                    f"(down {c['not_ready_seconds']:.1f} s)"
                )
            self.say(
                f"    {name:<15} {c['ok']:>4} ok {c['failed']:>4} failed   p50 {c['p50']:5.2f} s"
                f"   p99 {c['p99']:5.2f} s   {down}"
            )
        if result["reasons"]:
            self.say(f"    failures: {_counts(result['reasons'])}")
        if result["inventory_pods"]:
            self.say(f"    inventory answers came from: {_counts(result['inventory_pods'])}")
        return result

    def cascade_without_policies(self) -> None:
        result = self._storm("WITHOUT mesh policies")
        down = [n for n, c in result["callers"].items() if c["not_ready_after"] is not None]
        verdict = (
            f"{len(down)} of 3 callers went down: one slow pod exhausted their worker pools "
            "and their readiness probes waited in the queue"
            if down
            else "the callers' readiness held this time, but their requests queued"
        )
        self.say(
            f"  -> {result['failed']}/{result['requests']} requests failed "
            f"({_pct(result['failed'], result['requests'])}%), p99 {result['p99']:.1f} s; "
            + verdict
        )
        self.summary["without_policies"] = result
        began = time.monotonic()
        expected = {name: 1 for name in CALLERS}
        self.driver.wait_ready(NAMESPACE, expected, timeout=60)
        self.say(f"  callers ready again {time.monotonic() - began:.1f} s after the last answer")

    def contained_with_policies(self) -> None:
        before = self.driver.proxy_versions()
        self.driver.apply(SEED_YAML, "seed-inventory")
        took = self.driver.wait_synced(before)
        self.say(
            f"• the seed's DestinationRule and VirtualService applied again, verbatim; every "
            f"Envoy ACKed in {took * 1000:.0f} ms (timeout 3s, retries 3 x perTryTimeout 1s, "
            "connectionPool, outlierDetection 5 x 5xx)"
        )
        callers = [self.pod(name) for name in CALLERS]
        counters_before = caller_envoy_counters(self.driver, callers)
        result = self._storm("WITH the seed's policies")
        counters_after = caller_envoy_counters(self.driver, callers)
        envoy = {k: counters_after[k] - counters_before[k] for k in counters_after}
        down = sum(1 for c in result["callers"].values() if c["not_ready_after"] is not None)
        self.say(
            f"  -> {result['failed']}/{result['requests']} requests failed, "
            f"p99 {result['p99']:.2f} s, {3 - down} of 3 callers stayed ready; the callers' "
            f"Envoys cut {envoy['per_try_timeouts']} slow tries at 1 s and retried "
            f"{envoy['retries']} on another pod, made {envoy['ejections']} outlier ejections "
            f"(each Envoy ejects the slow pod on its own, for 30 s), and the connection pool "
            f"refused {envoy['pending_overflows']} requests"
        )
        result["envoy"] = envoy
        self.summary["with_policies"] = result

    # --- 4: rollback by weight ----------------------------------------------------------------

    def rollback(self) -> None:
        client = self.pod("order-service")
        seconds = self.profile.rollback_seconds
        v2_before = self.pod("inventory-v2")
        argv = self.driver.load_argv(
            [INVENTORY],
            "--count",
            "1000000",
            "--concurrency",
            "2",
            "--duration",
            str(seconds),
        )
        running = self.driver.exec_background(client, argv)
        time.sleep(seconds / 3)
        before = self.driver.proxy_versions()
        started = time.time()
        self.driver.apply(rollback_vs(), "rollback")
        self.driver.wait_synced(before)
        synced_ms = round((time.time() - started) * 1000)
        during = self.driver.finish(running, timeout=seconds + 60)
        last_v2 = during["last_seen"].get("inventory-service/v2")
        v2_last_ms = round((last_v2 - started) * 1000) if last_v2 else None
        after = self.driver.load(
            client, [INVENTORY], "--count", str(self.profile.after_requests), *BOUNDED
        )
        v2_pod = next(
            (p for p in self.driver.pods(NAMESPACE) if p["name"] == v2_before["name"]), None
        )
        failed = during["count"] - during["statuses"].get("200", 0)
        last = "" if v2_last_ms is None else f"; the last v2 answer came at {v2_last_ms:+d} ms"
        self.say(
            f"• rollback by weight (v2: 5 -> 0) under load: {during['count']} requests, "
            f"{failed} failed; every Envoy had ACKed the new routes {synced_ms} ms after "
            f"`isthmus apply` started (its CLI start-up included){last}"
        )
        still = (
            f"{v2_pod['name']} still {v2_pod['phase']}, restarts {v2_pod['restarts']}"
            if v2_pod
            else "the v2 pod is gone"
        )
        self.say(
            f"  next {after['count']} requests: {_counts(after['versions'])} "
            f"(no pod restarted: {still})"
        )
        self.summary["rollback"] = {
            "requests": during["count"],
            "failed": failed,
            "synced_ms": synced_ms,
            "v2_last_ms": v2_last_ms,
            "after": after["versions"],
            "v2_pod_running": bool(v2_pod and v2_pod["phase"] == "Running"),
        }

    # --- 4: zero trust ----------------------------------------------------------------------

    def security(self) -> None:
        act = SecurityAct(self.driver, self.pod, self.say)
        self.summary["security"] = act.run()

    # --- the mesh stays up ----------------------------------------------------------------------

    def explore(self) -> None:
        home = self.driver.home.root
        order = self.pod("order-service")["name"]
        commands = [
            f"isthmus --home {home} get pods -A",
            f"isthmus --home {home} proxy-status",
            f"isthmus --home {home} get virtualservices -n production -o yaml",
            f"isthmus --home {home} exec {order} -n production -- {sys.executable} -m "
            f"isthmus.demo.load {INVENTORY} --count 200",
            f"isthmus --home {home} logs {order} -n production -c istio-proxy",
            f"isthmus --home {home} traces --service order-service.production --min-duration 1s",
            f"isthmus --home {home} top -n production",
            f"isthmus --home {home} x authz check {self.pod('inventory-v1')['name']} -n "
            "production --request 'POST /items' --from-principal "
            "cluster.local/ns/production/sa/order-service",
            f"isthmus --home {home} x mtls-readiness -n production",
            f"isthmus --home {home} apply -f {self.driver.scratch}/seed-inventory.yaml",
            f"isthmus --home {home} demo --down",
        ]
        self.say(f"• done in {self.summary['seconds']:.0f} s. The mesh is still up; explore it:")
        for command in commands:
            self.say(f"    {command}")
        self.summary["explore"] = commands
