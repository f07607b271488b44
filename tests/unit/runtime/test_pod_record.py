"""A pod's record (what a restarted node runtime adopts from) and its Pod object (what
isthmusd derives endpoints from): round trips, restart accounting, and the contract that
what the node writes is what the control plane reads."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from isthmus.api.core import PodSpec
from isthmus.model.pods import InvalidPod, pod_view
from isthmus.runtime.pod import SIDECAR, Pod, PodContext
from isthmus.runtime.records import PodRecords
from isthmus.runtime.shim_client import ContainerState

SPEC = {
    "containers": [
        {
            "name": "app",
            "command": ["python3", "-m", "http.server"],
            "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 9090}],
        }
    ],
    "serviceAccountName": "inventory",
}


def make_pod(inject: bool = True) -> Pod:
    return Pod(
        name="inventory-abc-x1",
        namespace="production",
        deployment="inventory",
        template_hash="abc",
        labels={"app": "inventory", "pod-template-hash": "abc"},
        annotations={"proxy.istio.io/config": "{}"},
        spec=PodSpec.model_validate(SPEC),
        inject=inject,
        created=1_800_000_000.0,
        ip="10.44.0.7",
        netns="m-production.inventory-abc-x1",
        phase="Running",
    )


def context(tmp_path: Path) -> PodContext:
    async def report(wait: bool) -> None:
        return None

    async def pod_token(namespace: str, pod: str, uid: str, service_account: str) -> str:
        raise AssertionError("records and documents never ask for a token")

    return PodContext(
        network=None,  # type: ignore[arg-type]  # not used by records or documents
        state_dir=tmp_path,
        proxy_dir=tmp_path / "run",
        shim_dir=tmp_path / "run" / "shims",
        xds_socket=str(tmp_path / "xds.sock"),
        hosts_for=lambda ns: {},
        report=report,
        records=PodRecords(tmp_path / "node" / "pods"),
        pod_token=pod_token,
    )


def running(name: str, restarts: int, pid: int = 100) -> ContainerState:
    return ContainerState(name, pid, True, restarts, None, 1_800_000_010.0)


def test_record_round_trip_keeps_what_adoption_needs(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    pod = make_pod()
    pod.ready, pod.ready_changed_at = True, time.time() - 10
    pod.states = {"app": running("app", 2), SIDECAR: running(SIDECAR, 1)}
    pod.envoy_restarts = 3
    pod.save(ctx)
    (record,) = ctx.records.load_all()
    again = Pod.from_record(json.loads(json.dumps(record)))
    assert (again.name, again.namespace, again.ip, again.netns, again.phase) == (
        pod.name,
        pod.namespace,
        pod.ip,
        pod.netns,
        "Running",
    )
    assert again.spec == pod.spec and again.labels == pod.labels and again.inject
    assert again.ready and again.available(0)  # adopted pods keep their readiness
    assert again.last_known_restarts == {"app": 2, SIDECAR: 4}  # the sidecar counts Envoy's
    assert pod.shim_socket(ctx) == again.shim_socket(ctx)
    assert len(str(pod.shim_socket(ctx).name)) == len("0123456789abcdef.sock")


def test_restarts_add_the_base_from_earlier_shims() -> None:
    pod = make_pod()
    pod.restart_base = {"app": 5}
    pod.states = {"app": running("app", 2)}
    pod.envoy_restarts = 1
    assert pod.restarts("app") == 7
    assert pod.restarts(SIDECAR) == 1  # not started yet: only Envoy's own restarts


def test_document_is_what_the_control_plane_reads(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    pod = make_pod()
    pod.ready = True
    pod.states = {"app": running("app", 1), SIDECAR: running(SIDECAR, 0)}
    view = pod_view(json.loads(json.dumps(pod.document("m-node", ctx))))
    assert (view.name, view.namespace, view.node, view.deployment) == (
        "inventory-abc-x1",
        "production",
        "m-node",
        "inventory",
    )
    assert view.ready and view.ip == "10.44.0.7" and view.phase == "Running"
    assert [c.name for c in view.containers] == ["app", SIDECAR]
    assert [c.restarts for c in view.containers] == [1, 0]
    workload = view.workload()
    assert workload.service_account == "inventory"
    assert workload.port_map == (("http", 8080),)
    assert dict(workload.labels)["pod-template-hash"] == "abc"


def test_document_of_a_pod_without_sidecar_and_not_started(tmp_path: Path) -> None:
    view = pod_view(make_pod(inject=False).document("m-node", context(tmp_path)))
    assert [c.name for c in view.containers] == ["app"]
    assert not view.ready and not view.containers[0].running


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(kind="Service"), "apiVersion/kind"),
        (lambda d: d["metadata"].pop("name"), "metadata.name: required"),
        (lambda d: d["spec"].update(containers="x"), "spec.containers: must be a list"),
        (lambda d: d["status"].update(podIP=7), "status.podIP: must be a str"),
        (lambda d: d["metadata"].update(labels={"a": 1}), "metadata.labels"),
    ],
)
def test_malformed_pod_objects_name_the_field(tmp_path: Path, change: object, message: str) -> None:
    document = make_pod().document("m-node", context(tmp_path))
    change(document)  # type: ignore[operator]
    with pytest.raises(InvalidPod, match=message):
        pod_view(document)


def test_records_skip_unreadable_and_hash_long_names(tmp_path: Path) -> None:
    records = PodRecords(tmp_path)
    long_key = "production." + "x" * 250
    records.save(long_key, {"name": "long"})
    records.save("ns.short", {"name": "short"})
    (tmp_path / "broken.json").write_text("{")
    assert sorted(r["name"] for r in records.load_all()) == ["long", "short"]
    assert all(len(p.name) < 100 for p in tmp_path.iterdir())
    records.remove(long_key)
    records.remove("ns.absent")
    assert [r["name"] for r in records.load_all()] == ["short"]
