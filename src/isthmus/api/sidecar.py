"""networking.istio.io Sidecar: which services a workload's sidecar sees outbound.

Field names follow Istio's proto (networking/v1alpha3/sidecar.proto, served as v1,
v1beta1 and v1alpha3). isthmus honours `workloadSelector`, `egress[]` (`hosts`, `port`,
`captureMode` DEFAULT/IPTABLES) and `outboundTrafficPolicy.mode`; what it does not
enforce (`ingress`, `inboundConnectionPool`, `egress[].bind`, captureMode NONE,
`egressProxy`) is refused as not supported yet, by the schema or by `checks_sidecar`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, Strict

from isthmus.api.base import IstioModel, Resource, UInt32
from isthmus.api.networking import ServiceEntryWorkloadSelector


class CaptureMode(StrEnum):
    """How traffic reaches the listener: DEFAULT and IPTABLES both mean iptables capture
    (isthmus's only mode); NONE (the app addresses the proxy itself) is refused."""

    DEFAULT = "DEFAULT"
    IPTABLES = "IPTABLES"
    NONE = "NONE"


class OutboundTrafficPolicyMode(StrEnum):
    """Istio's OutboundTrafficPolicy.Mode: REGISTRY_ONLY (the proto's zero value) sends
    traffic to destinations outside the proxy's registry to BlackHoleCluster, ALLOW_ANY
    to PassthroughCluster."""

    REGISTRY_ONLY = "REGISTRY_ONLY"
    ALLOW_ANY = "ALLOW_ANY"


class SidecarPort(IstioModel):
    """networking.SidecarPort: the port an egress listener captures."""

    number: UInt32
    protocol: str | None = None
    name: str | None = None
    target_port: UInt32 | None = None


class IstioEgressListener(IstioModel):
    """One egress listener: the `namespace/host` imports it makes visible, on `port` or
    (without a port, the catch-all listener) on every port."""

    port: SidecarPort | None = None
    bind: str | None = None
    capture_mode: Annotated[CaptureMode, Strict(False)] = CaptureMode.DEFAULT
    hosts: list[str] = Field(default_factory=list)


class OutboundTrafficPolicy(IstioModel):
    not_supported_fields = frozenset({"egressProxy"})

    mode: Annotated[OutboundTrafficPolicyMode, Strict(False)] = (
        OutboundTrafficPolicyMode.REGISTRY_ONLY
    )


class SidecarSpec(IstioModel):
    not_supported_fields = frozenset({"ingress", "inboundConnectionPool"})

    workload_selector: ServiceEntryWorkloadSelector | None = None
    egress: list[IstioEgressListener] = Field(default_factory=list)
    outbound_traffic_policy: OutboundTrafficPolicy | None = None


class Sidecar(Resource):
    spec: SidecarSpec
