"""isthmusd's embedded Zipkin collector: served on its own unix socket, and, when asked,
on a loopback port for any Zipkin UI.

The socket is private like the daemon's others (0600 in the home): sidecars reach it
only through their agent, which splices Envoy's connection onto it, as it does xDS.
Its own socket keeps a burst of spans from queueing in front of the CLI's requests.
"""

from __future__ import annotations

import logging

from aiohttp import web

from isthmus.daemon.http_api import start_unix_site
from isthmus.home import MeshHome
from isthmus.tracing import SpanStore
from isthmus.tracing.app import collector_app

log = logging.getLogger("isthmus.daemon")
LOOPBACK = "127.0.0.1"


class ZipkinPortUnavailable(RuntimeError):
    """The loopback port for the Zipkin API can not be listened on (taken, not allowed)."""


async def start_collector(
    home: MeshHome, spans: SpanStore, port: int | None = None
) -> web.AppRunner:
    """Serve the collector on `home.zipkin_socket` (and 127.0.0.1:`port`); returns the
    runner, whose cleanup() stops both and removes the socket file."""
    runner = await start_unix_site(collector_app(spans), home.zipkin_socket)
    if port is not None:
        try:
            await web.TCPSite(runner, LOOPBACK, port).start()
        except OSError as error:
            await runner.cleanup()
            raise ZipkinPortUnavailable(
                f"zipkin port {LOOPBACK}:{port}: {error.strerror or error}"
            ) from None
    log.info(
        "zipkin collector socket=%s port=%s max_spans=%d",
        home.zipkin_socket,
        port if port is not None else "-",
        spans.max_spans,
    )
    return runner
