"""Waiting until a change reached the proxies: the push went out and every proxy ACKed.

A pod that stops must leave every proxy's endpoints before its containers get SIGTERM;
the node runtime's report therefore waits here (through PUT /v1/node/pods with wait).
"""

from __future__ import annotations

import asyncio
import logging
import time

from isthmus.xds import AdsServer

log = logging.getLogger("isthmus.daemon")

SYNC_TIMEOUT = 5.0


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
