"""Plugs the local runtime (pods in network namespaces) into isthmusd.

The runtime publishes workloads to the mesh controller and waits until every connected
proxy has ACKed the change, so that a pod leaves the endpoints everywhere before it is
sent SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from isthmus.daemon.mesh import MeshController
from isthmus.daemon.paths import MeshHome
from isthmus.model.types import Workload
from isthmus.netns import MeshNetwork, NetworkConfig, require_tools
from isthmus.runtime.controller import Runtime
from isthmus.runtime.networking import NetnsPodNetworking
from isthmus.runtime.pod import Pod, PodContext
from isthmus.store import ResourceStore
from isthmus.xds import AdsServer

log = logging.getLogger("isthmus.daemon")

SYNC_TIMEOUT = 5.0
# Sidecar work dirs live where Envoy's uid 1337 can reach them whatever the home's
# permissions are (as Istio keeps them under /etc/istio/proxy in the pod).
PROXY_RUN_DIR = Path("/run/isthmus")


def proxy_dir(mesh: str) -> Path:
    return PROXY_RUN_DIR / mesh


@dataclass
class RuntimeHandle:
    runtime: Runtime
    network: MeshNetwork
    task: asyncio.Task[None]

    async def shutdown(self) -> None:
        await self.runtime.shutdown()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.network.teardown()
        shutil.rmtree(self.runtime.context.proxy_dir, ignore_errors=True)


def pod_summary(pod: Pod) -> dict[str, object]:
    """What `isthmus get pods` shows and what exec/logs need to find a pod."""
    restarts = sum(p.restarts for p in pod.containers.values())
    return {
        "name": pod.name,
        "namespace": pod.namespace,
        "deployment": pod.deployment,
        "ip": pod.ip,
        "netns": pod.netns,
        "phase": pod.phase,
        "ready": pod.ready,
        "sidecar": pod.inject,
        "containers": [c.name for c in pod.spec.containers],
        "ready_containers": sum(p.running for p in pod.containers.values())
        + (1 if pod.agent and pod.agent.running else 0),
        "total_containers": len(pod.spec.containers) + (1 if pod.inject else 0),
        "restarts": restarts,
        "created": pod.created,
        "labels": pod.labels,
        "logs": str(pod.log_dir_path) if pod.log_dir_path else "",
    }


async def wait_proxies_synced(ads: AdsServer, timeout: float = SYNC_TIMEOUT) -> None:
    """Until the debounced push went out and every proxy ACKed (or NACKed) it.

    Gives up after `timeout` with a warning, never an error: a pod that is stopping
    must go on stopping (and a readiness change must still be recorded) even when a
    proxy is slow to answer."""
    deadline = time.monotonic() + timeout
    try:
        await ads.wait_quiet(timeout)
    except TimeoutError:
        log.warning("daemon push_not_sent timeout=%.1f", timeout)
        return
    while time.monotonic() < deadline:
        if all(not t.pending for s in ads.status() for t in s.types.values()):
            return
        await asyncio.sleep(0.02)
    log.warning("daemon proxies_not_synced timeout=%.1f", timeout)


async def start_runtime(
    home: MeshHome,
    network_config: NetworkConfig,
    store: ResourceStore,
    controller: MeshController,
    ads: AdsServer,
    xds_socket: str,
) -> RuntimeHandle:
    require_tools()
    network = MeshNetwork(network_config)
    await network.teardown()  # leftovers of a crashed run
    await network.ensure()
    sidecars = proxy_dir(network_config.mesh)
    shutil.rmtree(sidecars, ignore_errors=True)
    sidecars.mkdir(parents=True, mode=0o755)
    os.chmod(PROXY_RUN_DIR, 0o755)

    async def publish(workloads: list[Workload]) -> None:
        controller.set_workloads(workloads)
        ads.request_push("workloads")
        await wait_proxies_synced(ads)

    runtime: Runtime

    def hosts_for(namespace: str) -> dict[str, list[str]]:
        return {ip: list(names) for ip, names in runtime.hosts_for(namespace).items()}

    async def endpoints_changed() -> None:
        await runtime.endpoints_changed()

    context = PodContext(
        network=NetnsPodNetworking(network),
        state_dir=home.root,
        proxy_dir=sidecars,
        xds_socket=xds_socket,
        hosts_for=hosts_for,
        endpoints_changed=endpoints_changed,
    )
    runtime = Runtime(store=store, context=context, publish=publish, mesh=lambda: controller.mesh)
    task = asyncio.create_task(runtime.run(), name="runtime")
    log.info(
        "daemon runtime_started mesh=%s pod_cidr=%s service_cidr=%s",
        network_config.mesh,
        network_config.pod_cidr,
        network_config.service_cidr,
    )
    return RuntimeHandle(runtime, network, task)
