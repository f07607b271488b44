"""isthmus-node: the node runtime (the kubelet's job) as its own process.

It claims the mesh name, makes sure the mesh's node network exists, adopts the pods a
previous node runtime left running (their shims kept them alive), then runs what isthmusd
says should run and reports what runs. It talks to isthmusd only through isthmusd's API,
and serves its own small control API on `$ISTHMUS_HOME/node.sock`:

GET  /v1/status     pid, mesh, pods, and whether isthmusd is reachable
POST /v1/shutdown   {"teardown": false}: stop supervising and exit, pods keep running
                    (restart, upgrade); {"teardown": true}: stop every pod and remove
                    everything the mesh made (`isthmus down`)

SIGTERM and SIGINT detach as well: only `down` stops pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from isthmus.home import MeshHome
from isthmus.netns import MeshNetwork, NetworkConfig, names, require_tools
from isthmus.netns.host_netns import ensure_host_netns, release_host_netns
from isthmus.node.apiclient import ApiClient
from isthmus.node.hosts import HostsTable
from isthmus.node.informer import Informer
from isthmus.node.ownership import LOCK_DIR, Claim, claim
from isthmus.node.reporter import StatusReporter
from isthmus.runtime.cache import ObjectCache
from isthmus.runtime.controller import Runtime
from isthmus.runtime.networking import NetnsPodNetworking
from isthmus.runtime.pod import PodContext
from isthmus.runtime.records import PodRecords

log = logging.getLogger("isthmus.node")

# Sidecar work dirs live where Envoy's uid 1337 can reach them whatever the home's
# permissions are (as Istio keeps them under /etc/istio/proxy in the pod).
PROXY_RUN_DIR = LOCK_DIR


def proxy_dir(mesh: str) -> Path:
    return PROXY_RUN_DIR / mesh


def shim_dir(mesh: str) -> Path:
    """Root-only: the pods' shim sockets (whoever connects can stop a pod)."""
    return proxy_dir(mesh) / "shims"


@dataclass(frozen=True)
class NodeOptions:
    mesh: str = "isthmus"
    pod_cidr: str = "10.44.0.0/16"
    service_cidr: str = "10.96.0.0/16"
    trust_domain: str = "cluster.local"
    root_namespace: str = "istio-system"  # addons' pods (runtime.addons) run only here


class _Shutdown:
    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.teardown = False

    def request(self, teardown: bool) -> None:
        self.teardown = self.teardown or teardown
        self.event.set()


async def run_node(home: MeshHome, options: NodeOptions) -> int:
    """Run until told to stop; 0 after a clean stop."""
    require_tools()
    config = NetworkConfig(options.mesh, options.pod_cidr, options.service_cidr)
    home.root.mkdir(parents=True, exist_ok=True)
    held = claim(options.mesh, home.root)  # raises MeshOwned: another home runs this mesh
    if held.previous is not None:
        log.warning(
            "node taking_over_stale_mesh mesh=%s previous_home=%s", options.mesh, held.previous.home
        )
    shutdown = _Shutdown()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown.request, False)
    try:
        return await _serve(home, options, config, held, shutdown)
    finally:
        held.release(remove=shutdown.teardown)


async def _serve(
    home: MeshHome, options: NodeOptions, config: NetworkConfig, held: Claim, shutdown: _Shutdown
) -> int:
    network = MeshNetwork(config)
    records = PodRecords(home.node_state / "pods")
    if held.previous is not None or (not held.adopted and not records.exist()):
        # Nothing of ours to adopt: whatever carries the mesh's name is a crashed run's.
        await network.teardown()
        release_host_netns(home.host_netns)
    await network.ensure()
    sidecars = proxy_dir(options.mesh)
    sidecars.mkdir(parents=True, exist_ok=True, mode=0o755)
    os.chmod(PROXY_RUN_DIR, 0o755)
    shims = shim_dir(options.mesh)
    shims.mkdir(exist_ok=True, mode=0o700)

    api = ApiClient(home.socket)
    cache = ObjectCache()
    runtime: Runtime
    node_name = names.node_netns(options.mesh)

    def pod_documents() -> list[dict[str, object]]:
        return [
            p.document(node_name, context)
            for p in runtime.pods.values()
            if p.phase not in ("Terminated", "Failed")
        ]

    reporter = StatusReporter(api, node_name, pod_documents)
    hosts = HostsTable(api, lambda: runtime.namespaces())
    context = PodContext(
        network=NetnsPodNetworking(network),
        state_dir=home.root,
        proxy_dir=sidecars,
        shim_dir=shims,
        xds_socket=str(home.root / "xds.sock"),
        zipkin_socket=str(home.zipkin_socket),
        hosts_for=hosts.entries,
        report=reporter.report,
        records=records,
        pod_token=api.pod_token,
        trust_domain=options.trust_domain,
        keep_fds=(held.fd,),
        root_namespace=options.root_namespace,
        host_netns=functools.partial(ensure_host_netns, home.host_netns),
    )
    runtime = Runtime(cache=cache, context=context, refresh_hosts=hosts.refresh)
    await runtime.adopt()
    await _remove_unowned(network, runtime)
    informer = Informer(api, cache, runtime, reporter)
    tasks = [
        asyncio.create_task(runtime.run(), name="runtime"),
        asyncio.create_task(reporter.run(), name="reporter"),
        asyncio.create_task(informer.run(), name="informer"),
    ]
    control = await _start_control(home, options, runtime, reporter, informer, shutdown)
    (home.root / "node.pid").write_text(str(os.getpid()))
    log.info(
        "node started mesh=%s home=%s adopted=%d pod_cidr=%s service_cidr=%s",
        options.mesh,
        home.root,
        len(runtime.pods),
        config.pod_cidr,
        config.service_cidr,
    )
    try:
        await shutdown.event.wait()
    finally:
        if shutdown.teardown:
            log.info("node tearing_down mesh=%s pods=%d", options.mesh, len(runtime.pods))
            await runtime.shutdown()  # pods leave the endpoints while isthmusd still serves
            await reporter.report(wait=True)
        else:
            log.info("node detaching mesh=%s pods=%d", options.mesh, len(runtime.pods))
            await runtime.detach()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await control.cleanup()
        await api.close()
        if shutdown.teardown:
            await network.teardown()
            release_host_netns(home.host_netns)
            shutil.rmtree(sidecars, ignore_errors=True)
            shutil.rmtree(home.node_state, ignore_errors=True)
        (home.root / "node.pid").unlink(missing_ok=True)
        log.info("node stopped mesh=%s teardown=%s", options.mesh, shutdown.teardown)
    return 0


async def _remove_unowned(network: MeshNetwork, runtime: Runtime) -> None:
    """Pod namespaces no record names (a crash between creating one and recording it)."""
    known = set(runtime.pods)
    for pod in await network.pods():
        if pod.pod not in known:
            log.info("node removing_unowned_pod_network pod=%s", pod.pod)
            await network.remove_pod(pod.pod)


async def _start_control(
    home: MeshHome,
    options: NodeOptions,
    runtime: Runtime,
    reporter: StatusReporter,
    informer: Informer,
    shutdown: _Shutdown,
) -> web.AppRunner:
    async def status(_: web.Request) -> web.Response:
        pods = list(runtime.pods.values())
        return web.json_response(
            {
                "pid": os.getpid(),
                "mesh": options.mesh,
                "pods": len(pods),
                "ready": sum(p.ready for p in pods),
                "watching": informer.connected,
                "reporting": reporter.connected is True,
                "lastReport": reporter.last_success,
            }
        )

    async def stop(request: web.Request) -> web.Response:
        with contextlib.suppress(ValueError):
            payload = await request.json()
            shutdown.request(bool(isinstance(payload, dict) and payload.get("teardown")))
        shutdown.request(False)
        return web.json_response({"status": "stopping", "teardown": shutdown.teardown})

    app = web.Application()
    app.add_routes([web.get("/v1/status", status), web.post("/v1/shutdown", stop)])
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    home.node_socket.unlink(missing_ok=True)
    site = web.UnixSite(runner, str(home.node_socket))
    await site.start()
    os.chmod(home.node_socket, 0o600)
    return runner
