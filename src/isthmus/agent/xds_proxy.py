"""The agent's xDS proxy: Envoy's ADS stream goes through a socket the agent owns.

As in Istio (pilot-agent's `etc/istio/proxy/XDS`), Envoy never connects to the control
plane itself. The agent listens on a unix socket in its work directory, open to the
proxy's group only, and splices each connection onto the control plane's socket. So
Envoy, running as uid 1337, needs no access to the daemon's private home, and an
isthmusd restart is seen by Envoy as an ordinary stream reset it reconnects after.
Bytes are forwarded as they are (HTTP/2 with gRPC inside); nothing is parsed.

The same splice carries Envoy's Zipkin spans (`ZIPKIN`, HTTP/1.1) to isthmusd's
collector socket; `kind` names which one a log line is about.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from isthmus.agent import _log
from isthmus.agent.proxy_user import ProxyUser, share_file

XDS_SOCKET_NAME = "XDS"
ZIPKIN_SOCKET_NAME = "ZIPKIN"
_CHUNK = 256 * 1024


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while chunk := await reader.read(_CHUNK):
        writer.write(chunk)
        await writer.drain()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


class XdsProxy:
    """Listens on `listen_path` and forwards every connection to `upstream_path`; its log
    events start with `kind` (xds_proxy_listening, zipkin_upstream_unavailable, ...)."""

    def __init__(
        self, listen_path: Path, upstream_path: str, user: ProxyUser | None, kind: str = "xds"
    ) -> None:
        self.listen_path = listen_path
        self.upstream_path = upstream_path
        self.kind = kind
        self._user = user
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._upstream_ok: bool | None = None

    async def start(self) -> None:
        self.listen_path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._accept, path=str(self.listen_path))
        share_file(self.listen_path, self._user, writable=True)
        _log.log(
            logging.INFO,
            f"{self.kind}_proxy_listening",
            socket=self.listen_path,
            upstream=self.upstream_path,
        )

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        self.listen_path.unlink(missing_ok=True)

    def _upstream_state(self, ok: bool, error: str = "") -> None:
        """Log only changes, so a control plane that is down does not flood the log."""
        if ok != self._upstream_ok:
            if ok:
                _log.log(
                    logging.INFO, f"{self.kind}_upstream_connected", upstream=self.upstream_path
                )
            else:
                _log.log(
                    logging.WARNING,
                    f"{self.kind}_upstream_unavailable",
                    upstream=self.upstream_path,
                    error=error,
                )
            self._upstream_ok = ok

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._splice(reader, writer)
        finally:
            self._connections.discard(task)

    async def _splice(
        self, envoy_reader: asyncio.StreamReader, envoy_writer: asyncio.StreamWriter
    ) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_unix_connection(
                self.upstream_path
            )
        except OSError as error:
            self._upstream_state(False, error.strerror or repr(error))
            await _close(envoy_writer)
            return
        self._upstream_state(True)
        directions = [
            asyncio.create_task(_pump(envoy_reader, upstream_writer)),
            asyncio.create_task(_pump(upstream_reader, envoy_writer)),
        ]
        try:
            # Either side closing ends the stream; Envoy reconnects, isthmusd resends.
            await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for direction in directions:
                direction.cancel()
            await asyncio.gather(*directions, return_exceptions=True)
            await _close(upstream_writer)
            await _close(envoy_writer)
