"""Kubernetes kinds isthmus accepts: v1 Namespace, Service, ServiceAccount; apps/v1 Deployment.

Only the fields isthmus acts on are modelled; anything else is rejected rather than
silently ignored (well-known Kubernetes fields read "not supported yet"). The loader drops
the server-populated top-level `status` before validation.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from isthmus.api.base import Int32, IntOrString, IstioModel, Resource

# Istio's gateway injection (istio.io/latest/docs/setup/additional-setup/gateway): a pod
# whose template has a container `istio-proxy` with `image: auto` is a gateway, its proxy
# a standalone router. The local runtime runs isthmus-agent as that container.
PROXY_CONTAINER = "istio-proxy"
GATEWAY_IMAGE = "auto"


class NamespaceSpec(IstioModel):
    finalizers: list[str] = Field(default_factory=list)


class Namespace(Resource):
    """Cluster-scoped; `istio-injection` and other labels live in metadata."""

    spec: NamespaceSpec | None = None


class ServiceAccount(Resource):
    automount_service_account_token: bool | None = None


class ServicePortSpec(IstioModel):
    not_supported_fields = frozenset({"nodePort"})

    port: Int32
    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    app_protocol: str | None = None
    target_port: IntOrString | None = None


class ServiceSpec(IstioModel):
    not_supported_fields = frozenset(
        {
            "clusterIPs",
            "externalIPs",
            "externalName",
            "externalTrafficPolicy",
            "internalTrafficPolicy",
            "healthCheckNodePort",
            "ipFamilies",
            "ipFamilyPolicy",
            "loadBalancerIP",
            "loadBalancerClass",
            "loadBalancerSourceRanges",
            "allocateLoadBalancerNodePorts",
            "publishNotReadyAddresses",
            "sessionAffinity",
            "sessionAffinityConfig",
            "trafficDistribution",
        }
    )

    ports: list[ServicePortSpec] = Field(default_factory=list)
    selector: dict[str, str] = Field(default_factory=dict)
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    type: Literal["ClusterIP"] = "ClusterIP"


class Service(Resource):
    spec: ServiceSpec


class LabelSelector(IstioModel):
    not_supported_fields = frozenset({"matchExpressions"})

    match_labels: dict[str, str] = Field(default_factory=dict)


class ObjectFieldSelector(IstioModel):
    field_path: str
    api_version: str | None = None


class EnvVarSource(IstioModel):
    """Only the downward API's fieldRef; validation requires it."""

    not_supported_fields = frozenset({"secretKeyRef", "configMapKeyRef", "resourceFieldRef"})

    field_ref: ObjectFieldSelector | None = None


class EnvVar(IstioModel):
    name: str
    value: str | None = None
    value_from: EnvVarSource | None = None


class ContainerPort(IstioModel):
    not_supported_fields = frozenset({"hostPort", "hostIP"})

    container_port: Int32
    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


class HTTPGetAction(IstioModel):
    not_supported_fields = frozenset({"host", "httpHeaders"})

    path: str = "/"
    port: IntOrString
    scheme: Literal["HTTP"] = "HTTP"


class TCPSocketAction(IstioModel):
    not_supported_fields = frozenset({"host"})

    port: IntOrString


class ExecAction(IstioModel):
    command: list[str]


class Probe(IstioModel):
    """Exactly one handler: httpGet, tcpSocket or exec."""

    not_supported_fields = frozenset({"grpc", "terminationGracePeriodSeconds"})

    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    exec: ExecAction | None = None
    initial_delay_seconds: Int32 = 0
    period_seconds: Int32 = 10
    timeout_seconds: Int32 = 1
    success_threshold: Int32 = 1
    failure_threshold: Int32 = 3


class ResourceRequirements(IstioModel):
    not_supported_fields = frozenset({"claims"})

    requests: dict[str, IntOrString] = Field(default_factory=dict)
    limits: dict[str, IntOrString] = Field(default_factory=dict)


class Capabilities(IstioModel):
    """Names with or without the CAP_ prefix; "ALL" in either list means every capability."""

    add: list[str] = Field(default_factory=list)
    drop: list[str] = Field(default_factory=list)


class SecurityContext(IstioModel):
    """A container's securityContext; it wins over the pod's for the fields both have.

    runtime.isolation enforces it (user, capabilities, no_new_privs, read-only root)."""

    not_supported_fields = frozenset(
        {"seLinuxOptions", "windowsOptions", "procMount", "seccompProfile", "appArmorProfile"}
    )

    capabilities: Capabilities | None = None
    privileged: bool | None = None
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    read_only_root_filesystem: bool | None = None
    allow_privilege_escalation: bool | None = None


class PodSecurityContext(IstioModel):
    """The pod's securityContext: defaults for its containers' user and groups."""

    not_supported_fields = frozenset(
        {
            "seLinuxOptions",
            "seLinuxChangePolicy",
            "windowsOptions",
            "fsGroup",
            "fsGroupChangePolicy",
            "sysctls",
            "seccompProfile",
            "appArmorProfile",
            "supplementalGroupsPolicy",
        }
    )

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    supplemental_groups: list[int] = Field(default_factory=list)


class Container(IstioModel):
    not_supported_fields = frozenset(
        {
            "envFrom",
            "volumeMounts",
            "volumeDevices",
            "lifecycle",
            "startupProbe",
            "stdin",
            "stdinOnce",
            "tty",
            "terminationMessagePath",
            "terminationMessagePolicy",
            "resizePolicy",
            "restartPolicy",
        }
    )

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
    security_context: SecurityContext | None = None


class PodSpec(IstioModel):
    not_supported_fields = frozenset(
        {
            "volumes",
            "initContainers",
            "ephemeralContainers",
            "nodeSelector",
            "nodeName",
            "affinity",
            "tolerations",
            "hostNetwork",
            "hostPID",
            "hostIPC",
            "hostAliases",
            "imagePullSecrets",
            "dnsPolicy",
            "dnsConfig",
            "priorityClassName",
            "schedulerName",
            "automountServiceAccountToken",
            "serviceAccount",
            "shareProcessNamespace",
            "topologySpreadConstraints",
            "activeDeadlineSeconds",
            "runtimeClassName",
            "hostname",
            "subdomain",
        }
    )

    containers: list[Container]
    service_account_name: str | None = None
    termination_grace_period_seconds: Int32 = 30
    restart_policy: Literal["Always"] = "Always"
    security_context: PodSecurityContext | None = None

    @property
    def gateway(self) -> bool:
        """Istio's gateway injection: a container `istio-proxy` whose image is `auto`."""
        return any(is_gateway_container(c) for c in self.containers)


def is_gateway_container(container: Container) -> bool:
    """The proxy container of a gateway pod (isthmus-agent in router mode)."""
    return container.name == PROXY_CONTAINER and container.image == GATEWAY_IMAGE


class PodTemplateMeta(IstioModel):
    """A pod template's metadata: pods get their names from the Deployment."""

    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class PodTemplateSpec(IstioModel):
    metadata: PodTemplateMeta | None = None
    spec: PodSpec


class RollingUpdateDeployment(IstioModel):
    max_surge: IntOrString = "25%"
    max_unavailable: IntOrString = "25%"


class DeploymentStrategy(IstioModel):
    type: Literal["RollingUpdate", "Recreate"] = "RollingUpdate"
    rolling_update: RollingUpdateDeployment | None = None


class DeploymentSpec(IstioModel):
    not_supported_fields = frozenset({"revisionHistoryLimit", "progressDeadlineSeconds", "paused"})

    replicas: Int32 = 1
    selector: LabelSelector
    template: PodTemplateSpec
    strategy: DeploymentStrategy | None = None
    min_ready_seconds: Int32 = 0


class Deployment(Resource):
    spec: DeploymentSpec
