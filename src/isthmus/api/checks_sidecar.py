"""Sidecar checks, as Istio's webhook applies them (ValidateSidecar), plus "not supported
yet" for the egress fields isthmus does not enforce (bind, captureMode NONE)."""

from __future__ import annotations

from isthmus.api import names
from isthmus.api.checks_common import (
    NOT_SUPPORTED,
    check_port,
    check_wildcard_free_labels,
    namespaced_host_error,
)
from isthmus.api.checks_serviceentry import PROTOCOLS
from isthmus.api.errors import FieldPath, Problems, short_repr
from isthmus.api.sidecar import CaptureMode, IstioEgressListener, Sidecar

# The namespace part of an egress host: any namespace, the Sidecar's own, or none.
_SPECIAL_NAMESPACES = frozenset({"*", ".", "~"})


def check_sidecar(sidecar: Sidecar, problems: Problems) -> None:
    spec = sidecar.spec
    path = FieldPath("spec")
    if not spec.egress and spec.outbound_traffic_policy is None:
        problems.add(path, "empty configuration provided: set egress or outboundTrafficPolicy")
    if spec.workload_selector is not None:
        here = path.field("workloadSelector").field("labels")
        if not spec.workload_selector.labels:
            problems.add(here, "workloadSelector labels is required")
        check_wildcard_free_labels(problems, here, spec.workload_selector.labels)
    ports: set[int] = set()
    catch_all_seen = False
    for position, listener in enumerate(spec.egress):
        here = path.field("egress").index(position)
        if listener.port is None:
            if catch_all_seen:
                problems.add(here, "egress can have only one listener with empty port")
            elif position != len(spec.egress) - 1:
                problems.add(
                    here, "the egress listener with empty port should be the last listener"
                )
            catch_all_seen = True
        else:
            if listener.port.number in ports:
                problems.add(
                    here.field("port").field("number"),
                    f"duplicate egress port {listener.port.number}",
                )
            ports.add(listener.port.number)
        _check_listener(problems, here, listener)


def _check_listener(problems: Problems, path: FieldPath, listener: IstioEgressListener) -> None:
    port = listener.port
    if port is not None:
        here = path.field("port")
        if port.number == 0:
            problems.add(here.field("number"), f"unix domain socket listeners are {NOT_SUPPORTED}")
        else:
            check_port(problems, here.field("number"), port.number)
        if port.target_port:
            problems.add(here.field("targetPort"), "targetPort has no impact on Sidecars")
        # Istio's ValidateProtocol: an empty protocol is protocol sniffing, as an unset one.
        if port.protocol and port.protocol.lower() not in PROTOCOLS:
            problems.add(here.field("protocol"), f"unknown protocol {short_repr(port.protocol)}")
        elif port.protocol and port.protocol.lower() == "http_proxy":
            problems.add(here.field("protocol"), f"HTTP_PROXY egress listeners are {NOT_SUPPORTED}")
        if port.name:
            problem = names.istio_label_error("port name", port.name)
            if problem:
                problems.add(here.field("name"), problem)
    if listener.bind is not None:
        problems.add(path.field("bind"), NOT_SUPPORTED)
    if listener.capture_mode is CaptureMode.NONE:
        problems.add(path.field("captureMode"), f"captureMode NONE is {NOT_SUPPORTED}")
    hosts_path = path.field("hosts")
    if not listener.hosts:
        problems.add(hosts_path, "egress listener must contain at least one host")
    for position, host in enumerate(listener.hosts):
        problem = egress_host_error(host)
        if problem:
            problems.add(hosts_path.index(position), problem)


def egress_host_error(host: str) -> str | None:
    """Istio's namespace/host form: `ns/host`, `./host`, `*/host`, `~/host`, where host
    is a name, `*` or a `*.`-prefixed wildcard."""
    if "/" not in host:
        return f"{short_repr(host)} must be of the form namespace/dnsName"
    return namespaced_host_error(host, _SPECIAL_NAMESPACES)
