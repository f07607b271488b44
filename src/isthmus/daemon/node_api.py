"""isthmusd's API for node runtimes: the seam along which a kubelet talks to its API server.

GET /v1/watch?kind=K&kind=...   every object of those kinds as ADDED events, then
                                `{"type": "SYNCED", "revision"}`, then each change as it
                                commits (ADDED / MODIFIED / DELETED), one JSON object per
                                line; `{"type": "BOOKMARK"}` every few seconds so a reader
                                notices a stalled daemon
PUT /v1/node/pods               {"node", "pods": [v1 Pod objects], "wait"}: the node's
                                pods as they are now; pods of that node missing from the
                                list are gone. With wait, answers once every connected
                                proxy ACKed the resulting push (bounded)
GET /v1/node/hosts?namespace=   {"hosts": {namespace: {ip: [names]}}}: the pods' /etc/hosts
POST /v1/node/tokens            {"namespace", "pod", "uid", "serviceAccount"} -> {"token"}:
                                the pod's token for the CA (a projected service-account
                                token); the CA honours it while that pod exists

The node runtime needs nothing else from isthmusd, and isthmusd nothing from it: either
can be restarted while the other runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from isthmus.ca import PodBinding
from isthmus.daemon.mesh import MeshController
from isthmus.model.dns import hosts_entries
from isthmus.model.pods import DELETION_TIMESTAMP, POD_KIND, InvalidPod, pod_view
from isthmus.store import Compacted, ObjectKey, ResourceStore, StoredObject, same_content

__all__ = ["NodeApi"]

log = logging.getLogger("isthmus.daemon")

BOOKMARK_PERIOD = 2.0


def _error(status: int, line: str) -> web.Response:
    return web.json_response({"errors": [line]}, status=status)


def _line(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode() + b"\n"


class NodeApi:
    """Handlers of the node runtime's endpoints, on one store and mesh controller."""

    def __init__(
        self,
        store: ResourceStore,
        controller: MeshController,
        synced: Callable[[], Awaitable[None]],
        issue_token: Callable[[PodBinding], str],
    ) -> None:
        self._store = store
        self._issue_token = issue_token
        self._controller = controller
        self._synced = synced  # wait until the push after a change was ACKed (bounded)
        self.watchers = 0  # open watch streams: node runtimes connected right now
        self._closing = asyncio.Event()

    def close(self) -> None:
        """End every watch stream (before the server stops: they never end by themselves)."""
        self._closing.set()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/watch", self.watch),
            web.put("/v1/node/pods", self.report_pods),
            web.get("/v1/node/hosts", self.hosts),
            web.post("/v1/node/tokens", self.token),
        ]

    async def token(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "body: must be JSON")
        fields = ("namespace", "pod", "uid", "serviceAccount")
        if not isinstance(body, dict) or not all(
            isinstance(body.get(f), str) and body[f] for f in fields
        ):
            return _error(400, f"body: needs non-empty strings {', '.join(fields)}")
        binding = PodBinding(
            namespace=body["namespace"],
            pod=body["pod"],
            service_account=body["serviceAccount"],
            uid=body["uid"],
        )
        log.info(
            "node token_issued pod=%s/%s sa=%s",
            binding.namespace,
            binding.pod,
            binding.service_account,
        )
        return web.json_response({"token": self._issue_token(binding)})

    async def watch(self, request: web.Request) -> web.StreamResponse:
        kinds = set(request.query.getall("kind", []))
        if not kinds:
            return _error(400, "watch needs at least one kind=")
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        # Listing and subscribing with no await in between: no change falls in a gap.
        revision = self._store.revision
        snapshot = [o for kind in sorted(kinds) for o in self._store.list(kind=kind)]
        events = self._store.watch(since=revision)
        pending: asyncio.Future[Any] | None = None
        closing: asyncio.Future[Any] | None = None
        self.watchers += 1
        try:
            for obj in snapshot:
                await response.write(_line({"type": "ADDED", "object": obj.body}))
            await response.write(_line({"type": "SYNCED", "revision": revision}))
            iterator = aiter(events)
            closing = asyncio.ensure_future(self._closing.wait())
            while not self._closing.is_set():
                # The read stays pending across bookmarks: cancelling it would end the watch.
                pending = pending or asyncio.ensure_future(anext(iterator))
                done, _ = await asyncio.wait(
                    {pending, closing}, timeout=BOOKMARK_PERIOD, return_when=asyncio.FIRST_COMPLETED
                )
                if closing in done:
                    break
                if not done:
                    await response.write(_line({"type": "BOOKMARK"}))
                    continue
                try:
                    event = pending.result()
                except (StopAsyncIteration, Compacted):  # closed, or this reader fell behind
                    break
                finally:
                    pending = None
                if event.object.key.kind in kinds:
                    await response.write(
                        _line(
                            {
                                "type": str(event.type),
                                "revision": event.revision,
                                "object": event.object.body,
                            }
                        )
                    )
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.watchers -= 1
            for future in (pending, closing):
                if future is not None:
                    future.cancel()
        return response

    async def report_pods(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
        except ValueError:
            return _error(400, "request body is not JSON")
        node = payload.get("node") if isinstance(payload, dict) else None
        pods = payload.get("pods") if isinstance(payload, dict) else None
        if not isinstance(node, str) or not node or not isinstance(pods, list):
            return _error(400, '"node" (string) and "pods" (list of Pod objects) are required')
        reported: dict[ObjectKey, dict[str, Any]] = {}
        for index, body in enumerate(pods):
            try:
                view = pod_view(body)
            except InvalidPod as exc:
                return _error(422, f"pods[{index}]: {exc}")
            if view.node != node:
                return _error(422, f"pods[{index}]: spec.nodeName must be {node!r}")
            reported[ObjectKey(POD_KIND, view.namespace, view.name)] = body
        changed = self._replace_pods(node, reported)
        if changed and payload.get("wait") is True:
            await self._synced()
        return web.json_response({"revision": self._store.revision, "changed": changed})

    def _replace_pods(self, node: str, reported: dict[ObjectKey, dict[str, Any]]) -> int:
        """Write what changed, delete what the node no longer runs; the number of changes."""
        stored = {
            o.key: o
            for o in self._store.list(kind=POD_KIND)
            if (o.body.get("spec") or {}).get("nodeName") == node
        }
        writes = []
        for key, body in reported.items():
            current = stored.get(key)
            body = _keep_deletion_mark(body, current)
            if current is None or not same_content(current.body, body):
                writes.append((key, body))
        gone = [key for key in stored if key not in reported]
        if writes:
            self._store.apply(writes)
        if gone:
            self._store.delete(gone)
        return len(writes) + len(gone)

    async def hosts(self, request: web.Request) -> web.Response:
        namespaces = request.query.getall("namespace", [])
        mesh = await asyncio.to_thread(lambda: self._controller.mesh)
        return web.json_response({"hosts": {ns: hosts_entries(mesh, ns) for ns in namespaces}})


def _keep_deletion_mark(body: dict[str, Any], current: StoredObject | None) -> dict[str, Any]:
    """A pod marked for deletion (`isthmus delete pod`) stays marked until it is gone."""
    mark = (current.body.get("metadata") or {}).get(DELETION_TIMESTAMP) if current else None
    if not mark or (body.get("metadata") or {}).get(DELETION_TIMESTAMP):
        return body
    return {**body, "metadata": {**body["metadata"], DELETION_TIMESTAMP: mark}}
