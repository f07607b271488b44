"""The node runtime's client of isthmusd's API (node_api on the daemon's side).

Every failure to reach isthmusd, or to hear from it in time, is one exception,
ControlPlaneUnavailable: the node runtime then keeps its pods as they are and tries again.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

REQUEST_TIMEOUT = 10.0
# The daemon writes a bookmark every 2 s; this long without a line means it stalled.
WATCH_SILENCE = 10.0
# A report that waits for the proxies' ACKs takes up to the daemon's sync timeout (5 s).
REPORT_TIMEOUT = 15.0


class ControlPlaneUnavailable(ConnectionError):
    """isthmusd did not answer (not running, restarting, stalled) or refused a request."""


class ApiClient:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(self.socket_path)),
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _json(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: Sequence[tuple[str, str]] = (),
        timeout: float = REQUEST_TIMEOUT,
    ) -> dict[str, Any]:
        try:
            async with self._http().request(
                method,
                f"http://isthmusd{path}",
                json=body,
                params=list(params),
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                payload = await response.json(content_type=None)
                if response.status >= 400:
                    errors = payload.get("errors") if isinstance(payload, dict) else payload
                    raise ControlPlaneUnavailable(f"{method} {path}: {response.status} {errors}")
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise ControlPlaneUnavailable(f"{method} {path}: {exc!r}") from exc
        if not isinstance(payload, dict):
            raise ControlPlaneUnavailable(f"{method} {path}: answered {payload!r}")
        return payload

    async def watch(self, kinds: Iterable[str]) -> AsyncIterator[dict[str, Any]]:
        """Watch events (ADDED..., SYNCED, then changes and BOOKMARKs) until the stream ends;
        raises ControlPlaneUnavailable when it breaks or falls silent."""
        params = [("kind", k) for k in kinds]
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=WATCH_SILENCE)
        try:
            async with self._http().get(
                "http://isthmusd/v1/watch", params=params, timeout=timeout
            ) as response:
                if response.status != 200:
                    raise ControlPlaneUnavailable(f"watch: isthmusd answered {response.status}")
                async for line in response.content:
                    if line.strip():
                        event = json.loads(line)
                        if isinstance(event, dict):
                            yield event
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise ControlPlaneUnavailable(f"watch: {exc!r}") from exc
        raise ControlPlaneUnavailable("watch: isthmusd ended the stream")

    async def report_pods(self, node: str, pods: list[dict[str, Any]], wait: bool) -> None:
        await self._json(
            "PUT",
            "/v1/node/pods",
            body={"node": node, "pods": pods, "wait": wait},
            timeout=REPORT_TIMEOUT,
        )

    async def hosts(self, namespaces: Iterable[str]) -> dict[str, dict[str, list[str]]]:
        answer = await self._json(
            "GET", "/v1/node/hosts", params=[("namespace", ns) for ns in sorted(namespaces)]
        )
        hosts = answer.get("hosts")
        if not isinstance(hosts, dict):
            raise ControlPlaneUnavailable("hosts: no hosts in the answer")
        return hosts

    async def pod_token(self, namespace: str, pod: str, uid: str, service_account: str) -> str:
        """The pod's token for the mesh CA (what a kubelet's TokenRequest is for Istio)."""
        answer = await self._json(
            "POST",
            "/v1/node/tokens",
            body={
                "namespace": namespace,
                "pod": pod,
                "uid": uid,
                "serviceAccount": service_account,
            },
        )
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise ControlPlaneUnavailable("tokens: no token in the answer")
        return token
