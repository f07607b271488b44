"""Kubernetes kind checks (Service, Deployment) following the API server's validation:
port ranges and names, selector-to-template consistency, unique container names.

A gateway pod (Istio's gateway injection: a container `istio-proxy` with `image: auto`)
runs isthmus-agent as that container, so it needs no `command` and refuses what would
change the agent (command, args, env, workingDir, probes) and any other container, as not
supported yet; only a gateway pod may carry `isthmus.io/published-ports`."""

from __future__ import annotations

import re

from isthmus.api import names
from isthmus.api.capabilities import ALL, capability_name
from isthmus.api.checks_common import check_labels, check_non_negative, check_port, check_unique
from isthmus.api.core import (
    Capabilities,
    Container,
    Deployment,
    DeploymentStrategy,
    PodSecurityContext,
    PodSpec,
    Probe,
    ResourceRequirements,
    SecurityContext,
    Service,
    ServiceAccount,
    is_gateway_container,
)
from isthmus.api.errors import FieldPath, Problems, short_repr
from isthmus.api.published_ports import (
    PUBLISHED_PORTS_ANNOTATION,
    PublishedPortError,
    parse_published_ports,
)

_QUANTITY = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?"
)
_PERCENT = re.compile(r"[0-9]+%")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_MAX_ID = 2**31 - 1  # Kubernetes' limit for user and group ids


def check_service(service: Service, problems: Problems) -> None:
    spec = service.spec
    path = FieldPath("spec")
    headless = spec.cluster_ip == "None"
    if not spec.ports and not headless:
        problems.add(path.field("ports"), "at least one port is required")
    for position, port in enumerate(spec.ports):
        here = path.field("ports").index(position)
        check_port(problems, here.field("port"), port.port)
        if port.name is None:
            if len(spec.ports) > 1:
                problems.add(here.field("name"), "is required when a Service has several ports")
        else:
            problem = names.dns1123_label_error(port.name)
            if problem:
                problems.add(here.field("name"), problem)
        _check_port_reference(problems, here.field("targetPort"), port.target_port)
    check_unique(problems, path.field("ports"), (p.name for p in spec.ports if p.name), "port name")
    check_unique(
        problems, path.field("ports"), (f"{p.port}/{p.protocol}" for p in spec.ports), "port"
    )
    check_labels(problems, path.field("selector"), spec.selector)
    if spec.cluster_ip not in (None, "", "None") and not names.is_ip_address(spec.cluster_ip):
        problems.add(path.field("clusterIP"), 'must be an IP address, "None" or empty')


def _check_port_reference(problems: Problems, path: FieldPath, port: int | str | None) -> None:
    """A port number, or the name of a container port."""
    if isinstance(port, int):
        check_port(problems, path, port)
    elif isinstance(port, str):
        problem = names.iana_service_name_error(port)
        if problem:
            problems.add(path, problem)


def check_deployment(deployment: Deployment, problems: Problems) -> None:
    spec = deployment.spec
    path = FieldPath("spec")
    check_non_negative(problems, path.field("replicas"), spec.replicas)
    check_non_negative(problems, path.field("minReadySeconds"), spec.min_ready_seconds)
    selector = spec.selector.match_labels
    selector_path = path.field("selector").field("matchLabels")
    template_labels = spec.template.metadata.labels if spec.template.metadata else {}
    labels_path = path.field("template").field("metadata").field("labels")
    if not selector:
        problems.add(selector_path, "must not be empty")
    check_labels(problems, selector_path, selector)
    check_labels(problems, labels_path, template_labels)
    missing = [
        f"{key}={value}" for key, value in selector.items() if template_labels.get(key) != value
    ]
    if missing:
        problems.add(
            labels_path,
            f"selector does not match template labels (missing {', '.join(sorted(missing))})",
        )
    if spec.strategy is not None:
        _check_strategy(problems, path.field("strategy"), spec.strategy)
    _check_pod_spec(problems, path.field("template").field("spec"), spec.template.spec)
    annotations = spec.template.metadata.annotations if spec.template.metadata else {}
    _check_published_ports(
        problems,
        path.field("template").field("metadata").field("annotations"),
        annotations,
        spec.template.spec,
    )


def _check_published_ports(
    problems: Problems, path: FieldPath, annotations: dict[str, str], pod: PodSpec
) -> None:
    value = annotations.get(PUBLISHED_PORTS_ANNOTATION)
    if value is None:
        return
    here = path.key(PUBLISHED_PORTS_ANNOTATION)
    if not pod.gateway:
        problems.add(
            here,
            "is honoured only on a gateway pod (a container istio-proxy with image: auto)",
        )
        return
    try:
        parse_published_ports(value)
    except PublishedPortError as error:
        problems.add(here, str(error))


def _check_strategy(problems: Problems, path: FieldPath, strategy: DeploymentStrategy) -> None:
    rolling = strategy.rolling_update
    if rolling is None:
        return
    if strategy.type != "RollingUpdate":
        problems.add(path.field("rollingUpdate"), "is only allowed with type RollingUpdate")
        return
    here = path.field("rollingUpdate")
    for field, value in (
        ("maxSurge", rolling.max_surge),
        ("maxUnavailable", rolling.max_unavailable),
    ):
        if isinstance(value, int):
            check_non_negative(problems, here.field(field), value)
        elif not _PERCENT.fullmatch(value):
            problems.add(here.field(field), 'must be a number or a percentage like "25%"')
    if _is_zero(rolling.max_surge) and _is_zero(rolling.max_unavailable):
        problems.add(here, "maxSurge and maxUnavailable must not both be 0")


def _is_zero(value: int | str) -> bool:
    if isinstance(value, int):
        return value == 0
    return _PERCENT.fullmatch(value) is not None and int(value[:-1]) == 0


def _check_pod_spec(problems: Problems, path: FieldPath, pod: PodSpec) -> None:
    containers_path = path.field("containers")
    if not pod.containers:
        problems.add(containers_path, "at least one container is required")
    gateway = pod.gateway
    for position, container in enumerate(pod.containers):
        here = containers_path.index(position)
        if gateway and not is_gateway_container(container):
            problems.add(
                here,
                "a gateway pod (container istio-proxy with image: auto) runs its proxy only: "
                "other containers are not supported yet",
            )
        _check_container(problems, here, container)
    check_unique(problems, containers_path, (c.name for c in pod.containers), "container name")
    check_non_negative(
        problems, path.field("terminationGracePeriodSeconds"), pod.termination_grace_period_seconds
    )
    if pod.service_account_name and names.dns1123_subdomain_error(pod.service_account_name):
        problems.add(path.field("serviceAccountName"), "must be a service account name")
    if pod.security_context is not None:
        _check_pod_security(problems, path.field("securityContext"), pod.security_context)


# fieldRef paths the local runtime fills in (pods have no node, so no spec.nodeName).
FIELD_REF_PATHS = ("metadata.name", "metadata.namespace", "status.podIP", "spec.serviceAccountName")


_GATEWAY_REFUSED = (
    "is not supported yet on a gateway's istio-proxy container (it runs isthmus-agent)"
)


def _check_gateway_container(problems: Problems, path: FieldPath, container: Container) -> None:
    """The agent is the container: what would change what runs or its readiness (15021,
    the agent's) is refused. Its image, imagePullPolicy and resources are recorded and not
    used, as every container's; its securityContext too (checked, not applied): the agent
    runs as a sidecar's agent does and its Envoy as root (the published ports need it)."""
    for field, value in (
        ("command", container.command),
        ("args", container.args),
        ("env", container.env),
        ("workingDir", container.working_dir),
        ("readinessProbe", container.readiness_probe),
        ("livenessProbe", container.liveness_probe),
    ):
        if value:
            problems.add(path.field(field), _GATEWAY_REFUSED)


def _check_container(problems: Problems, path: FieldPath, container: Container) -> None:
    problem = names.dns1123_label_error(container.name)
    if problem:
        problems.add(path.field("name"), problem)
    if is_gateway_container(container):
        _check_gateway_container(problems, path, container)
    elif not container.command:
        # No images are pulled: the local runtime runs command + args from the host.
        problems.add(
            path.field("command"),
            "is required: isthmus runs command/args from the host filesystem (image is not used)",
        )
    if (
        container.image_pull_policy is not None
        and container.image_pull_policy not in _PULL_POLICIES
    ):
        problems.add(path.field("imagePullPolicy"), f"must be one of {', '.join(_PULL_POLICIES)}")
    for position, port in enumerate(container.ports):
        here = path.field("ports").index(position)
        check_port(problems, here.field("containerPort"), port.container_port)
        if port.name is not None:
            problem = names.iana_service_name_error(port.name)
            if problem:
                problems.add(here.field("name"), problem)
    check_unique(
        problems, path.field("ports"), (p.name for p in container.ports if p.name), "port name"
    )
    for position, env in enumerate(container.env):
        here = path.field("env").index(position)
        if not env.name or "=" in env.name:
            problems.add(here.field("name"), "must be a non-empty name without '='")
        if env.value is not None and env.value_from is not None:
            problems.add(here, "set only one of value and valueFrom")
        if env.value_from is not None and env.value_from.field_ref is None:
            problems.add(here.field("valueFrom").field("fieldRef"), "is required")
        elif env.value_from is not None and env.value_from.field_ref is not None:
            field_ref = env.value_from.field_ref
            field_path = field_ref.field_path
            if field_ref.api_version not in (None, "v1"):  # the only version (Kubernetes)
                problems.add(
                    here.field("valueFrom").field("fieldRef").field("apiVersion"),
                    f"must be v1 (got {field_ref.api_version!r})",
                )
            if field_path not in FIELD_REF_PATHS:
                problems.add(
                    here.field("valueFrom").field("fieldRef").field("fieldPath"),
                    f"{field_path!r} is not supported yet "
                    f"(supported: {', '.join(FIELD_REF_PATHS)})",
                )
    for field, probe in (
        ("readinessProbe", container.readiness_probe),
        ("livenessProbe", container.liveness_probe),
    ):
        if probe is not None:
            _check_probe(problems, path.field(field), probe, liveness=field == "livenessProbe")
    if container.resources is not None:
        _check_resources(problems, path.field("resources"), container.resources)
    if container.security_context is not None:
        _check_security(problems, path.field("securityContext"), container.security_context)


def _check_id(problems: Problems, path: FieldPath, value: int | None) -> None:
    if value is not None and not 0 <= value <= _MAX_ID:
        problems.add(path, f"must be between 0 and {_MAX_ID}, inclusive")


def _check_pod_security(problems: Problems, path: FieldPath, context: PodSecurityContext) -> None:
    _check_id(problems, path.field("runAsUser"), context.run_as_user)
    _check_id(problems, path.field("runAsGroup"), context.run_as_group)
    for position, group in enumerate(context.supplemental_groups):
        _check_id(problems, path.field("supplementalGroups").index(position), group)


def _check_security(problems: Problems, path: FieldPath, context: SecurityContext) -> None:
    """Kubernetes' rules, and capability names checked here rather than by the runtime
    when the container starts."""
    _check_id(problems, path.field("runAsUser"), context.run_as_user)
    _check_id(problems, path.field("runAsGroup"), context.run_as_group)
    added: set[str] = set()
    if context.capabilities is not None:
        added = _check_capabilities(problems, path.field("capabilities"), context.capabilities)
    if context.allow_privilege_escalation is False:
        if context.privileged:
            problems.add(
                path, "cannot set allowPrivilegeEscalation to false and privileged to true"
            )
        if "SYS_ADMIN" in added:
            problems.add(
                path, "cannot set allowPrivilegeEscalation to false and capabilities.add SYS_ADMIN"
            )


def _check_capabilities(
    problems: Problems, path: FieldPath, capabilities: Capabilities
) -> set[str]:
    """Every name must be a Linux capability (CAP_ prefix optional) or ALL; the names added."""
    added: set[str] = set()
    for field, values in (("add", capabilities.add), ("drop", capabilities.drop)):
        for position, value in enumerate(values):
            name = capability_name(value)
            if name is None:
                problems.add(
                    path.field(field).index(position),
                    f"{short_repr(value)} is not a Linux capability "
                    "(like NET_BIND_SERVICE or CAP_NET_ADMIN, or ALL)",
                )
            elif field == "add":
                added.add(name)
    if ALL in added:
        added.add("SYS_ADMIN")
    return added


def _check_probe(problems: Problems, path: FieldPath, probe: Probe, *, liveness: bool) -> None:
    handlers = [
        name
        for name, value in (
            ("httpGet", probe.http_get),
            ("tcpSocket", probe.tcp_socket),
            ("exec", probe.exec),
        )
        if value is not None
    ]
    if len(handlers) != 1:
        found = f" (found {', '.join(handlers)})" if handlers else ""
        problems.add(path, f"set exactly one of httpGet, tcpSocket and exec{found}")
    if probe.http_get is not None:
        _check_port_reference(problems, path.field("httpGet").field("port"), probe.http_get.port)
        if not probe.http_get.path.startswith("/"):
            problems.add(path.field("httpGet").field("path"), 'must start with "/"')
    if probe.tcp_socket is not None:
        _check_port_reference(
            problems, path.field("tcpSocket").field("port"), probe.tcp_socket.port
        )
    if probe.exec is not None and not probe.exec.command:
        problems.add(path.field("exec").field("command"), "must not be empty")
    check_non_negative(problems, path.field("initialDelaySeconds"), probe.initial_delay_seconds)
    for field, value in (
        ("periodSeconds", probe.period_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ):
        if value < 1:
            problems.add(path.field(field), "must be at least 1")
    if liveness and probe.success_threshold != 1:
        problems.add(path.field("successThreshold"), "must be 1 for a liveness probe")


def _check_resources(problems: Problems, path: FieldPath, resources: ResourceRequirements) -> None:
    for field, quantities in (("requests", resources.requests), ("limits", resources.limits)):
        for name, quantity in quantities.items():
            if isinstance(quantity, int):
                check_non_negative(problems, path.field(field).key(name), quantity)
            elif not _QUANTITY.fullmatch(quantity):
                problems.add(
                    path.field(field).key(name),
                    f"{short_repr(quantity)} is not a quantity like 500m or 64Mi",
                )


def check_service_account(account: ServiceAccount, problems: Problems) -> None:
    """isthmus mounts no Kubernetes API token into any pod: `false` says what happens,
    `true` asks for what isthmus does not do."""
    if account.automount_service_account_token:
        problems.add(
            FieldPath("automountServiceAccountToken"),
            "true is not supported yet (isthmus mounts no Kubernetes API token into pods)",
        )
