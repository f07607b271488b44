"""isthmusd endpoints behind the runtime's kubectl verbs, answered from the Pod objects the
node runtime reports.

GET  /v1/pods                        `isthmus get pods` rows (and what exec/logs need)
GET  /v1/endpoints?namespace=&name=  per Kubernetes Service, its endpoints as the mesh
                                     model has them (ready or not), joined with the pod
                                     that owns each address
GET  /v1/deployments?namespace=      kubectl's Deployment status counts from the pods
POST /v1/pods/delete                 {"namespace", "name", "wait"}: mark one pod for
                                     deletion (metadata.deletionTimestamp, as Kubernetes);
                                     the node runtime stops it gracefully and its
                                     Deployment replaces it; with wait, answers once the
                                     pod is gone

Failures are `{"errors": [one line]}` like the rest of the API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from isthmus.api.core import Deployment
from isthmus.api.loader import parse_resource
from isthmus.daemon.mesh import MeshController
from isthmus.model.pods import DELETION_TIMESTAMP, POD_KIND, PodView
from isthmus.model.types import Service
from isthmus.runtime.controller import deployment_template_hash
from isthmus.runtime.pod import LOGS_ANNOTATION, NETNS_ANNOTATION, SIDECAR
from isthmus.store import ObjectKey, ResourceStore

__all__ = ["RuntimeApi", "pod_summary"]

NOT_RUNNING = "the local runtime is not running in this mesh (start it with `isthmus up`)"
ACTIVE_PHASES = ("Pending", "Running")
DELETE_WAIT = 170.0


def _error(status: int, line: str) -> web.Response:
    return web.json_response({"errors": [line]}, status=status)


def _epoch(timestamp: str) -> float:
    try:
        return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0


def pod_summary(pod: PodView) -> dict[str, Any]:
    """What `isthmus get pods` shows and what exec/logs need to find a pod."""
    sidecar = any(c.name == SIDECAR for c in pod.containers)
    return {
        "name": pod.name,
        "namespace": pod.namespace,
        "deployment": pod.deployment,
        "ip": pod.ip,
        "netns": pod.annotations.get(NETNS_ANNOTATION, ""),
        "phase": "Terminating" if pod.deleting and pod.phase == "Running" else pod.phase,
        "ready": pod.ready,
        "sidecar": sidecar,
        "containers": [c.name for c in pod.containers if c.name != SIDECAR],
        "ready_containers": sum(c.running for c in pod.containers),
        "total_containers": len(pod.containers),
        "restarts": sum(c.restarts for c in pod.containers),
        "container_restarts": {c.name: c.restarts for c in pod.containers},
        "created": _epoch(pod.start_time),
        "labels": pod.labels,
        "annotations": pod.annotations,
        "logs": pod.annotations.get(LOGS_ANNOTATION, ""),
        "node": pod.node,
    }


class RuntimeApi:
    def __init__(
        self,
        store: ResourceStore,
        controller: MeshController,
        nodes_connected: Callable[[], int],
    ) -> None:
        self._store = store
        self._controller = controller
        self._nodes_connected = nodes_connected

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/pods", self.pods),
            web.get("/v1/endpoints", self.endpoints),
            web.get("/v1/deployments", self.deployments),
            web.post("/v1/pods/delete", self.delete_pod),
        ]

    def _runtime(self, pods: list[PodView]) -> bool:
        """Whether a node runtime serves this mesh (connected now, or its pods are known)."""
        return self._nodes_connected() > 0 or bool(pods)

    async def pods(self, _: web.Request) -> web.Response:
        pods = self._controller.pods()
        return web.json_response(
            {
                "runtime": self._runtime(pods),
                "nodes": self._nodes_connected(),
                "pods": [pod_summary(p) for p in pods],
            }
        )

    async def endpoints(self, request: web.Request) -> web.Response:
        namespace = request.query.get("namespace")
        name = request.query.get("name")
        views = self._controller.pods()
        pods = {(p.namespace, p.ip): p for p in views if p.ip}
        mesh = await asyncio.to_thread(lambda: self._controller.mesh)
        items = []
        for service in sorted(mesh.services.by_host.values(), key=lambda s: (s.namespace, s.name)):
            if service.source_kind != "Service":
                continue
            if namespace is not None and service.namespace != namespace:
                continue
            if name is not None and service.name != name:
                continue
            items.append(self._service_endpoints(service, pods, mesh))
        return web.json_response({"runtime": self._runtime(views), "endpoints": items})

    def _service_endpoints(
        self, service: Service, pods: dict[tuple[str, str], PodView], mesh: Any
    ) -> dict[str, Any]:
        addresses = []
        for port in service.ports:
            for endpoint in mesh.endpoints.of(service.hostname, port.port):
                pod = pods.get((endpoint.namespace, endpoint.address))
                addresses.append(
                    {
                        "ip": endpoint.address,
                        "port": endpoint.port,
                        "portName": port.name,
                        "servicePort": port.port,
                        "ready": endpoint.ready,
                        "pod": pod.name if pod else "",
                        "namespace": endpoint.namespace,
                        "netns": pod.annotations.get(NETNS_ANNOTATION, "") if pod else "",
                    }
                )
        stored = self._store.get(ObjectKey("Service", service.namespace, service.name))
        meta = stored.body.get("metadata", {}) if stored is not None else {}
        return {
            "namespace": service.namespace,
            "name": service.name,
            "hostname": service.hostname,
            "creationTimestamp": meta.get("creationTimestamp"),
            "ports": [
                {"name": p.name, "port": p.port, "targetPort": p.target_port} for p in service.ports
            ],
            "addresses": addresses,
        }

    async def deployments(self, request: web.Request) -> web.Response:
        views = self._controller.pods()
        if not self._runtime(views):
            return web.json_response({"runtime": False, "deployments": []})
        namespace = request.query.get("namespace")
        pods = [p for p in views if p.phase in ACTIVE_PHASES and not p.deleting]
        now = time.time()
        items = []
        for obj in self._store.list(kind="Deployment", namespace=namespace):
            deployment = parse_resource(obj.body)
            assert isinstance(deployment, Deployment)
            ns = deployment.metadata.namespace or "default"
            mine = [p for p in pods if p.namespace == ns and p.deployment == obj.key.name]
            current = deployment_template_hash(deployment)
            minimum = deployment.spec.min_ready_seconds
            items.append(
                {
                    "namespace": ns,
                    "name": obj.key.name,
                    "replicas": len(mine),
                    "desiredReplicas": deployment.spec.replicas,
                    "updatedReplicas": sum(
                        p.labels.get("pod-template-hash") == current for p in mine
                    ),
                    "readyReplicas": sum(p.ready for p in mine),
                    "availableReplicas": sum(
                        p.ready and now - _epoch(p.ready_since) >= minimum for p in mine
                    ),
                }
            )
        return web.json_response({"runtime": True, "deployments": items})

    async def delete_pod(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
        except ValueError:
            return _error(400, "request body is not JSON")
        if not isinstance(payload, dict):
            return _error(400, "request body must be a JSON object")
        namespace, name = payload.get("namespace") or "default", payload.get("name")
        if not isinstance(namespace, str) or not isinstance(name, str) or not name:
            return _error(400, '"namespace" and "name" must be strings')
        key = ObjectKey(POD_KIND, namespace, name)
        stored = self._store.get(key)
        if stored is None:
            if not self._runtime(self._controller.pods()):
                return _error(409, NOT_RUNNING)
            return _error(404, f'pod "{name}" not found in namespace {namespace}')
        meta = stored.body.get("metadata", {})
        if not meta.get(DELETION_TIMESTAMP):
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            body = {**stored.body, "metadata": {**meta, DELETION_TIMESTAMP: now}}
            self._store.apply([(key, body)])
        if payload.get("wait", False):
            if self._nodes_connected() == 0:
                return _error(
                    503,
                    f"pod {namespace}/{name} is marked for deletion, but no node runtime is "
                    "connected: it stops once the node runtime is back (`isthmus up`)",
                )
            # shield: the wait ends, the deletion goes on, if the client gives up
            if not await asyncio.shield(self._gone(key)):
                return _error(
                    504,
                    f"pod {namespace}/{name} is marked for deletion but was still running "
                    f"after {DELETE_WAIT:.0f}s",
                )
        return web.json_response({"namespace": namespace, "name": name, "result": "deleted"})

    async def _gone(self, key: ObjectKey) -> bool:
        deadline = time.monotonic() + DELETE_WAIT
        while time.monotonic() < deadline:
            if self._store.get(key) is None:
                return True
            await asyncio.sleep(0.1)
        return False
