"""isthmusd endpoints behind the runtime's kubectl verbs: endpoints, deployment status and
deleting one pod.

GET  /v1/endpoints?namespace=&name=  per Kubernetes Service, its endpoints as the mesh
                                     model has them (ready or not), joined with the pod
                                     that owns each address when the runtime runs
GET  /v1/deployments?namespace=      kubectl's Deployment status counts from the pods
POST /v1/pods/delete                 {"namespace", "name", "wait"}: stop one pod
                                     gracefully; its Deployment replaces it

Failures are `{"errors": [one line]}` like the rest of the API.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from isthmus.api.core import Deployment
from isthmus.api.loader import parse_resource
from isthmus.daemon.mesh import MeshController
from isthmus.daemon.runtime_wiring import RuntimeHandle
from isthmus.model.types import Service
from isthmus.runtime.controller import deployment_template_hash
from isthmus.runtime.pod import Pod
from isthmus.store import ObjectKey, ResourceStore

__all__ = ["runtime_routes"]

NOT_RUNNING = "the local runtime is not running in this mesh (start it with `isthmus up`)"
ACTIVE_PHASES = ("Pending", "Running")


def runtime_routes(
    store: ResourceStore, controller: MeshController, runtime: RuntimeHandle | None
) -> list[web.RouteDef]:
    """The routes to add to the daemon's ApiHooks.extra_routes."""
    api = _RuntimeApi(store, controller, runtime)
    return [
        web.get("/v1/endpoints", api.endpoints),
        web.get("/v1/deployments", api.deployments),
        web.post("/v1/pods/delete", api.delete_pod),
    ]


def _error(status: int, line: str) -> web.Response:
    return web.json_response({"errors": [line]}, status=status)


class _RuntimeApi:
    def __init__(
        self, store: ResourceStore, controller: MeshController, runtime: RuntimeHandle | None
    ) -> None:
        self._store = store
        self._controller = controller
        self._runtime = runtime

    def _pods(self) -> list[Pod]:
        return list(self._runtime.runtime.pods.values()) if self._runtime else []

    async def endpoints(self, request: web.Request) -> web.Response:
        namespace = request.query.get("namespace")
        name = request.query.get("name")
        pods = {(p.namespace, p.ip): p for p in self._pods() if p.ip}
        items = []
        for service in sorted(
            self._controller.mesh.services.by_host.values(), key=lambda s: (s.namespace, s.name)
        ):
            if service.source_kind != "Service":
                continue
            if namespace is not None and service.namespace != namespace:
                continue
            if name is not None and service.name != name:
                continue
            items.append(self._service_endpoints(service, pods))
        return web.json_response({"runtime": self._runtime is not None, "endpoints": items})

    def _service_endpoints(
        self, service: Service, pods: dict[tuple[str, str], Pod]
    ) -> dict[str, Any]:
        mesh = self._controller.mesh
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
                        "netns": pod.netns if pod else "",
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
        if self._runtime is None:
            return web.json_response({"runtime": False, "deployments": []})
        namespace = request.query.get("namespace")
        pods = [p for p in self._pods() if p.phase in ACTIVE_PHASES]
        items = []
        for obj in self._store.list(kind="Deployment", namespace=namespace):
            deployment = parse_resource(obj.body)
            assert isinstance(deployment, Deployment)
            ns = deployment.metadata.namespace or "default"
            mine = [p for p in pods if p.namespace == ns and p.deployment == obj.key.name]
            current = deployment_template_hash(deployment)
            ready = sum(p.ready for p in mine)
            items.append(
                {
                    "namespace": ns,
                    "name": obj.key.name,
                    "replicas": len(mine),
                    "desiredReplicas": deployment.spec.replicas,
                    "updatedReplicas": sum(p.template_hash == current for p in mine),
                    "readyReplicas": ready,
                    "availableReplicas": sum(
                        p.available(deployment.spec.min_ready_seconds) for p in mine
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
        if self._runtime is None:
            return _error(409, NOT_RUNNING)
        stopping = self._runtime.runtime.delete_pod(namespace, name)
        if stopping is None:
            return _error(404, f'pod "{name}" not found in namespace {namespace}')
        if payload.get("wait", False):
            # shield: the pod keeps stopping even if the client gives up waiting
            await asyncio.shield(stopping)
        return web.json_response({"namespace": namespace, "name": name, "result": "deleted"})
