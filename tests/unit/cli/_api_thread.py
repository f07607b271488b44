"""isthmusd's real HTTP API app on a unix socket, served by an event loop in a thread, so
CLI tests can drive it through click's CliRunner in the test's own process."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from aiohttp import web

from isthmus.daemon.http_api import start_unix_site
from isthmus.home import MeshHome
from isthmus.store import SqliteStore

AppFactory = Callable[[SqliteStore], web.Application]


class ApiThread:
    """Serves `make_app(store)` (a SQLite store in the home) until the block ends."""

    def __init__(self, home: MeshHome, make_app: AppFactory) -> None:
        self.home = home
        self._make_app = make_app
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    def __enter__(self) -> ApiThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("test daemon did not start")
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    @contextmanager
    def stalled(self) -> Iterator[None]:
        """Block the daemon's event loop until the block ends."""
        assert self._loop is not None
        blocked, resume = threading.Event(), threading.Event()

        def block() -> None:
            blocked.set()
            resume.wait(60)

        self._loop.call_soon_threadsafe(block)
        assert blocked.wait(10)
        try:
            yield
        finally:
            resume.set()

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        store = SqliteStore(self.home.db)
        runner = await start_unix_site(self._make_app(store), self.home.socket)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()
            store.close()
