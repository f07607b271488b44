"""isthmusd's node API against a real isthmusd and a real Envoy: what a node runtime
reports becomes endpoints that Envoy routes to; the watch lists, then streams changes
with bookmarks; a pod marked for deletion stays marked; hosts entries come from the mesh.
No root needed: the "pod" is an upstream server on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from isthmus.testing.daemon import wait_for
from isthmus.testing.mesh import NAMESPACE, Mesh
from isthmus.testing.upstream import UpstreamServer

NODE = "it-node"
HOST = f"api.{NAMESPACE}.svc.cluster.local:8080"
SERVICES = f"""
apiVersion: v1
kind: Service
metadata: {{name: api, namespace: {NAMESPACE}}}
spec:
  clusterIP: 10.96.7.7
  selector: {{app: api}}
  ports: [{{name: http, port: 8080, targetPort: http}}]
---
apiVersion: v1
kind: Service
metadata: {{name: api-headless, namespace: {NAMESPACE}}}
spec:
  clusterIP: None
  selector: {{app: api}}
  ports: [{{name: http, port: 8080, targetPort: http}}]
"""


def pod(name: str, server: UpstreamServer, ready: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"app": "api", "version": "v1"},
            "annotations": {"isthmus.io/netns": "", "isthmus.io/logs": "/tmp"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}],
        },
        "spec": {
            "nodeName": NODE,
            "serviceAccountName": "api",
            "containers": [
                {"name": "app", "ports": [{"containerPort": server.port, "name": "http"}]}
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "startTime": "2026-12-02T00:00:00Z",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {"name": "app", "ready": ready, "restartCount": 2, "state": {"running": {}}}
            ],
        },
    }


def report(mesh: Mesh, pods: list[dict[str, Any]], wait: bool = True) -> httpx.Response:
    return mesh.daemon.client.put("/v1/node/pods", json={"node": NODE, "pods": pods, "wait": wait})


@pytest.fixture(scope="module")
def served(mesh: Mesh) -> Iterator[UpstreamServer]:
    mesh.apply(SERVICES)
    server = mesh.upstream("api-pod-1")
    yield server
    report(mesh, [])


def test_reported_pods_are_endpoints_envoy_routes_to(mesh: Mesh, served: UpstreamServer) -> None:
    answer = report(mesh, [pod("api-1", served)])
    assert answer.status_code == 200 and answer.json()["changed"] == 1
    mesh.wait_routed(HOST, served.name)
    listed = mesh.daemon.client.get("/v1/pods").json()
    assert listed["runtime"] is True
    (row,) = [p for p in listed["pods"] if p["name"] == "api-1"]
    assert (row["ready"], row["restarts"], row["deployment"], row["node"]) == (
        True,
        2,
        "api",
        NODE,
    )
    # The same report again changes nothing (no store write, no push).
    assert report(mesh, [pod("api-1", served)]).json()["changed"] == 0

    report(mesh, [pod("api-1", served, ready=False)])
    wait_for(lambda: mesh.get(HOST).statuses.get(503, 0) == 1, what="not-ready pod out of rotation")
    report(mesh, [pod("api-1", served)])
    mesh.wait_routed(HOST, served.name)


def test_hosts_entries_from_the_mesh(mesh: Mesh, served: UpstreamServer) -> None:
    report(mesh, [pod("api-1", served)])
    hosts = mesh.daemon.client.get(
        "/v1/node/hosts", params=[("namespace", NAMESPACE), ("namespace", "other")]
    ).json()["hosts"]
    assert "api" in hosts[NAMESPACE]["10.96.7.7"]
    assert "api.production.svc.cluster.local" in hosts["other"]["10.96.7.7"]
    assert "api" not in hosts["other"]["10.96.7.7"]  # short names only in their namespace
    assert "api-headless" in hosts[NAMESPACE]["127.0.0.1"]  # headless: the ready pods


def test_deletion_mark_survives_reports_until_the_pod_is_gone(
    mesh: Mesh, served: UpstreamServer
) -> None:
    report(mesh, [pod("api-1", served), pod("api-2", served)])
    marked = mesh.daemon.client.post(
        "/v1/pods/delete", json={"namespace": NAMESPACE, "name": "api-2"}
    )
    assert marked.status_code == 200, marked.text
    report(mesh, [pod("api-1", served), pod("api-2", served)])  # the node has not stopped it yet
    rows = {p["name"]: p for p in mesh.daemon.client.get("/v1/pods").json()["pods"]}
    assert rows["api-2"]["phase"] == "Terminating"
    stored = mesh.daemon.client.get(
        "/v1/objects", params={"kind": "Pod", "namespace": NAMESPACE, "name": "api-2"}
    ).json()["items"]
    assert stored[0]["metadata"]["deletionTimestamp"]
    report(mesh, [pod("api-1", served)])  # stopped: the node no longer reports it
    assert "api-2" not in {p["name"] for p in mesh.daemon.client.get("/v1/pods").json()["pods"]}
    missing = mesh.daemon.client.post(
        "/v1/pods/delete", json={"namespace": NAMESPACE, "name": "api-2"}
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"node": NODE}, '"node" (string) and "pods"'),
        ({"node": NODE, "pods": [{"kind": "Pod"}]}, "pods[0]: apiVersion/kind"),
        ({"node": "elsewhere", "pods": None}, '"pods"'),
    ],
)
def test_malformed_reports_are_refused(mesh: Mesh, payload: dict[str, Any], error: str) -> None:
    answer = mesh.daemon.client.put("/v1/node/pods", json=payload)
    assert answer.status_code in (400, 422)
    assert error in answer.json()["errors"][0]


def test_a_pod_of_another_node_is_refused(mesh: Mesh, served: UpstreamServer) -> None:
    answer = mesh.daemon.client.put(
        "/v1/node/pods", json={"node": "other", "pods": [pod("api-9", served)]}
    )
    assert answer.status_code == 422 and "spec.nodeName" in answer.json()["errors"][0]


def test_watch_lists_then_streams_changes_and_bookmarks(mesh: Mesh) -> None:
    mesh.apply(
        """
apiVersion: v1
kind: Namespace
metadata: {name: watched, labels: {istio-injection: disabled}}
"""
    )
    events: list[dict[str, Any]] = []
    with mesh.daemon.client.stream(
        "GET", "/v1/watch", params=[("kind", "Namespace"), ("kind", "Deployment")], timeout=20
    ) as stream:
        lines = stream.iter_lines()
        while not events or events[-1]["type"] != "SYNCED":
            events.append(json.loads(next(lines)))
        assert {"watched"} <= {e["object"]["metadata"]["name"] for e in events[:-1]}
        assert all(e["object"]["kind"] in ("Namespace", "Deployment") for e in events[:-1])
        started = time.monotonic()
        mesh.apply(
            """
apiVersion: v1
kind: Namespace
metadata: {name: watched, labels: {istio-injection: enabled}}
"""
        )
        change = json.loads(next(lines))
        assert change["type"] == "MODIFIED"
        assert change["object"]["metadata"]["labels"] == {"istio-injection": "enabled"}
        assert change["revision"] > events[-1]["revision"]
        bookmark = json.loads(next(lines))
        assert bookmark == {"type": "BOOKMARK"} and time.monotonic() - started < 20


def test_watch_needs_a_kind(mesh: Mesh) -> None:
    answer = mesh.daemon.client.get("/v1/watch")
    assert answer.status_code == 400
