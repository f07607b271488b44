"""A small asynchronous client for the admin API of the agent's own Envoy.

The admin API listens on 127.0.0.1 only; the agent uses it to judge readiness
(/ready and a few stats) and to drain (/healthcheck/fail, /drain_listeners). Every
call has a short timeout: an Envoy that does not answer is simply not ready.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from types import TracebackType
from urllib.parse import quote

import aiohttp

_TIMEOUT_S = 2.0


class AdminUnavailable(RuntimeError):
    """Envoy's admin API could not be reached or answered with an error."""


class EnvoyAdmin:
    """Admin API of the Envoy at 127.0.0.1:`port`; one session, closed with `close()`."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.base_url = f"http://{host}:{port}"
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> EnvoyAdmin:
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str) -> tuple[int, str]:
        """Status and body of one call; AdminUnavailable if nothing answered."""
        status, body = await self.request_bytes(method, path)
        return status, body.decode(errors="replace")

    async def request_bytes(self, method: str, path: str) -> tuple[int, bytes]:
        """Status and undecoded body of one call (/stats/prometheus can be megabytes)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=_TIMEOUT_S),
                # The admin API of a restarted Envoy is a new server: never reuse a connection.
                connector=aiohttp.TCPConnector(force_close=True),
            )
        try:
            async with self._session.request(method, self.base_url + path) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise AdminUnavailable(f"{path}: {error or type(error).__name__}") from None

    async def post(self, path: str) -> str:
        """POST and insist on a 2xx answer."""
        status, body = await self.request("POST", path)
        if not 200 <= status < 300:
            raise AdminUnavailable(f"{path} answered {status}: {body.strip()[:200]}")
        return body

    async def server_state(self) -> str:
        """Envoy's /ready answer: LIVE, DRAINING, PRE_INITIALIZING or INITIALIZING."""
        _status, body = await self.request("GET", "/ready")
        return body.strip()

    async def stats(self, names: Iterable[str]) -> dict[str, int]:
        """Counters and gauges among `names` (missing ones are left out)."""
        wanted = sorted(set(names))
        pattern = "^(" + "|".join(re.escape(name) for name in wanted) + ")$"
        status, body = await self.request(
            "GET", "/stats?format=json&filter=" + quote(pattern, safe="")
        )
        if status != 200:
            raise AdminUnavailable(f"/stats answered {status}: {body.strip()[:200]}")
        try:
            document = json.loads(body)
        except ValueError:
            raise AdminUnavailable("/stats answered invalid JSON") from None
        values: dict[str, int] = {}
        for entry in document.get("stats", []):
            value = entry.get("value")
            if entry.get("name") in wanted and isinstance(value, int):
                values[entry["name"]] = value
        return values
