"""isthmusd: wires store, mesh controller, ADS server and the HTTP API in one asyncio loop.

isthmusd runs no pods: the node runtime (`isthmus node`) does, and talks to isthmusd only
through its API (node_api). Either process can be restarted while the other runs; the
pods' status survives in the store, so a restarted isthmusd serves the same endpoints at
once and reconnecting Envoys resync to the configuration they already hold.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from isthmus.api.loader import LoadedObject
from isthmus.api.mesh_config import MeshConfigFile
from isthmus.ca import CaOptions, CertificateAuthority, TokenIssuer
from isthmus.daemon.apply_warnings import DEFAULT_PATH_NORMALIZATION, apply_warnings
from isthmus.daemon.ca_service import CertificateService
from isthmus.daemon.http_api import ApiHooks, build_app, start_unix_site
from isthmus.daemon.jwks import JwksRefresher
from isthmus.daemon.mesh import MESH_KINDS, MeshController
from isthmus.daemon.node_api import NodeApi
from isthmus.daemon.runtime_api import RuntimeApi
from isthmus.daemon.scrape_sd import ScrapeTargetsPublisher
from isthmus.daemon.sync import wait_proxies_synced
from isthmus.daemon.zipkin import start_collector
from isthmus.home import MeshHome
from isthmus.model.jwks import JwksSource
from isthmus.model.snapshot import MeshConfig
from isthmus.store.sqlite import SqliteStore
from isthmus.tracing import DEFAULT_MAX_SPANS, SpanStore
from isthmus.tracing.app import query_routes
from isthmus.xds import AdsServer

log = logging.getLogger("isthmus.daemon")


@dataclass(frozen=True)
class DaemonOptions:
    debounce_after: float = 0.1
    debounce_max: float = 10.0
    xds_tcp: str | None = None  # "127.0.0.1:15010" to also serve ADS over TCP
    proxy_http_port: int | None = None
    trust_domain: str = "cluster.local"
    root_namespace: str = "istio-system"
    path_normalization: str = DEFAULT_PATH_NORMALIZATION
    # Virtual IPs for Services without a clusterIP (the local runtime's service CIDR).
    service_cidr: str | None = None
    ca: CaOptions = field(default_factory=CaOptions)
    # Istio's plugged-in CA: a directory with ca-cert.pem, ca-key.pem, root-cert.pem and
    # cert-chain.pem; else a self-signed root kept under $ISTHMUS_HOME/ca.
    cacerts: Path | None = None
    # The embedded Zipkin collector: how many spans it keeps, and an optional loopback
    # port that also serves its API (for a Zipkin UI); its socket is home.zipkin_socket.
    max_spans: int = DEFAULT_MAX_SPANS
    zipkin_port: int | None = None
    # Istio's MeshConfig (api.mesh_config), already checked: access logs and tracing.
    mesh_config: MeshConfigFile | None = None


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
        root_namespace=options.root_namespace,
        path_normalization=options.path_normalization,
        proxy_http_port=options.proxy_http_port,
        connect_timeout=timedelta(seconds=10),
        service_cidr=options.service_cidr,
    )
    if options.mesh_config is not None:
        config = config.with_file(options.mesh_config)
    controller = MeshController(store, config)
    certificates = CertificateService(
        await asyncio.to_thread(
            CertificateAuthority.load_or_create,
            home.ca_dir,
            options.trust_domain,
            options.ca,
            options.cacerts,
        ),
        await asyncio.to_thread(TokenIssuer.load_or_create, home.ca_dir / "token-key"),
        store,
    )
    spans = SpanStore(max_spans=options.max_spans)
    zipkin = await start_collector(home, spans, options.zipkin_port)
    ads = AdsServer(
        controller, debounce_after=options.debounce_after, debounce_max=options.debounce_max
    )
    await ads.start(
        unix_path=xds_socket(home),
        tcp_address=options.xds_tcp,
        extra_handlers=[certificates.handler()],
    )

    async def endpoints_synced() -> None:
        # Ask for the push here rather than leave it to follow_store, which may not have
        # seen the change yet: the wait must cover it.
        controller.invalidate()
        ads.request_push("node report")
        await wait_proxies_synced(ads)

    node_api = NodeApi(store, controller, endpoints_synced, certificates.issue_token)
    runtime_api = RuntimeApi(store, controller, lambda: node_api.watchers)

    async def proxies(request: web.Request) -> web.Response:
        names = request.query.get("names") == "1"
        return web.json_response({"proxies": [s.to_dict() for s in ads.status(names)]})

    async def shutdown(_: web.Request) -> web.Response:
        stop.set()
        return web.json_response({"status": "stopping"})

    def warn_apply(objects: Sequence[LoadedObject]) -> list[str]:
        return apply_warnings(objects, config.path_normalization)

    hooks = ApiHooks(
        warn_apply=warn_apply,
        extra_routes=[
            web.get("/v1/proxies", proxies),
            web.post("/v1/shutdown", shutdown),
            *runtime_api.routes(),
            *node_api.routes(),
            *query_routes(spans),  # Zipkin's read-only API, for `isthmus traces`
        ],
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
            if event.object.key.kind in MESH_KINDS:
                controller.invalidate()
                ads.request_push(f"{event.type} {event.object.key}")

    watcher = asyncio.create_task(follow_store())

    def jwks_changed(jwks: Mapping[JwksSource, str | None]) -> None:
        controller.set_jwks(jwks)
        ads.request_push("jwks")

    jwks = asyncio.create_task(JwksRefresher(store, jwks_changed).run())
    # Prometheus service discovery: the file_sd list of the pods to scrape.
    scrape_sd = asyncio.create_task(ScrapeTargetsPublisher(home.root, store, controller.pods).run())
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        watcher.cancel()
        jwks.cancel()
        scrape_sd.cancel()
        node_api.close()
        await runner.cleanup()
        await zipkin.cleanup()
        await ads.stop(grace=1.0)
        store.close()
        (home.root / "isthmusd.pid").unlink(missing_ok=True)
        log.info("stopped")
