"""The pod's readiness endpoint (Istio's 15021 /healthz/ready), answered from Envoy's state.

A sidecar is ready only when traffic sent to the pod would be handled as the mesh
intends: Envoy's server is LIVE (initialised, not draining), its workers run, and
the control plane has delivered clusters and listeners at least once. As in Istio,
a delivered-but-rejected update also counts as delivered: Envoy then serves with
what it accepted, and keeping the pod out of rotation would not fix the config.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from isthmus.agent import _log
from isthmus.agent.admin import AdminUnavailable, EnvoyAdmin
from isthmus.agent.http_site import start_site

READY_PATH = "/healthz/ready"
READINESS_PORT = 15021
WORKERS_STARTED = "listener_manager.workers_started"
CDS_SUCCESS = "cluster_manager.cds.update_success"
CDS_REJECTED = "cluster_manager.cds.update_rejected"
LDS_SUCCESS = "listener_manager.lds.update_success"
LDS_REJECTED = "listener_manager.lds.update_rejected"
READINESS_STATS = (WORKERS_STARTED, CDS_SUCCESS, CDS_REJECTED, LDS_SUCCESS, LDS_REJECTED)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str


def judge(server_state: str, stats: Mapping[str, int]) -> Readiness:
    """Ready or not, from Envoy's /ready answer and the READINESS_STATS values."""
    if server_state != "LIVE":
        return Readiness(False, f"envoy server state is {server_state or 'unknown'}")
    if stats.get(WORKERS_STARTED, 0) != 1:
        return Readiness(False, "envoy workers have not started")
    cds = (stats.get(CDS_SUCCESS, 0), stats.get(CDS_REJECTED, 0))
    lds = (stats.get(LDS_SUCCESS, 0), stats.get(LDS_REJECTED, 0))
    if sum(cds) == 0 or sum(lds) == 0:
        return Readiness(
            False,
            "config not received from the control plane: "
            f"cds updates {cds[0]} successful {cds[1]} rejected, "
            f"lds updates {lds[0]} successful {lds[1]} rejected",
        )
    return Readiness(True, "ready")


class ReadinessServer:
    """HTTP server answering READY_PATH with 200 or 503 and the reason as the body."""

    def __init__(self, admin: EnvoyAdmin, host: str, port: int) -> None:
        self._admin = admin
        self.host = host
        self.port = port
        self.draining = False
        self._runner: web.AppRunner | None = None
        self._last: Readiness | None = None

    async def check(self) -> Readiness:
        """Ask Envoy now; a draining agent is never ready."""
        if self.draining:
            return Readiness(False, "the agent is draining")
        try:
            state = await self._admin.server_state()
            stats = await self._admin.stats(READINESS_STATS) if state == "LIVE" else {}
        except AdminUnavailable as error:
            return Readiness(False, f"envoy admin unavailable: {error}")
        return judge(state, stats)

    async def _handle(self, _request: web.Request) -> web.Response:
        readiness = await self.check()
        if readiness != self._last:
            lost = not readiness.ready and self._last is not None and self._last.ready
            level = logging.WARNING if lost else logging.INFO
            _log.log(level, "readiness", ready=readiness.ready, reason=readiness.reason)
            self._last = readiness
        return web.Response(status=200 if readiness.ready else 503, text=readiness.reason + "\n")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(READY_PATH, self._handle)
        self._runner = await start_site(app, self.host, self.port)
        _log.log(
            logging.INFO, "readiness_listening", address=f"{self.host}:{self.port}", path=READY_PATH
        )

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
