"""A small synchronous client of isthmusd's HTTP API over the mesh's unix socket.

It turns every way of failing into one of two exceptions whose lines the CLI prints
as they are: DaemonNotRunning (nothing answers on the socket) and DaemonError (the
daemon refused the request and said why).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from isthmus.daemon.paths import MeshHome

__all__ = ["DaemonClient", "DaemonError", "DaemonNotRunning", "Document"]

DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Document:
    """One YAML/JSON text to apply or delete, and where it came from (for error lines)."""

    source: str
    text: str


class DaemonNotRunning(Exception):
    """Nothing answers on the mesh's socket."""

    def __init__(self, home: MeshHome) -> None:
        root = home.root
        super().__init__(
            f"isthmusd is not running at {root} "
            f"(start it with `isthmus daemon --home {root}` or `isthmus up`)"
        )
        self.home = home

    @property
    def lines(self) -> list[str]:
        return [str(self)]


class DaemonError(Exception):
    """The daemon refused a request; `lines` holds one problem per line."""

    def __init__(self, status: int, lines: Sequence[str]) -> None:
        super().__init__("\n".join(lines))
        self.status = status
        self.lines = list(lines)


class DaemonClient:
    """Calls isthmusd at one mesh home. Use as a context manager or call close()."""

    def __init__(self, home: MeshHome, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.home = home
        self._http = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(home.socket)),
            base_url="http://isthmusd",
            timeout=timeout,
        )

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def healthz(self) -> dict[str, Any]:
        return self.request("GET", "/v1/healthz")

    def apply(
        self, documents: Iterable[Document], dry_run: bool = False, namespace: str | None = None
    ) -> dict[str, Any]:
        """Apply documents in one transaction: `{"results": [...], "dryRun", "revision"}`."""
        return self.request(
            "POST",
            "/v1/apply",
            {"documents": _documents(documents), "dryRun": dry_run, "namespace": namespace},
        )

    def get(
        self, kind: str | None = None, namespace: str | None = None, name: str | None = None
    ) -> list[dict[str, Any]]:
        """Stored object bodies matching the filters (None matches all)."""
        # namespace "" (cluster-scoped objects) is a real filter; None means all namespaces
        filters = (("kind", kind), ("namespace", namespace), ("name", name))
        params = {k: v for k, v in filters if v is not None}
        reply = self.request("GET", "/v1/objects", params=params)
        items = reply.get("items", [])
        assert isinstance(items, list)
        return items

    def delete_keys(self, keys: Iterable[tuple[str, str, str]]) -> dict[str, Any]:
        """Delete objects by (kind, namespace, name), all or nothing."""
        return self.request("DELETE", "/v1/objects", {"keys": [list(k) for k in keys]})

    def delete_documents(
        self, documents: Iterable[Document], namespace: str | None = None
    ) -> dict[str, Any]:
        """Delete the objects the documents describe (`delete -f`), all or nothing."""
        return self.request(
            "DELETE",
            "/v1/objects",
            {"documents": _documents(documents), "namespace": namespace},
        )

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One JSON request; raises DaemonNotRunning or DaemonError instead of HTTP errors."""
        if not self.home.socket.exists():
            raise DaemonNotRunning(self.home)
        try:
            response = self._http.request(method, path, json=body, params=params)
        except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
            if isinstance(exc, httpx.ConnectError):
                raise DaemonNotRunning(self.home) from exc
            raise DaemonError(0, [f"isthmusd closed the connection: {exc}"]) from exc
        except httpx.TimeoutException as exc:
            raise DaemonError(0, [f"isthmusd did not answer {method} {path} in time"]) from exc
        return _decode(response)


def _documents(documents: Iterable[Document]) -> list[dict[str, str]]:
    return [{"source": d.source, "text": d.text} for d in documents]


def _decode(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.is_success and isinstance(payload, dict):
        return payload
    if isinstance(payload, dict) and isinstance(payload.get("errors"), list):
        raise DaemonError(response.status_code, [str(e) for e in payload["errors"]])
    raise DaemonError(
        response.status_code,
        [f"isthmusd answered {response.status_code}: {response.text[:200]!r}"],
    )
