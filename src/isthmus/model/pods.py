"""Pod objects as the node runtime reports them, read into the model's Workloads.

Pods are not applied by users: the node runtime writes them to isthmusd (Kubernetes v1
Pod shape, status included) and the control plane derives endpoints from them, as the
Kubernetes endpoints controller does. `pod_view` checks the shape once, at the API, with
one error line naming the field; everything downstream reads the typed view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from isthmus.model.topology import pod_locality, topology_labels
from isthmus.model.types import Workload

POD_KIND = "Pod"
# Set by `isthmus delete pod` (as Kubernetes does); the node runtime then stops the pod.
DELETION_TIMESTAMP = "deletionTimestamp"


class InvalidPod(ValueError):
    """A reported Pod object lacks a field or has one of the wrong type; names the field."""


@dataclass(frozen=True)
class ContainerView:
    name: str
    restarts: int
    running: bool


@dataclass(frozen=True)
class PodView:
    name: str
    namespace: str
    node: str
    deployment: str
    labels: dict[str, str]
    annotations: dict[str, str]
    service_account: str
    ip: str
    phase: str
    ready: bool
    ready_since: str  # lastTransitionTime of the Ready condition
    start_time: str
    containers: tuple[ContainerView, ...]
    named_ports: tuple[tuple[str, int], ...]
    deleting: bool
    uid: str = ""
    container_ports: tuple[int, ...] = ()  # every declared TCP containerPort, named or not

    def workload(self) -> Workload:
        locality = pod_locality(self.labels)
        return Workload(
            name=self.name,
            namespace=self.namespace,
            address=self.ip,
            labels=topology_labels(self.labels, locality, None),
            locality=locality,
            service_account=self.service_account,
            ready=self.ready,
            port_map=self.named_ports,
            workload_name=self.deployment,
        )


def _field(data: Any, path: str, kind: type, default: Any = None) -> Any:
    value: Any = data
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        if default is not None:
            return default
        raise InvalidPod(f"{path}: required")
    if not isinstance(value, kind):
        raise InvalidPod(f"{path}: must be a {kind.__name__}")
    return value


def _strings(value: dict[str, Any], path: str) -> dict[str, str]:
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidPod(f"{path}: must map strings to strings")
    return dict(value)


def pod_view(body: dict[str, Any]) -> PodView:
    """The typed view of a Pod object; raises InvalidPod naming the first bad field."""
    if body.get("kind") != POD_KIND or body.get("apiVersion") != "v1":
        raise InvalidPod("apiVersion/kind: must be v1 Pod")
    owners = _field(body, "metadata.ownerReferences", list, [])
    deployment = next(
        (o.get("name") for o in owners if isinstance(o, dict) and o.get("kind") == "Deployment"),
        "",
    )
    named: dict[str, int] = {}
    declared: set[int] = set()
    for index, container in enumerate(_field(body, "spec.containers", list)):
        for port in _field(container, "ports", list, []):
            name, number = port.get("name"), port.get("containerPort")
            if not isinstance(number, int):
                raise InvalidPod(f"spec.containers[{index}].ports: containerPort must be an int")
            if isinstance(name, str) and name:
                named[name] = number
            if port.get("protocol", "TCP") == "TCP":
                declared.add(number)
    containers = []
    for index, status in enumerate(_field(body, "status.containerStatuses", list, [])):
        if not isinstance(status, dict) or not isinstance(status.get("name"), str):
            raise InvalidPod(f"status.containerStatuses[{index}].name: required")
        state = status.get("state")
        containers.append(
            ContainerView(
                name=status["name"],
                restarts=int(status.get("restartCount") or 0),
                running=isinstance(state, dict) and "running" in state,
            )
        )
    conditions = _field(body, "status.conditions", list, [])
    condition = next(
        (c for c in conditions if isinstance(c, dict) and c.get("type") == "Ready"), {}
    )
    ready = condition.get("status") == "True"
    return PodView(
        name=_field(body, "metadata.name", str),
        namespace=_field(body, "metadata.namespace", str),
        node=_field(body, "spec.nodeName", str),
        deployment=str(deployment or ""),
        labels=_strings(_field(body, "metadata.labels", dict, {}), "metadata.labels"),
        annotations=_strings(
            _field(body, "metadata.annotations", dict, {}), "metadata.annotations"
        ),
        service_account=_field(body, "spec.serviceAccountName", str, "default"),
        ip=_field(body, "status.podIP", str, ""),
        phase=_field(body, "status.phase", str),
        ready=ready,
        ready_since=str(condition.get("lastTransitionTime") or ""),
        start_time=_field(body, "status.startTime", str, ""),
        containers=tuple(containers),
        named_ports=tuple(sorted(named.items())),
        deleting=bool(_field(body, f"metadata.{DELETION_TIMESTAMP}", str, "")),
        uid=_field(body, "metadata.uid", str, ""),
        container_ports=tuple(sorted(declared)),
    )
