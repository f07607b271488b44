"""security.istio.io PeerAuthentication: which mTLS mode a workload's sidecar accepts.

Field names follow Istio's protos. `portLevelMtls` keys are workload (container) ports;
YAML writes them as numbers, which the loader turns into strings as Kubernetes does.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, Strict

from isthmus.api.base import IstioModel, Resource
from isthmus.api.networking import WorkloadSelector

SECURITY_API_VERSIONS = ("security.istio.io/v1", "security.istio.io/v1beta1")


class MtlsMode(StrEnum):
    """PeerAuthentication.MutualTLS.Mode; UNSET inherits from the enclosing scope."""

    UNSET = "UNSET"
    DISABLE = "DISABLE"
    PERMISSIVE = "PERMISSIVE"
    STRICT = "STRICT"


class PeerAuthentication_MutualTLS(IstioModel):
    mode: Annotated[MtlsMode, Strict(False)] = MtlsMode.UNSET


class PeerAuthenticationSpec(IstioModel):
    selector: WorkloadSelector | None = None
    mtls: PeerAuthentication_MutualTLS | None = None
    port_level_mtls: dict[str, PeerAuthentication_MutualTLS] = Field(default_factory=dict)


class PeerAuthentication(Resource):
    """Mesh-wide (root namespace, no selector), namespace-wide (no selector) or
    workload-specific (selector) mTLS mode of the receiving sidecar."""

    spec: PeerAuthenticationSpec = Field(default_factory=PeerAuthenticationSpec)
