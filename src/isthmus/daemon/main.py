"""isthmusd: wires store, mesh controller, ADS server and the HTTP API in one asyncio loop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web

from isthmus.daemon.http_api import ApiHooks, build_app, start_unix_site
from isthmus.daemon.mesh import MESH_KINDS, MeshController
from isthmus.daemon.paths import MeshHome
from isthmus.daemon.runtime_api import runtime_routes
from isthmus.daemon.runtime_wiring import RuntimeHandle, pod_summary, start_runtime
from isthmus.model.snapshot import MeshConfig
from isthmus.netns import NetworkConfig
from isthmus.store.sqlite import SqliteStore
from isthmus.xds import AdsServer

log = logging.getLogger("isthmus.daemon")

RUNTIME_KINDS = frozenset({"Deployment", "Namespace", "Service", "ServiceEntry"})


@dataclass(frozen=True)
class DaemonOptions:
    debounce_after: float = 0.1
    debounce_max: float = 10.0
    xds_tcp: str | None = None  # "127.0.0.1:15010" to also serve ADS over TCP
    proxy_http_port: int | None = None
    trust_domain: str = "cluster.local"
    # The local runtime (pods in network namespaces); needs root, `ip` and iptables.
    runtime: bool = False
    mesh_name: str = "isthmus"
    pod_cidr: str = "10.44.0.0/16"
    service_cidr: str = "10.96.0.0/16"


def xds_socket(home: MeshHome) -> str:
    return str(home.root / "xds.sock")


async def run_daemon(
    home: MeshHome, options: DaemonOptions, stop: asyncio.Event | None = None
) -> None:
    """Run until SIGTERM/SIGINT (or `stop` is set); then stop serving and close the store."""
    home.root.mkdir(parents=True, exist_ok=True)
    home.check_socket_path()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    store = SqliteStore(home.db)
    config = MeshConfig(
        trust_domain=options.trust_domain,
        proxy_http_port=options.proxy_http_port,
        connect_timeout=timedelta(seconds=10),
        service_cidr=options.service_cidr if options.runtime else None,
    )
    network_config = None
    if options.runtime:
        # Validate before anything starts, so a bad CIDR is one clear error.
        network_config = NetworkConfig(options.mesh_name, options.pod_cidr, options.service_cidr)
    controller = MeshController(store, config)
    ads = AdsServer(
        controller, debounce_after=options.debounce_after, debounce_max=options.debounce_max
    )
    await ads.start(unix_path=xds_socket(home), tcp_address=options.xds_tcp)

    async def proxies(_: web.Request) -> web.Response:
        return web.json_response({"proxies": [s.to_dict() for s in ads.status()]})

    runtime: RuntimeHandle | None = None
    if network_config is not None:
        runtime = await start_runtime(
            home, network_config, store, controller, ads, xds_socket(home)
        )

    async def pods(_: web.Request) -> web.Response:
        items = [pod_summary(p) for p in runtime.runtime.pods.values()] if runtime else []
        return web.json_response({"runtime": runtime is not None, "pods": items})

    async def shutdown(_: web.Request) -> web.Response:
        stop.set()
        return web.json_response({"status": "stopping"})

    hooks = ApiHooks(
        extra_routes=[
            web.get("/v1/proxies", proxies),
            web.get("/v1/pods", pods),
            web.post("/v1/shutdown", shutdown),
            *runtime_routes(store, controller, runtime),
        ]
    )
    runner = await start_unix_site(build_app(store, hooks), home.socket)
    with open(home.root / "isthmusd.pid", "w") as f:
        f.write(str(os.getpid()))
    log.info(
        "started home=%s api=%s xds=%s revision=%d",
        home.root,
        home.socket,
        xds_socket(home),
        store.revision,
    )

    async def follow_store() -> None:
        async for event in store.watch(since=store.revision):
            kind = event.object.key.kind
            if kind in MESH_KINDS:
                controller.invalidate()
                ads.request_push(f"{event.type} {event.object.key}")
            if runtime is not None and kind in RUNTIME_KINDS:
                runtime.runtime.notify(hosts_changed=kind in ("Service", "ServiceEntry"))

    watcher = asyncio.create_task(follow_store())
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        watcher.cancel()
        if runtime is not None:
            await runtime.shutdown()  # pods leave the endpoints while xds still runs
        await runner.cleanup()
        await ads.stop(grace=1.0)
        store.close()
        for path in (home.root / "isthmusd.pid",):
            path.unlink(missing_ok=True)
        log.info("stopped")
