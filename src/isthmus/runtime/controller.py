"""The runtime's control loop: Deployments in the store -> running pods -> workloads.

A level-triggered loop (woken by store events, and every second to make progress on
rollouts and to replace pods that failed): for each Deployment, plan with the rolling
update arithmetic of `rollout`, start and stop pods, and publish the set of workloads
(ready pods are endpoints) to the mesh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from isthmus.api.core import Deployment, Namespace
from isthmus.model.hosts import kubernetes_alt_names
from isthmus.model.objects import ParsedObjects
from isthmus.model.snapshot import MeshSnapshot
from isthmus.model.types import Resolution, Workload
from isthmus.runtime.naming import pod_name, pod_template_hash
from isthmus.runtime.pod import INJECT_ANNOTATION, Pod, PodContext
from isthmus.runtime.rollout import PodState, plan_rollout
from isthmus.store import ResourceStore

log = logging.getLogger("isthmus.runtime")

INJECTION_LABEL = "istio-injection"
RESYNC_PERIOD = 1.0


def deployment_template_hash(deployment: Deployment) -> str:
    """The pod-template-hash of a Deployment's current template (its up-to-date pods)."""
    template = deployment.spec.template.model_dump(mode="json", by_alias=True, exclude_none=True)
    return pod_template_hash(template)


@dataclass
class Runtime:
    store: ResourceStore
    context: PodContext
    publish: Callable[[list[Workload]], Awaitable[None]]
    mesh: Callable[[], MeshSnapshot]
    pods: dict[str, Pod] = field(default_factory=dict)  # by Pod.key
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _starting: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _stopping: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _hosts_dirty: bool = True
    _closed: bool = False
    _objects: ParsedObjects = field(init=False)

    def __post_init__(self) -> None:
        self._objects = ParsedObjects(self.store)

    def notify(self, hosts_changed: bool = False) -> None:
        self._hosts_dirty = self._hosts_dirty or hosts_changed
        self._wake.set()

    async def run(self) -> None:
        while not self._closed:
            try:
                await self.reconcile()
            except Exception:  # the loop must survive one bad reconcile
                log.exception("runtime reconcile_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RESYNC_PERIOD)
            self._wake.clear()

    # --- desired state -----------------------------------------------------------------

    def _deployments(self) -> list[Deployment]:
        out = []
        for _, resource in self._objects.list(kind="Deployment"):
            assert isinstance(resource, Deployment)
            out.append(resource)
        return out

    def _injection_disabled_namespaces(self) -> set[str]:
        out = set()
        for _, ns in self._objects.list(kind="Namespace"):
            assert isinstance(ns, Namespace)
            if ns.metadata.labels.get(INJECTION_LABEL) == "disabled":
                out.add(ns.metadata.name)
        return out

    async def reconcile(self) -> None:
        deployments = self._deployments()
        disabled = self._injection_disabled_namespaces()
        wanted: set[tuple[str, str]] = set()
        for deployment in deployments:
            ns = deployment.metadata.namespace or "default"
            wanted.add((ns, deployment.metadata.name))
            self._reconcile_deployment(deployment, ns, inject_ns=ns not in disabled)
        for pod in list(self.pods.values()):
            if (pod.namespace, pod.deployment) not in wanted or pod.phase == "Failed":
                self._stop(pod)
        if self._hosts_dirty:
            self._hosts_dirty = False
            await self._refresh_hosts()

    def _reconcile_deployment(self, deployment: Deployment, ns: str, inject_ns: bool) -> None:
        spec = deployment.spec
        template_hash = deployment_template_hash(deployment)
        mine = [
            p
            for p in self.pods.values()
            if p.namespace == ns
            and p.deployment == deployment.metadata.name
            and p.phase in ("Pending", "Running")
        ]
        states = [
            PodState(p.name, p.template_hash, p.available(spec.min_ready_seconds), p.created)
            for p in mine
        ]
        strategy = spec.strategy
        rolling = strategy.rolling_update if strategy and strategy.rolling_update else None
        plan = plan_rollout(
            spec.replicas,
            template_hash,
            states,
            strategy=strategy.type if strategy else "RollingUpdate",
            max_surge=rolling.max_surge if rolling else "25%",
            max_unavailable=rolling.max_unavailable if rolling else "25%",
        )
        by_name = {p.name: p for p in mine}
        for name in plan.delete:
            self._stop(by_name[name])
        meta = spec.template.metadata
        labels = dict(meta.labels) if meta else {}
        annotations = dict(meta.annotations) if meta else {}
        inject = inject_ns and annotations.get(INJECT_ANNOTATION, "true").lower() != "false"
        for _ in range(plan.create):
            labels_with_hash = {**labels, "pod-template-hash": template_hash}
            pod = Pod(
                name=pod_name(deployment.metadata.name, template_hash),
                namespace=ns,
                deployment=deployment.metadata.name,
                template_hash=template_hash,
                labels=labels_with_hash,
                annotations=annotations,
                spec=spec.template.spec,
                inject=inject,
            )
            self.pods[pod.key] = pod
            self._starting[pod.key] = asyncio.create_task(self._start(pod), name=f"start-{pod.key}")

    def delete_pod(self, namespace: str, name: str) -> asyncio.Task[None] | None:
        """Stop one pod gracefully (`kubectl delete pod`); its Deployment starts a replacement.

        Returns the stop task (None if there is no such pod)."""
        pod = self.pods.get(f"{namespace}.{name}")
        if pod is None:
            return None
        self._stop(pod)
        self._wake.set()
        return self._stopping.get(pod.key)

    async def _start(self, pod: Pod) -> None:
        log.info("runtime pod_starting pod=%s/%s sidecar=%s", pod.namespace, pod.name, pod.inject)
        try:
            await pod.start(self.context)
        except Exception as exc:
            log.warning(
                "runtime pod_start_failed pod=%s/%s error=%r",
                pod.namespace,
                pod.name,
                str(exc),
            )
            pod.phase = "Failed"
            self._wake.set()
        finally:
            self._starting.pop(pod.key, None)

    def _stop(self, pod: Pod) -> None:
        if pod.key in self._stopping:
            return
        starting = self._starting.pop(pod.key, None)
        self._stopping[pod.key] = asyncio.create_task(
            self._stop_pod(pod, starting), name=f"stop-{pod.key}"
        )

    async def _stop_pod(self, pod: Pod, starting: asyncio.Task[None] | None) -> None:
        if starting is not None:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        try:
            await pod.stop(self.context)
        except Exception:
            log.exception("runtime pod_stop_failed pod=%s/%s", pod.namespace, pod.name)
        finally:
            self.pods.pop(pod.key, None)
            self._stopping.pop(pod.key, None)
            log.info("runtime pod_stopped pod=%s/%s", pod.namespace, pod.name)

    # --- what the mesh sees ------------------------------------------------------------

    def workloads(self) -> list[Workload]:
        return [p.workload() for p in self.pods.values() if p.ip]

    async def endpoints_changed(self) -> None:
        await self.publish(self.workloads())
        self._hosts_dirty = True  # headless services resolve to ready pods
        self._wake.set()

    def hosts_for(self, namespace: str) -> Mapping[str, Sequence[str]]:
        """/etc/hosts entries for a pod in `namespace`: service VIPs and headless pods."""
        mesh = self.mesh()
        entries: dict[str, list[str]] = {}
        for svc in mesh.services.visible_to(namespace):
            if svc.source_kind != "Service":
                continue
            names = kubernetes_alt_names(
                svc.hostname, svc.namespace, namespace, mesh.config.domain_suffix
            )
            if svc.address:
                entries.setdefault(svc.address, []).extend(names)
            elif svc.resolution is Resolution.PASSTHROUGH and svc.ports:
                for endpoint in mesh.endpoints.of(svc.hostname, svc.ports[0].port):
                    if endpoint.ready:
                        entries.setdefault(endpoint.address, []).extend(names)
        return entries

    async def _refresh_hosts(self) -> None:
        for pod in list(self.pods.values()):
            if pod.netns and pod.phase == "Running":
                with contextlib.suppress(Exception):
                    await self.context.network.write_hosts(pod.key, self.hosts_for(pod.namespace))

    async def shutdown(self) -> None:
        self._closed = True
        self._wake.set()
        for pod in list(self.pods.values()):
            self._stop(pod)
        if self._stopping:
            await asyncio.gather(*self._stopping.values(), return_exceptions=True)
