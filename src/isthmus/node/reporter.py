"""Reports the node's pods to isthmusd: always the full list, coalesced, retried.

Sending the whole list (not deltas) makes every report self-healing: after isthmusd or the
node runtime restarts, the first report that gets through puts the store right, whatever
happened meanwhile. Reports that pile up while one is in flight merge into the next.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from isthmus.node.apiclient import ApiClient, ControlPlaneUnavailable

log = logging.getLogger("isthmus.node")

RETRY_START = 0.2
RETRY_MAX = 2.0
WAIT_LIMIT = 20.0


class StatusReporter:
    def __init__(self, api: ApiClient, node: str, pods: Callable[[], list[dict[str, Any]]]) -> None:
        self._api = api
        self._node = node
        self._pods = pods
        self._wanted = 0  # bumped by every report() call
        self._wanted_wait = 0  # the newest report() call that waits for the proxies
        self._done = 0  # the newest call covered by a report that got through
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self.connected: bool | None = None  # unknown until the first report
        self.last_success: float | None = None

    async def report(self, wait: bool = False) -> None:
        """Ask for a report of the current state; with wait, return once isthmusd took it
        and the proxies ACKed the change (or isthmusd can not be reached right now)."""
        self._wanted += 1
        ticket = self._wanted
        if wait:
            self._wanted_wait = ticket
        self._wake.set()
        if not wait:
            return
        async with self._progress:
            try:
                await asyncio.wait_for(
                    self._progress.wait_for(
                        lambda: self._done >= ticket or self.connected is False
                    ),
                    WAIT_LIMIT,
                )
            except TimeoutError:
                log.warning("node report_wait_timeout ticket=%d", ticket)

    async def run(self) -> None:
        delay = RETRY_START
        while True:
            await self._wake.wait()
            self._wake.clear()
            ticket = self._wanted
            wait = self._wanted_wait > self._done
            try:
                await self._api.report_pods(self._node, self._pods(), wait=wait)
            except ControlPlaneUnavailable as exc:
                if self.connected:
                    log.warning("node report_failed error=%s", exc)
                await self._set(connected=False)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                self._wake.set()  # try again: the store must learn the newest state
                continue
            delay = RETRY_START
            self.last_success = time.time()
            await self._set(connected=True, done=ticket)

    async def _set(self, connected: bool, done: int | None = None) -> None:
        async with self._progress:
            if connected and self.connected is not True:
                log.info("node report_connected")
            self.connected = connected
            if done is not None:
                self._done = max(self._done, done)
            self._progress.notify_all()
