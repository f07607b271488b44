"""One pod: its network namespace, its shim, its sidecar (isthmus-agent + Envoy) and its
containers.

Lifecycle (as the kubelet with Istio's injection does it):
start: namespace + veth + hosts file, capture rules, the pod's shim (which owns every
process of the pod and outlives the node runtime), the agent; the application containers
start only once the sidecar is ready (holdApplicationUntilProxyStarts), each isolated from
isthmus and the host as its securityContext says (runtime.isolation); readiness (every
container's probe, and the sidecar's own readiness on 15021) then gates the pod's
endpoints.
adopt: a restarted node runtime picks the pod up from its record and its shim and goes on
where the previous one stopped; if the shim died (taking the pod's processes with it),
a new shim restarts them in the same namespace, and the restarts are counted.
stop: the pod leaves the endpoints first and the change is pushed to every proxy, then
the requests already on their way in are let finish (the sidecar's inbound has had none
in flight for a moment), then its containers get SIGTERM (SIGKILL once
terminationGracePeriodSeconds, counted from the start of the stop, ran out), then the
agent drains Envoy, then the shim exits and the namespace is removed.

A gateway pod (Istio's gateway injection: its template's container `istio-proxy` has
`image: auto`) is its proxy alone: that container is the agent, started with `--router`
(Envoy as a router, as root), no application container runs and no capture rules are
applied; readiness is the agent's. Its annotation `isthmus.io/published-ports:
"HOSTPORT:PORT,..."` becomes the agent's `--publish` flags with `--host-netns` (the node
runtime's reference to the host's network namespace, netns.host_netns), so its Envoy
serves PORT on the host's 127.0.0.1:HOSTPORT too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from isthmus.api.core import Container, PodSpec, is_gateway_container
from isthmus.api.published_ports import (
    PUBLISHED_PORTS_ANNOTATION,
    PublishedPortError,
    parse_published_ports,
)
from isthmus.runtime.addons import addon_mount
from isthmus.runtime.isolation import container_argv
from isthmus.runtime.nsocket import http_get_in_netns, http_get_text_in_netns
from isthmus.runtime.probes import ProbeState, run_probe
from isthmus.runtime.records import PodRecords
from isthmus.runtime.scrape_annotations import scrape_annotations
from isthmus.runtime.security_context import (
    ContainerConfigError,
    ContainerSecurity,
    passwd_home,
    resolve_security,
)
from isthmus.runtime.shim_client import (
    ContainerState,
    ShimClient,
    ShimRefused,
    ShimUnavailable,
    launch_shim,
    shim_socket_path,
)
from isthmus.sidecar_status import read_envoy_restarts

log = logging.getLogger("isthmus.runtime")

SIDECAR = "istio-proxy"
INJECT_ANNOTATION = "sidecar.istio.io/inject"
PROXY_CONFIG_ANNOTATION = "proxy.istio.io/config"
NETNS_ANNOTATION = "isthmus.io/netns"
LOGS_ANNOTATION = "isthmus.io/logs"
READINESS_PORT = 15021
ENVOY_ADMIN_PORT = 15000
SIDECAR_READY_TIMEOUT = 60.0
SIDECAR_PROBE_TIMEOUT = 2.0
AGENT_STOP_GRACE = 30.0
# A request dispatched just before the proxies dropped this pod may still be on the wire;
# after this long with nothing in flight inbound, nothing more is coming.
INBOUND_QUIET = 0.2
INBOUND_POLL = 0.05
MIN_STOP_GRACE = 1.0  # SIGTERM always gets this long before SIGKILL
# Requests in flight to the app through the sidecar, of any inbound cluster.
_INBOUND_ACTIVE = ("cluster.inbound|", "cluster.InboundPassthroughCluster.")
RECORD_VERSION = 1


class PodLost(RuntimeError):
    """An adopted pod can not be continued (its namespace is gone)."""


class PodNetworking(Protocol):
    """What a pod needs from isthmus.netns (MeshNetwork and friends)."""

    async def add_pod(self, pod: str) -> tuple[str, str]:
        """Create the pod's namespace; returns (netns name, pod IP)."""
        ...

    async def remove_pod(self, pod: str) -> None: ...

    async def has_pod(self, pod: str) -> bool: ...

    async def write_hosts(self, pod: str, entries: Mapping[str, Sequence[str]]) -> None: ...

    async def apply_capture(
        self, pod: str, annotations: Mapping[str, str], ports: Sequence[int]
    ) -> None: ...

    def exec_argv(self, netns: str, argv: Sequence[str]) -> list[str]: ...


@dataclass
class PodContext:
    """What the runtime gives every pod."""

    network: PodNetworking
    state_dir: Path  # the mesh home: pod logs under pods/<namespace>/<name>
    proxy_dir: Path  # per-mesh directory uid 1337 can reach: the sidecars' work dirs
    shim_dir: Path  # root-only directory of the shims' sockets
    xds_socket: str
    hosts_for: Callable[[str], Mapping[str, Sequence[str]]]  # namespace -> hosts entries
    # Report pod status to the control plane; with wait=True, until proxies ACKed it.
    report: Callable[[bool], Awaitable[None]]
    records: PodRecords
    # The pod's CA token from isthmusd: (namespace, pod, uid, service account) -> token.
    pod_token: Callable[[str, str, str, str], Awaitable[str]]
    trust_domain: str = "cluster.local"
    keep_fds: tuple[int, ...] = ()  # held by every shim (the mesh's ownership claim)
    root_namespace: str = "istio-system"  # only its pods may have an addon's directory
    zipkin_socket: str | None = None  # isthmusd's span collector, spliced by each agent
    # Makes sure the reference to the host's network namespace exists and returns its path
    # (a gateway's published ports); None: this runtime publishes no ports.
    host_netns: Callable[[], Path] | None = None

    def hidden_paths(self) -> tuple[Path, ...]:
        """What no application container may see (runtime.isolation): the mesh home (CA,
        database, sockets, logs) and /run/isthmus (every mesh's sidecar work dirs and
        tokens, shim sockets, mesh locks)."""
        return (self.state_dir, self.proxy_dir.parent)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    ip: str = ""
    netns: str = ""
    phase: str = "Pending"
    ready: bool = False
    # Wall clock of the last readiness change (the Ready condition's lastTransitionTime).
    ready_changed_at: float | None = None
    # Restarts of each container before the current shim (a shim that died took them down).
    restart_base: dict[str, int] = field(default_factory=dict)
    shim: ShimClient | None = None
    states: dict[str, ContainerState] = field(default_factory=dict)  # the shim's last answer
    envoy_restarts: int = 0
    last_known_restarts: dict[str, int] = field(default_factory=dict)  # as last recorded
    refused: dict[str, str] = field(default_factory=dict)  # container -> why it can not start
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.namespace}.{self.name}"

    @property
    def service_account(self) -> str:
        return self.spec.service_account_name or "default"

    @property
    def gateway(self) -> bool:
        """A gateway pod: its istio-proxy container (the agent, as a router) is all it runs."""
        return self.spec.gateway

    @property
    def app_containers(self) -> list[Container]:
        """The containers run as application processes: all but a gateway's proxy."""
        return [c for c in self.spec.containers if not is_gateway_container(c)]

    @property
    def container_names(self) -> list[str]:
        names = [c.name for c in self.app_containers]
        return [*names, SIDECAR] if self.inject else names

    def available(self, min_ready_seconds: int) -> bool:
        """Kubernetes' availability: ready for at least minReadySeconds (rollouts count it)."""
        if not self.ready or self.ready_changed_at is None:
            return False
        return time.time() - self.ready_changed_at >= min_ready_seconds

    def log_dir(self, ctx: PodContext) -> Path:
        return ctx.state_dir / "pods" / self.namespace / self.name

    def shim_socket(self, ctx: PodContext) -> Path:
        return shim_socket_path(ctx.shim_dir, self.key)

    def container_ports(self) -> list[int]:
        return sorted(
            {p.container_port for c in self.app_containers for p in c.ports if p.protocol == "TCP"}
        )

    def restarts(self, name: str) -> int:
        """Kubernetes' restartCount of one container (the sidecar's includes Envoy's own)."""
        state = self.states.get(name)
        count = self.restart_base.get(name, 0) + (state.restarts if state else 0)
        return count + (self.envoy_restarts if name == SIDECAR else 0)

    def running(self, name: str) -> bool:
        state = self.states.get(name)
        return bool(state and state.running)

    # --- records -----------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "name": self.name,
            "namespace": self.namespace,
            "deployment": self.deployment,
            "templateHash": self.template_hash,
            "labels": self.labels,
            "annotations": self.annotations,
            "spec": self.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
            "inject": self.inject,
            "created": self.created,
            "uid": self.uid,
            "ip": self.ip,
            "netns": self.netns,
            "phase": self.phase,
            # Adopted pods keep their readiness until probed again: reporting them all
            # not ready first would empty their Services' endpoints for a moment.
            "ready": self.ready,
            "readyChangedAt": self.ready_changed_at,
            "restarts": {name: self.restarts(name) for name in self.container_names},
            "restartBase": self.restart_base,
        }

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> Pod:
        pod = cls(
            name=data["name"],
            namespace=data["namespace"],
            deployment=data["deployment"],
            template_hash=data["templateHash"],
            labels=dict(data["labels"]),
            annotations=dict(data["annotations"]),
            spec=PodSpec.model_validate(data["spec"]),
            inject=bool(data["inject"]),
            created=float(data["created"]),
            uid=str(data.get("uid") or uuid.uuid4()),
            ip=data.get("ip", ""),
            netns=data.get("netns", ""),
            phase=data.get("phase", "Pending"),
            restart_base={k: int(v) for k, v in data.get("restartBase", {}).items()},
            ready=bool(data.get("ready", False)),
            ready_changed_at=data.get("readyChangedAt"),
        )
        pod.last_known_restarts = {k: int(v) for k, v in data.get("restarts", {}).items()}
        return pod

    def save(self, ctx: PodContext) -> None:
        if self.phase != "Terminated":
            ctx.records.save(self.key, self.record())

    # --- what the control plane sees ---------------------------------------------------

    def document(self, node_name: str, ctx: PodContext) -> dict[str, Any]:
        """The pod as a Kubernetes v1 Pod object, status included (reported to isthmusd)."""
        ports = {
            c.name: [
                {"containerPort": p.container_port, "protocol": p.protocol}
                | ({"name": p.name} if p.name else {})
                for p in c.ports
            ]
            for c in self.spec.containers
        }
        containers = [{"name": name, "ports": ports.get(name, [])} for name in self.container_names]
        statuses = []
        for name in self.container_names:
            state = self.states.get(name)
            running = bool(state and state.running)
            if running and state is not None and state.started_at is not None:
                shown: dict[str, Any] = {"running": {"startedAt": _iso(state.started_at)}}
            elif name in self.refused:
                shown = {
                    "waiting": {
                        "reason": "CreateContainerConfigError",
                        "message": self.refused[name],
                    }
                }
            elif state is None:
                shown = {"waiting": {"reason": "ContainerCreating"}}
            else:
                shown = {"waiting": {"reason": "CrashLoopBackOff"}}
            statuses.append(
                {
                    "name": name,
                    "ready": running and self.ready,
                    "started": running,
                    "restartCount": self.restarts(name),
                    "state": shown,
                }
            )
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "uid": self.uid,
                "labels": dict(self.labels),
                "annotations": {
                    # The template's, as Kubernetes; with a sidecar, Istio's scrape annotations.
                    **scrape_annotations(self.annotations, self.inject).annotations,
                    NETNS_ANNOTATION: self.netns,
                    LOGS_ANNOTATION: str(self.log_dir(ctx)),
                },
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "Deployment", "name": self.deployment}
                ],
            },
            "spec": {
                "nodeName": node_name,
                "serviceAccountName": self.service_account,
                "containers": containers,
            },
            "status": {
                "phase": self.phase,
                "podIP": self.ip,
                "startTime": _iso(self.created),
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True" if self.ready else "False",
                        "lastTransitionTime": _iso(self.ready_changed_at or self.created),
                    }
                ],
                "containerStatuses": statuses,
            },
        }

    # --- start and adopt ---------------------------------------------------------------

    async def start(self, ctx: PodContext) -> None:
        self.save(ctx)
        self.netns, self.ip = await ctx.network.add_pod(self.key)
        self.save(ctx)
        await ctx.network.write_hosts(self.key, ctx.hosts_for(self.namespace))
        if self.inject and not self.gateway:  # a gateway's router captures nothing
            await ctx.network.apply_capture(self.key, self.annotations, self.container_ports())
        await self._launch_shim(ctx)
        await self._bring_up(ctx)

    async def reattach(self, ctx: PodContext) -> bool:
        """Find what a previous node runtime left: the shim and the state of the processes.

        Quick (no waiting on the pod), so the first status report after a node runtime
        restart already tells the truth. True if the shim is gone and must be replaced."""
        self.shim = ShimClient(self.shim_socket(ctx))
        if self.phase == "Terminating":
            return False  # the runtime finishes the stop
        if self.phase != "Running":  # interrupted while starting: replace it, do not guess
            raise PodLost(f"pod {self.namespace}/{self.name} was still starting ({self.phase})")
        if not self.netns or not await ctx.network.has_pod(self.key):
            raise PodLost(f"pod {self.namespace}/{self.name} has no network namespace any more")
        try:
            await self._refresh_status(ctx)
        except ShimUnavailable:
            log.warning("runtime shim_lost pod=%s/%s", self.namespace, self.name)
            self.ready = False  # its processes died with it
            self.ready_changed_at = time.time()
            return True
        return False

    async def resume(self, ctx: PodContext, relaunch: bool) -> None:
        """Continue supervising an adopted pod; start a new shim first if `relaunch`."""
        if relaunch:
            await self._relaunch_shim(ctx)
        await self._bring_up(ctx)
        log.info("runtime pod_adopted pod=%s/%s relaunched=%s", self.namespace, self.name, relaunch)

    async def _launch_shim(self, ctx: PodContext) -> None:
        self.shim = await launch_shim(
            self.key, self.shim_socket(ctx), self.log_dir(ctx) / "shim.log", ctx.keep_fds
        )
        self.states = {}

    async def _relaunch_shim(self, ctx: PodContext) -> None:
        """The shim died and its processes with it: count that as a restart of each
        container that had started, and bring the pod up again under a new shim."""
        if self.inject:
            self.envoy_restarts = await asyncio.to_thread(read_envoy_restarts, self.workdir(ctx))
        for name in self.container_names:
            total = self.last_known_restarts.get(name, 0)
            own = total - (self.envoy_restarts if name == SIDECAR else 0)
            self.restart_base[name] = max(own, 0) + (1 if self.phase == "Running" else 0)
        await self._launch_shim(ctx)
        self.save(ctx)

    async def _bring_up(self, ctx: PodContext) -> None:
        """Start whatever of the pod is not running in its shim yet: the sidecar first, the
        containers once it is ready. Idempotent, so adoption can call it at any step."""
        assert self.shim is not None
        status = await self.shim.status()
        if self.inject and SIDECAR not in status.containers:
            try:
                agent = self._agent_argv(ctx)
            except ContainerConfigError as exc:  # a gateway that may not publish its ports
                self._refuse(ctx, SIDECAR, exc)
            else:
                self.refused.pop(SIDECAR, None)
                await self._write_token(ctx)
                await self.shim.start(
                    SIDECAR,
                    ctx.network.exec_argv(self.netns, agent),
                    self.log_dir(ctx) / f"{SIDECAR}.log",
                )
        missing = [c for c in self.app_containers if c.name not in status.containers]
        if missing and self.inject:
            await self._wait_sidecar_ready()
        for container in missing:
            await self._start_container(ctx, container)
        self.phase = "Running"
        await self._refresh_status(ctx)
        self.save(ctx)
        self._tasks.append(asyncio.create_task(self._readiness_loop(ctx), name=f"ready-{self.key}"))
        for container in self.app_containers:
            if container.liveness_probe is not None and container.name not in self.refused:
                self._tasks.append(asyncio.create_task(self._liveness_loop(ctx, container)))

    async def _start_container(self, ctx: PodContext, container: Container) -> None:
        """Start an application container isolated from isthmus (runtime.isolation); one
        its securityContext forbids to start is not started, and its log says why."""
        assert self.shim is not None
        log_path = self.log_dir(ctx) / f"{container.name}.log"
        try:
            security = resolve_security(self.spec, container)
            exposed = self._exposed(ctx)
        except ContainerConfigError as exc:
            self._refuse(ctx, container.name, exc)
            return
        self.refused.pop(container.name, None)
        await self.shim.start(
            container.name,
            ctx.network.exec_argv(
                self.netns,
                container_argv(container, security, ctx.hidden_paths(), exposed=exposed),
            ),
            log_path,
            env=self._container_env(container, security),
            cwd="/",
        )

    def _refuse(self, ctx: PodContext, name: str, exc: ContainerConfigError) -> None:
        """A container that may not start: its status and its log say why."""
        message = f"{exc} (pod: {self.namespace}/{self.name}, container: {name})"
        self.refused[name] = message
        log.warning("pod container_refused pod=%s error=%r", self.key, message)
        log_path = self.log_dir(ctx) / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a") as out:
            out.write(f"isthmus: CreateContainerConfigError: {message}\n")

    def _probe_argv(self, ctx: PodContext, container: Container, argv: Sequence[str]) -> list[str]:
        """An exec probe runs as its container does: isolated, with its securityContext."""
        security = resolve_security(self.spec, container)
        return ctx.network.exec_argv(
            self.netns,
            container_argv(container, security, ctx.hidden_paths(), argv, self._exposed(ctx)),
        )

    def _exposed(self, ctx: PodContext) -> tuple[tuple[Path, Path], ...]:
        """The hidden directories given back to this pod's containers: an addon's own
        (runtime.addons); raises ContainerConfigError when it may not have it."""
        mount = addon_mount(ctx.state_dir, ctx.root_namespace, self.namespace, self.annotations)
        return () if mount is None else (mount,)

    async def _write_token(self, ctx: PodContext) -> None:
        """The agent's proof of identity for the CA: asked of isthmusd once per pod and kept
        (0600, root) in the sidecar's work dir, which Envoy's user can not read."""
        path = self.token_path(ctx)
        if path.exists():
            return
        token = await ctx.pod_token(self.namespace, self.name, self.uid, self.service_account)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_suffix(".new"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token)
        os.replace(path.with_suffix(".new"), path)

    def token_path(self, ctx: PodContext) -> Path:
        return self.workdir(ctx) / "istio-token"

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
            *(
                ("--router", *self._publish_args(ctx))
                if self.gateway
                else ("--inbound-ports", ",".join(str(p) for p in self.container_ports()))
            ),
            "--xds-socket",
            ctx.xds_socket,
            *(("--zipkin-socket", ctx.zipkin_socket) if ctx.zipkin_socket else ()),
            "--workdir",
            str(self.workdir(ctx)),
            "--token-file",
            str(self.token_path(ctx)),
            "--trust-domain",
            ctx.trust_domain,
        ]
        proxy_config = self.annotations.get(PROXY_CONFIG_ANNOTATION)
        if proxy_config:
            argv += ["--proxy-config", proxy_config]
        app_metrics = scrape_annotations(self.annotations, self.inject).agent_config
        if app_metrics:
            argv += ["--prometheus-annotations", app_metrics]
        return argv

    def _publish_args(self, ctx: PodContext) -> list[str]:
        """A gateway's `--publish HOSTPORT:PORT ... --host-netns PATH`, from its annotation;
        raises ContainerConfigError when the ports can not be published."""
        value = self.annotations.get(PUBLISHED_PORTS_ANNOTATION, "")
        try:
            ports = parse_published_ports(value)
        except PublishedPortError as error:
            message = f"annotation {PUBLISHED_PORTS_ANNOTATION}: {error}"
            raise ContainerConfigError(message) from None
        if not ports:
            return []
        if ctx.host_netns is None:
            raise ContainerConfigError(
                f"annotation {PUBLISHED_PORTS_ANNOTATION}: this runtime publishes no ports"
            )
        try:
            host_netns = ctx.host_netns()
        except OSError as error:
            raise ContainerConfigError(
                f"annotation {PUBLISHED_PORTS_ANNOTATION}: no reference to the host's network "
                f"namespace: {error}"
            ) from None
        argv = [arg for port in ports for arg in ("--publish", str(port))]
        return [*argv, "--host-netns", str(host_netns)]

    def workdir(self, ctx: PodContext) -> Path:
        return ctx.proxy_dir / self.key

    async def _sidecar_ready(self) -> bool:
        with contextlib.suppress(OSError, TimeoutError, ConnectionError):
            status = await http_get_in_netns(
                self.netns, "127.0.0.1", READINESS_PORT, "/healthz/ready", SIDECAR_PROBE_TIMEOUT
            )
            return status == 200
        return False

    async def _wait_sidecar_ready(self) -> None:
        deadline = time.monotonic() + SIDECAR_READY_TIMEOUT
        while time.monotonic() < deadline:
            if await self._sidecar_ready():
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(
            f"sidecar of pod {self.namespace}/{self.name} not ready in {SIDECAR_READY_TIMEOUT:.0f}s"
        )

    def _container_env(self, container: Container, security: ContainerSecurity) -> dict[str, str]:
        fields = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "status.podIP": self.ip,
            "spec.serviceAccountName": self.service_account,
        }
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root")
            if security.uid == 0
            else passwd_home(security.uid),
            "HOSTNAME": self.name,
            "PYTHONUNBUFFERED": "1",
        }
        for var in container.env:
            if var.value_from is not None and var.value_from.field_ref is not None:
                env[var.name] = fields.get(var.value_from.field_ref.field_path, "")
            else:
                env[var.name] = var.value or ""
        return env

    # --- status, readiness and liveness ------------------------------------------------

    async def _refresh_status(self, ctx: PodContext) -> bool:
        """Ask the shim (and the agent's status file) how the processes are; True if a
        restart count changed since the last answer."""
        assert self.shim is not None
        before = {name: self.restarts(name) for name in self.container_names}
        status = await self.shim.status()
        self.states = status.containers
        if self.inject:
            self.envoy_restarts = await asyncio.to_thread(read_envoy_restarts, self.workdir(ctx))
        after = {name: self.restarts(name) for name in self.container_names}
        if after != before:
            self.last_known_restarts = after
            self.save(ctx)
            return True
        return False

    async def _readiness_loop(self, ctx: PodContext) -> None:
        states = {
            c.name: ProbeState(c.readiness_probe, initially=False)
            for c in self.app_containers
            if c.readiness_probe is not None
        }
        started = time.monotonic()
        while self.phase == "Running":
            try:
                restarted = await self._refresh_status(ctx)
            except ShimUnavailable:
                await self._shim_died(ctx)
                return
            except ShimRefused as exc:
                log.warning("runtime shim_refused pod=%s error=%r", self.key, str(exc))
                restarted = False
            # The sidecar is a container too: its agent runs and Envoy answers ready on 15021.
            results = [self.running(SIDECAR) and await self._sidecar_ready()] if self.inject else []
            for container in self.app_containers:
                running = self.running(container.name)
                probe = container.readiness_probe
                if probe is None:
                    results.append(running)
                    continue
                if time.monotonic() - started < probe.initial_delay_seconds:
                    results.append(False)
                    continue
                ok = running and await run_probe(
                    probe,
                    container,
                    self.netns,
                    functools.partial(self._probe_argv, ctx, container),
                )
                results.append(states[container.name].record(ok))
            ready = all(results) and self.phase == "Running"
            if ready != self.ready:
                self.ready = ready
                self.ready_changed_at = time.time()
                self.save(ctx)
                log.info("pod ready pod=%s/%s ready=%s", self.namespace, self.name, ready)
                await ctx.report(True)
            elif restarted:
                await ctx.report(False)
            period = min(
                (
                    c.readiness_probe.period_seconds
                    for c in self.app_containers
                    if c.readiness_probe
                ),
                default=1,
            )
            await asyncio.sleep(min(float(period), 1.0) if not self.ready else float(period))

    async def _shim_died(self, ctx: PodContext) -> None:
        """The shim is gone, and the pod's processes with it: out of the endpoints, then a
        new shim restarts them."""
        log.warning("runtime shim_lost pod=%s/%s", self.namespace, self.name)
        if self.ready:
            self.ready = False
            self.ready_changed_at = time.time()
            await ctx.report(True)
        self._tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        await self._relaunch_shim(ctx)
        await self._bring_up(ctx)

    async def _liveness_loop(self, ctx: PodContext, container: Container) -> None:
        probe = container.liveness_probe
        assert probe is not None and self.shim is not None
        state = ProbeState(probe, initially=True)
        await asyncio.sleep(float(probe.initial_delay_seconds))
        while self.phase == "Running":
            ok = await run_probe(
                probe, container, self.netns, functools.partial(self._probe_argv, ctx, container)
            )
            if not state.record(ok) and self.running(container.name):
                log.info(
                    "pod liveness_failed pod=%s/%s container=%s",
                    self.namespace,
                    self.name,
                    container.name,
                )
                with contextlib.suppress(ShimUnavailable, ShimRefused):
                    await self.shim.kill(container.name)
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
        self.save(ctx)
        for task in self._tasks:
            task.cancel()
        if was_ready:
            await ctx.report(True)
            if self.inject and self.running(SIDECAR):
                await self._wait_inbound_idle(deadline)
        grace = max(deadline - time.monotonic(), MIN_STOP_GRACE)
        # A start interrupted while launching the shim left no client, but maybe a shim.
        shim = self.shim or ShimClient(self.shim_socket(ctx))
        if self.shim is not None or shim.socket_path.exists():
            try:
                await shim.stop([c.name for c in self.app_containers], grace)
                if self.inject:
                    await shim.stop([SIDECAR], AGENT_STOP_GRACE)
                await shim.exit()
            except (ShimUnavailable, ShimRefused) as exc:  # gone: so are its processes
                log.info("runtime shim_gone_at_stop pod=%s error=%r", self.key, str(exc))
        await ctx.network.remove_pod(self.key)  # also when a crash left it half made
        self.phase = "Terminated"
        ctx.records.remove(self.key)

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
