"""Kubernetes kinds isthmus accepts: v1 Namespace, Service, ServiceAccount; apps/v1 Deployment.

Only the fields isthmus acts on are modelled; anything else is rejected rather than
silently ignored, except server-populated fields such as `status`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from isthmus.api.base import IstioModel, ObjectMeta, Resource


class Namespace(Resource):
    spec: dict[str, list[str]] | None = None


class ServiceAccount(Resource):
    automount_service_account_token: bool | None = None


class ServicePortSpec(IstioModel):
    port: int
    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    app_protocol: str | None = None
    target_port: int | str | None = None


class ServiceSpec(IstioModel):
    ports: list[ServicePortSpec] = Field(default_factory=list)
    selector: dict[str, str] = Field(default_factory=dict)
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    type: Literal["ClusterIP"] = "ClusterIP"


class Service(Resource):
    spec: ServiceSpec


class LabelSelector(IstioModel):
    match_labels: dict[str, str] = Field(default_factory=dict)


class ObjectFieldSelector(IstioModel):
    field_path: str
    api_version: str | None = None


class EnvVarSource(IstioModel):
    field_ref: ObjectFieldSelector


class EnvVar(IstioModel):
    name: str
    value: str | None = None
    value_from: EnvVarSource | None = None


class ContainerPort(IstioModel):
    container_port: int
    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


class HTTPGetAction(IstioModel):
    path: str = "/"
    port: int | str
    scheme: Literal["HTTP"] = "HTTP"


class TCPSocketAction(IstioModel):
    port: int | str


class ExecAction(IstioModel):
    command: list[str]


class Probe(IstioModel):
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    exec: ExecAction | None = None
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3


class ResourceRequirements(IstioModel):
    requests: dict[str, str | int] = Field(default_factory=dict)
    limits: dict[str, str | int] = Field(default_factory=dict)


class Container(IstioModel):
    name: str
    image: str | None = None
    image_pull_policy: str | None = None
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    ports: list[ContainerPort] = Field(default_factory=list)
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    resources: ResourceRequirements | None = None
    working_dir: str | None = None


class PodSpec(IstioModel):
    containers: list[Container]
    service_account_name: str | None = None
    termination_grace_period_seconds: int = 30
    restart_policy: Literal["Always"] = "Always"


class PodTemplateSpec(IstioModel):
    metadata: ObjectMeta | None = None
    spec: PodSpec


class RollingUpdateDeployment(IstioModel):
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"


class DeploymentStrategy(IstioModel):
    type: Literal["RollingUpdate", "Recreate"] = "RollingUpdate"
    rolling_update: RollingUpdateDeployment | None = None


class DeploymentSpec(IstioModel):
    replicas: int = 1
    selector: LabelSelector
    template: PodTemplateSpec
    strategy: DeploymentStrategy | None = None
    min_ready_seconds: int = 0


class Deployment(Resource):
    spec: DeploymentSpec
