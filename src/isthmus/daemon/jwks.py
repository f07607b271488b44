"""Keeps the key sets of the stored RequestAuthentications fetched: istiod's JwksResolver.

Translation is pure, so isthmusd fetches each jwksUri (or OpenID discovery) itself and
hands the results to the mesh controller, which rebuilds and pushes. It fetches at start,
whenever a RequestAuthentication changes (only what is new or failed before), and every
20 minutes (everything), as Istio's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL. After a failed
refresh the next one comes after 1 minute, then doubles up to an hour. A key set that
fails to refresh stays in use; one that never arrived is absent, and proxies fail closed.
Fetches run on the event loop with bounded timeouts and never block it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import timedelta

import aiohttp

from isthmus.api.request_authentication import RequestAuthentication
from isthmus.daemon.jwks_fetch import Fetched, client_session, resolve_jwks
from isthmus.model.jwks import JwksSource, jwks_sources
from isthmus.model.objects import ParsedObjects
from isthmus.store import ResourceStore

log = logging.getLogger("isthmus.jwks")

KIND = "RequestAuthentication"
REFRESH_INTERVAL = timedelta(minutes=20)
FAILURE_INTERVAL = timedelta(minutes=1)
MAX_FAILURE_INTERVAL = timedelta(hours=1)

OnChange = Callable[[Mapping[JwksSource, str | None]], None]


class JwksRefresher:
    """Fetches what the store's RequestAuthentications name; reports each change of the
    fetched key sets to `on_change` (e.g. MeshController.set_jwks plus a push)."""

    def __init__(
        self,
        store: ResourceStore,
        on_change: OnChange,
        *,
        refresh_interval: timedelta = REFRESH_INTERVAL,
    ) -> None:
        self._store = store
        self._objects = ParsedObjects(store)
        self._on_change = on_change
        self._refresh_interval = refresh_interval
        self._interval = refresh_interval
        self._jwks: Fetched = {}

    @property
    def jwks(self) -> Mapping[JwksSource, str | None]:
        return dict(self._jwks)

    def wanted(self) -> dict[JwksSource, timedelta]:
        """Every source the stored RequestAuthentications name, with its fetch timeout."""
        policies = [
            resource
            for _, resource in self._objects.list(kind=KIND)
            if isinstance(resource, RequestAuthentication)
        ]
        return jwks_sources(policies)

    async def sync(self, session: aiohttp.ClientSession, *, refresh: bool) -> bool:
        """Fetch the wanted sources (all on `refresh`, else those not fetched yet), forget
        the unwanted ones, report a change; True if some fetch failed."""
        wanted = self.wanted()
        todo = {s: t for s, t in wanted.items() if refresh or self._jwks.get(s) is None}
        fetched = await resolve_jwks(session, todo) if todo else {}
        merged: Fetched = {}
        for source in wanted:
            text = fetched.get(source)
            merged[source] = text if text is not None else self._jwks.get(source)
        if merged != self._jwks:
            self._jwks = merged
            log.info("jwks changed sources=%d fetched=%d", len(merged), _count(merged))
            self._on_change(dict(merged))
        return any(text is None for text in fetched.values())

    async def run(self) -> None:
        """Until cancelled: sync at start, on RequestAuthentication changes, on refresh."""
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        follower = asyncio.create_task(self._follow(self._store.revision, changed))
        failed_before = False
        try:
            async with client_session() as session:
                refresh = True
                next_refresh = loop.time()
                while True:
                    failed = await self.sync(session, refresh=refresh)
                    if refresh:
                        self._interval = self._next_interval(failed, failed_before)
                        failed_before = failed
                        next_refresh = loop.time() + self._interval.total_seconds()
                    refresh = await _wait(changed, next_refresh - loop.time())
        finally:
            follower.cancel()

    def _next_interval(self, failed: bool, failed_before: bool) -> timedelta:
        """Istio's refreshCache: 1 minute after a failure, doubling while failures last."""
        if not failed:
            return self._refresh_interval
        if not failed_before:
            return FAILURE_INTERVAL
        return min(self._interval * 2, MAX_FAILURE_INTERVAL)

    async def _follow(self, since: int, changed: asyncio.Event) -> None:
        async for event in self._store.watch(since=since):
            if event.object.key.kind == KIND:
                changed.set()


async def _wait(changed: asyncio.Event, seconds: float) -> bool:
    """Wait for a change (False) or until the refresh is due (True)."""
    try:
        await asyncio.wait_for(changed.wait(), timeout=max(seconds, 0.0))
    except TimeoutError:
        return True
    changed.clear()
    return False


def _count(jwks: Fetched) -> int:
    return sum(1 for text in jwks.values() if text is not None)
