"""One pod: its network namespace, its sidecar (isthmus-agent + Envoy) and its containers.

Lifecycle (as the kubelet with Istio's injection does it):
start: namespace + veth + hosts file, capture rules, agent; the application containers
start only once the sidecar is ready (holdApplicationUntilProxyStarts); readiness probes
then gate the pod's endpoints.
stop: the pod leaves the endpoints first and the change is pushed to every proxy, then
the requests already on their way in are let finish (the sidecar's inbound has had none
in flight for a moment), then its containers get SIGTERM (SIGKILL once
terminationGracePeriodSeconds, counted from the start of the stop, ran out), then the
agent drains Envoy, then the namespace is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from isthmus.api.core import Container, PodSpec
from isthmus.model.types import Workload
from isthmus.runtime.nsocket import http_get_in_netns, http_get_text_in_netns
from isthmus.runtime.probes import ProbeState, run_probe
from isthmus.runtime.process import SupervisedProcess

log = logging.getLogger("isthmus.runtime")

INJECT_ANNOTATION = "sidecar.istio.io/inject"
PROXY_CONFIG_ANNOTATION = "proxy.istio.io/config"
READINESS_PORT = 15021
ENVOY_ADMIN_PORT = 15000
SIDECAR_READY_TIMEOUT = 60.0
# A request dispatched just before the proxies dropped this pod may still be on the wire;
# after this long with nothing in flight inbound, nothing more is coming.
INBOUND_QUIET = 0.2
INBOUND_POLL = 0.05
MIN_STOP_GRACE = 1.0  # SIGTERM always gets this long before SIGKILL
# Requests in flight to the app through the sidecar, of any inbound cluster.
_INBOUND_ACTIVE = ("cluster.inbound|", "cluster.InboundPassthroughCluster.")


class PodNetworking(Protocol):
    """What a pod needs from isthmus.netns (MeshNetwork and friends)."""

    async def add_pod(self, pod: str) -> tuple[str, str]:
        """Create the pod's namespace; returns (netns name, pod IP)."""
        ...

    async def remove_pod(self, pod: str) -> None: ...

    async def write_hosts(self, pod: str, entries: Mapping[str, Sequence[str]]) -> None: ...

    async def apply_capture(
        self, pod: str, annotations: Mapping[str, str], ports: Sequence[int]
    ) -> None: ...

    def exec_argv(self, netns: str, argv: Sequence[str]) -> list[str]: ...


@dataclass
class PodContext:
    """What the runtime gives every pod."""

    network: PodNetworking
    state_dir: Path  # per-mesh directory for pod logs
    proxy_dir: Path  # per-mesh directory uid 1337 can reach: the sidecars' work dirs
    xds_socket: str
    hosts_for: Callable[[str], Mapping[str, Sequence[str]]]  # namespace -> hosts entries
    endpoints_changed: Callable[[], Awaitable[None]]  # push endpoint changes, wait until sent


@dataclass
class Pod:
    name: str
    namespace: str
    deployment: str
    template_hash: str
    labels: dict[str, str]
    annotations: dict[str, str]
    spec: PodSpec
    inject: bool
    created: float = field(default_factory=time.time)
    ip: str = ""
    netns: str = ""
    phase: str = "Pending"
    ready: bool = False
    agent: SupervisedProcess | None = None
    log_dir_path: Path | None = None
    ready_since: float | None = None  # monotonic time of the last not-ready -> ready
    containers: dict[str, SupervisedProcess] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def available(self, min_ready_seconds: int) -> bool:
        """Kubernetes' availability: ready for at least minReadySeconds (rollouts count it)."""
        if not self.ready or self.ready_since is None:
            return False
        return time.monotonic() - self.ready_since >= min_ready_seconds

    @property
    def key(self) -> str:
        return f"{self.namespace}.{self.name}"

    @property
    def service_account(self) -> str:
        return self.spec.service_account_name or "default"

    def log_dir(self, ctx: PodContext) -> Path:
        return ctx.state_dir / "pods" / self.namespace / self.name

    def container_ports(self) -> list[int]:
        return sorted(
            {p.container_port for c in self.spec.containers for p in c.ports if p.protocol == "TCP"}
        )

    def workload(self) -> Workload:
        named = {p.name: p.container_port for c in self.spec.containers for p in c.ports if p.name}
        return Workload(
            name=self.name,
            namespace=self.namespace,
            address=self.ip,
            labels=tuple(sorted(self.labels.items())),
            service_account=self.service_account,
            ready=self.ready,
            port_map=tuple(sorted(named.items())),
        )

    # --- start -----------------------------------------------------------------------

    async def start(self, ctx: PodContext) -> None:
        self.log_dir_path = self.log_dir(ctx)
        self.netns, self.ip = await ctx.network.add_pod(self.key)
        await ctx.network.write_hosts(self.key, ctx.hosts_for(self.namespace))
        if self.inject:
            await ctx.network.apply_capture(self.key, self.annotations, self.container_ports())
            self.agent = SupervisedProcess(
                "istio-proxy",
                ctx.network.exec_argv(self.netns, self._agent_argv(ctx)),
                self.log_dir(ctx) / "istio-proxy.log",
            )
            self.agent.start()
            await self._wait_sidecar_ready()
        for container in self.spec.containers:
            process = SupervisedProcess(
                container.name,
                ctx.network.exec_argv(self.netns, [*container.command, *container.args]),
                self.log_dir(ctx) / f"{container.name}.log",
                env=self._container_env(container),
                cwd=container.working_dir or str(self.log_dir(ctx)),
            )
            self.containers[container.name] = process
            process.start()
        self.phase = "Running"
        self._tasks.append(asyncio.create_task(self._readiness_loop(ctx), name=f"ready-{self.key}"))
        for container in self.spec.containers:
            if container.liveness_probe is not None:
                self._tasks.append(asyncio.create_task(self._liveness_loop(ctx, container)))

    def _agent_argv(self, ctx: PodContext) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "isthmus.agent",
            "--pod",
            self.name,
            "--namespace",
            self.namespace,
            "--ip",
            self.ip,
            "--labels",
            json.dumps(self.labels),
            "--service-account",
            self.service_account,
            "--workload",
            self.deployment,
            "--inbound-ports",
            ",".join(str(p) for p in self.container_ports()),
            "--xds-socket",
            ctx.xds_socket,
            "--workdir",
            str(ctx.proxy_dir / self.key),
        ]
        proxy_config = self.annotations.get(PROXY_CONFIG_ANNOTATION)
        if proxy_config:
            argv += ["--proxy-config", proxy_config]
        return argv

    async def _wait_sidecar_ready(self) -> None:
        deadline = time.monotonic() + SIDECAR_READY_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, TimeoutError, ConnectionError):
                status = await http_get_in_netns(
                    self.netns, "127.0.0.1", READINESS_PORT, "/healthz/ready"
                )
                if status == 200:
                    return
            await asyncio.sleep(0.1)
        raise TimeoutError(
            f"sidecar of pod {self.namespace}/{self.name} not ready in {SIDECAR_READY_TIMEOUT:.0f}s"
        )

    def _container_env(self, container: Container) -> dict[str, str]:
        fields = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "status.podIP": self.ip,
            "spec.serviceAccountName": self.service_account,
        }
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "HOSTNAME": self.name,
            "PYTHONUNBUFFERED": "1",
        }
        for var in container.env:
            if var.value_from is not None and var.value_from.field_ref is not None:
                env[var.name] = fields.get(var.value_from.field_ref.field_path, "")
            else:
                env[var.name] = var.value or ""
        return env

    # --- readiness and liveness ----------------------------------------------------------

    async def _readiness_loop(self, ctx: PodContext) -> None:
        states = {
            c.name: ProbeState(c.readiness_probe, initially=False)
            for c in self.spec.containers
            if c.readiness_probe is not None
        }
        started = time.monotonic()
        while self.phase == "Running":
            results = []
            for container in self.spec.containers:
                process = self.containers[container.name]
                probe = container.readiness_probe
                if probe is None:
                    results.append(process.running)
                    continue
                if time.monotonic() - started < probe.initial_delay_seconds:
                    results.append(False)
                    continue
                ok = process.running and await run_probe(
                    probe,
                    container,
                    self.netns,
                    lambda argv: ctx.network.exec_argv(self.netns, argv),
                )
                results.append(states[container.name].record(ok))
            ready = all(results) and self.phase == "Running"
            if ready != self.ready:
                self.ready = ready
                self.ready_since = time.monotonic() if ready else None
                log.info("pod ready pod=%s/%s ready=%s", self.namespace, self.name, ready)
                await ctx.endpoints_changed()
            period = min(
                (
                    c.readiness_probe.period_seconds
                    for c in self.spec.containers
                    if c.readiness_probe
                ),
                default=1,
            )
            await asyncio.sleep(min(float(period), 1.0) if not self.ready else float(period))

    async def _liveness_loop(self, ctx: PodContext, container: Container) -> None:
        probe = container.liveness_probe
        assert probe is not None
        state = ProbeState(probe, initially=True)
        await asyncio.sleep(float(probe.initial_delay_seconds))
        while self.phase == "Running":
            process = self.containers[container.name]
            ok = await run_probe(
                probe, container, self.netns, lambda argv: ctx.network.exec_argv(self.netns, argv)
            )
            if not state.record(ok) and process.running:
                log.info(
                    "pod liveness_failed pod=%s/%s container=%s",
                    self.namespace,
                    self.name,
                    container.name,
                )
                await process.kill_current()
                state = ProbeState(probe, initially=True)
            await asyncio.sleep(float(probe.period_seconds))

    # --- stop --------------------------------------------------------------------------

    async def stop(self, ctx: PodContext) -> None:
        """Leave the endpoints (pushed), let inbound requests finish, SIGTERM containers,
        drain the sidecar, clean up."""
        deadline = time.monotonic() + float(self.spec.termination_grace_period_seconds)
        was_ready = self.ready
        self.phase = "Terminating"
        self.ready = False
        for task in self._tasks:
            task.cancel()
        if was_ready:
            await ctx.endpoints_changed()
            if self.agent is not None and self.agent.running:
                await self._wait_inbound_idle(deadline)
        grace = max(deadline - time.monotonic(), MIN_STOP_GRACE)
        await asyncio.gather(*(p.stop(grace) for p in self.containers.values()))
        if self.agent is not None:
            await self.agent.stop(grace=30.0)
        if self.netns:
            await ctx.network.remove_pod(self.key)
        self.phase = "Terminated"

    async def _wait_inbound_idle(self, deadline: float) -> None:
        """Until the sidecar has had no inbound request in flight for INBOUND_QUIET seconds.

        The proxies no longer send new requests here, but those they sent just before
        must be answered by the app: killing it now would fail them (callers without
        retries would see the error). Bounded by the termination grace period."""
        quiet_since: float | None = None
        while (now := time.monotonic()) < deadline:
            try:
                active = await self._inbound_requests_active()
            except (OSError, TimeoutError, ConnectionError, ValueError):
                return  # Envoy's admin API is not answering: it serves nothing either
            if active:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= INBOUND_QUIET:
                return
            await asyncio.sleep(INBOUND_POLL)
        log.info("pod inbound_still_active pod=%s/%s", self.namespace, self.name)

    async def _inbound_requests_active(self) -> int:
        status, text = await http_get_text_in_netns(
            self.netns, "127.0.0.1", ENVOY_ADMIN_PORT, "/stats?filter=upstream_rq_active$"
        )
        if status != 200:
            raise ConnectionError(f"envoy admin answered {status}")
        total = 0
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if name.startswith(_INBOUND_ACTIVE) and name.endswith(".upstream_rq_active"):
                total += int(value)
        return total
