"""The node runtime's control loop: Deployments -> running pods -> pod status reports.

A level-triggered loop (woken by watch events, and every second to make progress on
rollouts and to replace pods that failed): for each Deployment, plan with the rolling
update arithmetic of `rollout`, start and stop pods. What should run comes from the
ObjectCache (isthmusd's objects, as watched); what runs is reported back as Pod objects,
from which isthmusd derives the endpoints. Nothing here needs isthmusd to be up: without
it, pods keep running and being supervised, and reports wait until it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from isthmus.api.core import Deployment, PodTemplateSpec
from isthmus.model.snapshot import TLS_MODE_LABEL
from isthmus.runtime.cache import ObjectCache
from isthmus.runtime.naming import pod_name, pod_template_hash
from isthmus.runtime.pod import INJECT_ANNOTATION, Pod, PodContext
from isthmus.runtime.rollout import PodState, plan_rollout

log = logging.getLogger("isthmus.runtime")

RESYNC_PERIOD = 1.0
ACTIVE_PHASES = ("Pending", "Running")


def deployment_template_hash(deployment: Deployment) -> str:
    """The pod-template-hash of a Deployment's current template (its up-to-date pods)."""
    template = deployment.spec.template.model_dump(mode="json", by_alias=True, exclude_none=True)
    return pod_template_hash(template)


def injected(template: PodTemplateSpec, inject_ns: bool) -> bool:
    """Whether the pod gets isthmus-agent and Envoy: unless its namespace is labelled
    `istio-injection=disabled` or its template says `sidecar.istio.io/inject: "false"`;
    a gateway pod always (its istio-proxy container is the agent, runtime.pod)."""
    if template.spec.gateway:
        return True
    annotations = template.metadata.annotations if template.metadata else {}
    return inject_ns and annotations.get(INJECT_ANNOTATION, "true").lower() != "false"


def pod_labels(template: PodTemplateSpec, template_hash: str, inject: bool) -> dict[str, str]:
    """The template's labels, the pod-template-hash and, with a sidecar, Istio's
    `security.istio.io/tlsMode: istio`: clients send mTLS to endpoints that carry it. Not
    on a gateway pod (nor does Istio's gateway template add it): clients reach a
    gateway's ports in plaintext."""
    labels = dict(template.metadata.labels) if template.metadata else {}
    labels["pod-template-hash"] = template_hash
    if inject and not template.spec.gateway:
        labels[TLS_MODE_LABEL] = "istio"
    return labels


@dataclass
class Runtime:
    cache: ObjectCache
    context: PodContext
    # Fetch hosts entries for the pods' namespaces again: None if that failed (retry
    # later), else whether they changed (only then are the pods' hosts files rewritten).
    refresh_hosts: Callable[[], Awaitable[bool | None]]
    pods: dict[str, Pod] = field(default_factory=dict)  # by Pod.key
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _starting: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _stopping: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _hosts_dirty: bool = True
    _closed: bool = False

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

    # --- adoption ------------------------------------------------------------------------

    async def adopt(self) -> None:
        """Take over the pods a previous node runtime left running (from their records).

        Returns once every pod's current state is known (so the first report is true);
        pods whose shim died are brought up again in the background."""
        records = await asyncio.to_thread(self.context.records.load_all)
        pods = []
        for record in records:
            try:
                pods.append(Pod.from_record(record))
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("runtime record_invalid error=%r", str(exc))
        for pod in pods:
            self.pods[pod.key] = pod
        relaunch = await asyncio.gather(*(self._reattach(pod) for pod in pods))
        for pod, needs_shim in zip(pods, relaunch, strict=True):
            if pod.phase == "Running":
                self._starting[pod.key] = asyncio.create_task(
                    self._resume(pod, needs_shim), name=f"adopt-{pod.key}"
                )
        if pods:
            log.info("runtime adopted pods=%d new_shims=%d", len(pods), sum(relaunch))

    async def _reattach(self, pod: Pod) -> bool:
        try:
            return await pod.reattach(self.context)
        except Exception as exc:
            log.warning("runtime pod_lost pod=%s error=%r", pod.key, str(exc))
            pod.phase = "Failed"
            return False

    async def _resume(self, pod: Pod, relaunch: bool) -> None:
        try:
            await pod.resume(self.context, relaunch)
        except Exception as exc:
            log.warning("runtime pod_adopt_failed pod=%s error=%r", pod.key, str(exc))
            pod.phase = "Failed"
        finally:
            self._starting.pop(pod.key, None)
            self._wake.set()
        await self.context.report(False)

    # --- desired state -----------------------------------------------------------------

    async def reconcile(self) -> None:
        for pod in list(self.pods.values()):
            # Failed, or adopted half-stopped, or `isthmus delete pod` marked it.
            if pod.phase in ("Failed", "Terminating") or self.cache.deletion_requested(
                pod.namespace, pod.name
            ):
                self._stop(pod)
        if self.cache.synced:
            # Only a full listing says what should run; until then, supervise what runs.
            deployments = self.cache.deployments()
            disabled = self.cache.injection_disabled_namespaces()
            wanted: set[tuple[str, str]] = set()
            for deployment in deployments:
                ns = deployment.metadata.namespace or "default"
                wanted.add((ns, deployment.metadata.name))
                self._reconcile_deployment(deployment, ns, inject_ns=ns not in disabled)
            for pod in list(self.pods.values()):
                if (pod.namespace, pod.deployment) not in wanted:
                    self._stop(pod)
        if self._hosts_dirty:
            self._hosts_dirty = False
            changed = await self.refresh_hosts()
            if changed is None:
                self._hosts_dirty = True
            elif changed:
                await self._write_hosts()

    def _reconcile_deployment(self, deployment: Deployment, ns: str, inject_ns: bool) -> None:
        spec = deployment.spec
        template_hash = deployment_template_hash(deployment)
        mine = [
            p
            for p in self.pods.values()
            if p.namespace == ns
            and p.deployment == deployment.metadata.name
            and p.phase in ACTIVE_PHASES
            and p.key not in self._stopping
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
        template = spec.template
        annotations = dict(template.metadata.annotations) if template.metadata else {}
        inject = injected(template, inject_ns)
        for _ in range(plan.create):
            pod = Pod(
                name=pod_name(deployment.metadata.name, template_hash),
                namespace=ns,
                deployment=deployment.metadata.name,
                template_hash=template_hash,
                labels=pod_labels(template, template_hash, inject),
                annotations=annotations,
                spec=spec.template.spec,
                inject=inject,
            )
            self.pods[pod.key] = pod
            self._starting[pod.key] = asyncio.create_task(self._start(pod), name=f"start-{pod.key}")

    async def _start(self, pod: Pod) -> None:
        log.info("runtime pod_starting pod=%s/%s sidecar=%s", pod.namespace, pod.name, pod.inject)
        try:
            await self.context.report(False)  # Pending, so `get pods` shows it at once
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
        await self.context.report(False)

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
            self.context.records.remove(pod.key)
        finally:
            self.pods.pop(pod.key, None)
            self._stopping.pop(pod.key, None)
            log.info("runtime pod_stopped pod=%s/%s", pod.namespace, pod.name)
        await self.context.report(False)

    # --- hosts files -----------------------------------------------------------------------

    def namespaces(self) -> set[str]:
        """Namespaces whose hosts entries the node needs: of its pods and Deployments."""
        found = {p.namespace for p in self.pods.values()}
        if self.cache.synced:
            found |= {d.metadata.namespace or "default" for d in self.cache.deployments()}
        return found

    def hosts_changed(self) -> None:
        """Services changed, or endpoints did (headless Services resolve to pods)."""
        self._hosts_dirty = True
        self._wake.set()

    async def _write_hosts(self) -> None:
        for pod in list(self.pods.values()):
            if pod.netns and pod.phase == "Running":
                try:
                    await self.context.network.write_hosts(
                        pod.key, self.context.hosts_for(pod.namespace)
                    )
                except Exception as exc:
                    log.warning("runtime hosts_failed pod=%s error=%r", pod.key, str(exc))

    # --- shutdown ----------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop every pod (leaving the endpoints first): `isthmus down`."""
        self._closed = True
        self._wake.set()
        for pod in list(self.pods.values()):
            self._stop(pod)
        if self._stopping:
            await asyncio.gather(*self._stopping.values(), return_exceptions=True)

    async def detach(self) -> None:
        """Stop supervising without touching a pod: a node runtime restart or upgrade.

        The pods' shims keep their processes running and restarting; the next node
        runtime adopts them from their records."""
        self._closed = True
        self._wake.set()
        tasks = [*self._starting.values(), *self._stopping.values()]
        for pod in self.pods.values():
            tasks += pod._tasks
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for pod in self.pods.values():
            if pod.phase in ACTIVE_PHASES:
                pod.save(self.context)
