"""Keeps the node runtime's ObjectCache in step with isthmusd: list, then watch, again.

On every (re)connection the daemon sends a full listing, so nothing is missed while it
was away; Service changes only make the runtime refresh its pods' hosts files.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from isthmus.node.apiclient import ApiClient, ControlPlaneUnavailable
from isthmus.node.reporter import StatusReporter
from isthmus.runtime.cache import WATCHED_KINDS, ObjectCache
from isthmus.runtime.controller import Runtime

log = logging.getLogger("isthmus.node")

# Kinds whose changes change some pod's /etc/hosts (names, VIPs, headless endpoints).
HOSTS_KINDS = ("Service", "ServiceEntry", "Namespace")
RETRY_START = 0.2
RETRY_MAX = 2.0


class Informer:
    def __init__(
        self, api: ApiClient, cache: ObjectCache, runtime: Runtime, reporter: StatusReporter
    ) -> None:
        self._api = api
        self._cache = cache
        self._runtime = runtime
        self._reporter = reporter
        self.connected = False

    async def run(self) -> None:
        delay = RETRY_START
        while True:
            try:
                await self._follow()
            except ControlPlaneUnavailable as exc:
                if self.connected:
                    log.warning("node watch_lost error=%s", exc)
            self.connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _follow(self) -> None:
        listing: list[dict[str, Any]] = []
        synced = False
        async for event in self._api.watch((*WATCHED_KINDS, "Service", "ServiceEntry")):
            kind = event.get("type")
            body = event.get("object")
            if kind == "SYNCED":
                self._cache.replace(listing, int(event.get("revision", 0)))
                synced = self.connected = True
                log.info(
                    "node watch_synced revision=%s objects=%d", event.get("revision"), len(listing)
                )
                self._runtime.notify(hosts_changed=True)
                await self._reporter.report()  # a restarted isthmusd learns the pods at once
                continue
            if not isinstance(body, dict) or kind not in ("ADDED", "MODIFIED", "DELETED"):
                continue
            if synced and body.get("kind") in (*HOSTS_KINDS, "Pod"):
                self._runtime.hosts_changed()  # Pods: headless Services resolve to them
            if body.get("kind") in HOSTS_KINDS and body.get("kind") != "Namespace":
                continue
            if not synced:
                listing.append(body)
            elif kind == "DELETED":
                self._cache.remove(body, int(event.get("revision", 0)))
                self._runtime.notify()
            else:
                self._cache.put(body, int(event.get("revision", 0)))
                self._runtime.notify()
