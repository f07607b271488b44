"""Merge bursts of change notifications into one push, as Istio's pilot does.

A push starts once no new request arrived for ``quiet`` seconds, or at the latest
``max_delay`` seconds after the first request of the burst, so a steady stream of
changes can not postpone pushes forever. Requests that arrive while a push runs are
collected for the next one; pushes never overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from isthmus.xds import _log


class Debouncer:
    """Calls ``push(reasons)`` once per burst of ``request(reason)`` calls."""

    def __init__(
        self,
        push: Callable[[list[str]], Awaitable[None]],
        quiet: float = 0.1,
        max_delay: float = 10.0,
    ) -> None:
        if quiet < 0 or max_delay < quiet:
            raise ValueError(f"need 0 <= quiet <= max_delay, got {quiet=} {max_delay=}")
        self._push = push
        self._quiet = quiet
        self._max_delay = max_delay
        self._reasons: list[str] = []
        self._requested = asyncio.Event()
        self._first_request = 0.0
        self._last_request = 0.0
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="xds-debounce")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._idle.set()

    def request(self, reason: str) -> None:
        """Ask for a push; cheap and synchronous, call it from the event loop thread."""
        now = asyncio.get_running_loop().time()
        if not self._reasons:
            self._first_request = now
        self._reasons.append(reason)
        self._last_request = now
        self._idle.clear()
        self._requested.set()

    async def wait_idle(self) -> None:
        """Return once no request is waiting and no push is running."""
        await self._idle.wait()

    @property
    def idle(self) -> bool:
        return self._idle.is_set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._requested.wait()
            while True:
                now = loop.time()
                deadline = min(
                    self._last_request + self._quiet, self._first_request + self._max_delay
                )
                if now >= deadline:
                    break
                await asyncio.sleep(deadline - now)
            self._requested.clear()
            reasons, self._reasons = self._reasons, []
            try:
                await self._push(reasons)
            except Exception as exc:  # a failed push must not end all future pushes
                _log.log(logging.ERROR, "push_failed", error=repr(exc))
            finally:
                if not self._requested.is_set():
                    self._idle.set()
