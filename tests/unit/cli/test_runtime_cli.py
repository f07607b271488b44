"""Pure parts of the runtime's kubectl verbs: argument parsing, target choice, tables."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from isthmus.cli.errors import UserError
from isthmus.cli.pods import pod_document, pods_table
from isthmus.cli.port_forward import (
    CHUNK,
    Backend,
    PortSpec,
    Target,
    parse_port_spec,
    parse_target,
    pod_backend,
    service_backend,
    splice,
)
from isthmus.cli.runtime_status import (
    deployments_table,
    endpoints_cell,
    endpoints_document,
    endpoints_table,
    ready_endpoints,
)
from isthmus.cli.scale import current_replicas_of, scale_targets, scaled


def pod(name: str, deployment: str = "web", ready: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "production",
        "deployment": deployment,
        "ip": "10.44.0.2",
        "netns": f"m-production.{name}",
        "phase": "Running",
        "ready": ready,
        "sidecar": True,
        "containers": ["app"],
        "ready_containers": 2,
        "total_containers": 2,
        "restarts": 0,
        "created": time.time() - 30,
        "labels": {"app": deployment},
        "logs": "",
        **extra,
    }


def address(ip: str, pod_name: str, ready: bool = True, port: int = 8080) -> dict[str, Any]:
    return {
        "ip": ip,
        "port": port,
        "portName": "http",
        "servicePort": 80,
        "ready": ready,
        "pod": pod_name,
        "namespace": "production",
        "netns": f"m-production.{pod_name}",
    }


def service_item(*addresses: dict[str, Any]) -> dict[str, Any]:
    return {
        "namespace": "production",
        "name": "web",
        "hostname": "web.production.svc.cluster.local",
        "creationTimestamp": None,
        "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        "addresses": list(addresses),
    }


# --- scale ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("deploy", "web"), ["web"]),
        (("deployments", "a", "b", "a"), ["a", "b"]),
        (("deployment/web",), ["web"]),
        (("deploy/a", "deployments.apps/b"), ["a", "b"]),
    ],
)
def test_scale_accepts_kubectls_spellings(args: tuple[str, ...], names: list[str]) -> None:
    assert scale_targets(args) == names


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give what to scale"),
        (("deploy",), "give the name"),
        (("svc", "web"), "only Deployments"),
        (("deploy/a", "b"), "TYPE/NAME"),
        (("statefulset/db",), "unknown resource type"),
    ],
)
def test_scale_refuses_what_it_can_not_scale(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(UserError, match=message):
        scale_targets(args)


def test_scaled_sets_replicas_on_a_copy_keeping_the_resource_version() -> None:
    body: dict[str, Any] = {
        "metadata": {"name": "web", "resourceVersion": "7"},
        "spec": {"replicas": 1},
    }
    out = scaled(body, 3)
    assert out["spec"]["replicas"] == 3
    assert out["metadata"]["resourceVersion"] == "7"
    assert body["spec"]["replicas"] == 1
    assert current_replicas_of({"spec": {}}) == 1  # Kubernetes' default


# --- port-forward arguments and targets ------------------------------------------------


def test_port_forward_targets() -> None:
    assert parse_target("svc/web", "production") == Target("service", "web", "production")
    assert parse_target("deployment/web", None) == Target("deployment", "web", "default")
    assert parse_target("web-abc-x", None) == Target("pod", "web-abc-x", "default")
    with pytest.raises(UserError, match="cannot port-forward"):
        parse_target("configmap/x", None)
    with pytest.raises(UserError, match="name is missing"):
        parse_target("svc/", None)


def test_port_specs() -> None:
    assert parse_port_spec("8080") == PortSpec(8080, 8080)
    assert parse_port_spec("18080:80") == PortSpec(18080, 80)
    assert parse_port_spec(":80") == PortSpec(0, 80)
    for bad in ("0", "x:80", "80:", "70000", "1:0", "-1:80"):
        with pytest.raises(UserError):
            parse_port_spec(bad)


def test_service_port_goes_to_a_ready_endpoint_pods_target_port() -> None:
    item = service_item(
        address("10.44.0.3", "web-b", ready=False, port=9090),
        address("10.44.0.2", "web-a", port=8080),
    )
    target = Target("service", "web", "production")
    assert service_backend([item], target, 80) == Backend("web-a", "m-production.web-a", 8080)
    with pytest.raises(UserError, match="does not have a service port 81"):
        service_backend([item], target, 81)
    with pytest.raises(UserError, match="not found"):
        service_backend([item], Target("service", "web", "other"), 80)
    not_ready = service_item(address("10.44.0.3", "web-b", ready=False))
    with pytest.raises(UserError, match="no ready pod"):
        service_backend([not_ready], target, 80)


def test_deployment_goes_to_its_first_ready_pod_and_a_pod_must_run() -> None:
    pods = [pod("web-c"), pod("web-b", ready=False), pod("web-d"), pod("api-a", "api")]
    deploy = Target("deployment", "web", "production")
    assert pod_backend(pods, deploy, 8080) == Backend("web-c", "m-production.web-c", 8080)
    with pytest.raises(UserError, match="no ready pod"):
        pod_backend(pods, Target("deployment", "gone", "production"), 8080)
    assert pod_backend(pods, Target("pod", "web-b", "production"), 9).pod == "web-b"
    pending = [pod("web-e", phase="Pending", netns="")]
    with pytest.raises(UserError, match="not running"):
        pod_backend(pending, Target("pod", "web-e", "production"), 8080)


# --- splice: real sockets on loopback ----------------------------------------------------


async def test_splice_copies_both_ways_with_half_close_and_closes_both() -> None:
    """A client -> splice -> upper-casing server, with a payload many buffers long."""

    async def shout(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the client half-closes
        writer.write(data.upper())
        await writer.drain()
        writer.close()

    upstream_server = await asyncio.start_server(shout, "127.0.0.1", 0)
    upstream_port = upstream_server.sockets[0].getsockname()[1]
    spliced: list[asyncio.Task[None]] = []

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await asyncio.open_connection("127.0.0.1", upstream_port)
        task = asyncio.current_task()
        assert task is not None
        spliced.append(task)
        await splice((reader, writer), upstream)

    front = await asyncio.start_server(forward, "127.0.0.1", 0, limit=CHUNK)
    reader, writer = await asyncio.open_connection("127.0.0.1", front.sockets[0].getsockname()[1])
    payload = b"isthmus " * (CHUNK // 2)  # 8 chunks
    writer.write(payload)
    writer.write_eof()
    answer = await asyncio.wait_for(reader.read(), 5)
    assert answer == payload.upper()
    writer.close()
    await asyncio.wait_for(asyncio.gather(*spliced), 5)
    for server in (front, upstream_server):
        server.close()
        await server.wait_closed()


# --- tables and documents --------------------------------------------------------------


def test_endpoints_like_kubectl() -> None:
    item = service_item(
        address("10.44.0.10", "web-c"),
        address("10.44.0.9", "web-b"),
        address("10.44.0.2", "web-a"),
        address("10.44.0.2", "web-a"),  # a second service port on the same target port
        address("10.44.0.11", "web-d"),
        address("10.44.0.12", "web-e", ready=False),
    )
    ready = ready_endpoints(item)
    assert ready == ["10.44.0.2:8080", "10.44.0.9:8080", "10.44.0.10:8080", "10.44.0.11:8080"]
    assert endpoints_cell(ready) == "10.44.0.2:8080,10.44.0.9:8080,10.44.0.10:8080 + 1 more..."
    assert endpoints_cell([]) == "<none>"
    lines = endpoints_table([item], with_namespace=True, wide=True).splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "ENDPOINTS", "AGE", "PODS"]
    assert "10.44.0.11:8080" in lines[1]
    assert "web-a,web-b,web-c,web-d" in lines[1] and "web-e" not in lines[1]


def test_endpoints_document_is_a_kubernetes_endpoints_object() -> None:
    item = service_item(address("10.44.0.2", "web-a"), address("10.44.0.3", "web-b", False))
    document = endpoints_document(item)
    assert document["kind"] == "Endpoints"
    (subset,) = document["subsets"]
    assert subset["addresses"] == [
        {
            "ip": "10.44.0.2",
            "targetRef": {"kind": "Pod", "name": "web-a", "namespace": "production"},
        }
    ]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["10.44.0.3"]
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]


def test_deployment_columns_like_kubectl() -> None:
    body = {
        "metadata": {"name": "web", "namespace": "production"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "app", "image": "demo:1"}]}},
        },
        "status": {"replicas": 4, "updatedReplicas": 2, "readyReplicas": 3, "availableReplicas": 3},
    }
    header, row = deployments_table([body], with_namespace=False, wide=True).splitlines()
    assert header.split() == [
        "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"
    ]  # fmt: skip
    assert row.split() == ["web", "3/3", "2", "3", "<none>", "app", "demo:1", "app=web"]


def test_pods_wide_and_as_kubernetes_pods() -> None:
    restarted = pod("web-a", node="m-node", container_restarts={"app": 0, "istio-proxy": 2})
    header, row = pods_table([restarted], with_namespace=False, wide=True).splitlines()
    assert header.split()[-6:] == ["NODE", "NETNS", "SIDECAR", "RESTARTS", "BY", "CONTAINER"]
    assert row.split()[-4:] == ["m-node", "m-production.web-a", "true", "app=0,istio-proxy=2"]
    assert pod_document(restarted)["status"]["containerStatuses"] == [
        {"name": "app", "restartCount": 0},
        {"name": "istio-proxy", "restartCount": 2},
    ]
    document = pod_document(pod("web-a"))
    assert document["kind"] == "Pod"
    assert document["status"]["podIP"] == "10.44.0.2"
    assert document["status"]["conditions"] == [{"type": "Ready", "status": "True"}]
    assert [c["name"] for c in document["spec"]["containers"]] == ["app", "istio-proxy"]
