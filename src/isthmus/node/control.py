"""The CLI's client of the node runtime's control API (`$ISTHMUS_HOME/node.sock`)."""

from __future__ import annotations

from typing import Any

import httpx

from isthmus.home import MeshHome


class NodeUnavailable(ConnectionError):
    """The node runtime does not answer on its socket."""


class NodeControl:
    def __init__(self, home: MeshHome, timeout: float = 5.0) -> None:
        self.home = home
        self.timeout = timeout

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if not self.home.node_socket.exists():
            raise NodeUnavailable(f"no node runtime socket at {self.home.node_socket}")
        try:
            with httpx.Client(
                transport=httpx.HTTPTransport(uds=str(self.home.node_socket)),
                base_url="http://isthmus-node",
                timeout=self.timeout,
            ) as http:
                response = http.request(method, path, json=body)
                response.raise_for_status()
                return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise NodeUnavailable(f"node runtime: {method} {path}: {exc}") from exc

    def status(self) -> dict[str, Any]:
        answer = self._request("GET", "/v1/status")
        if not isinstance(answer, dict):
            raise NodeUnavailable(f"node runtime answered {answer!r}")
        return answer

    def shutdown(self, teardown: bool) -> None:
        self._request("POST", "/v1/shutdown", {"teardown": teardown})
