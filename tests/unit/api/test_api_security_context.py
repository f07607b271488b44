"""securityContext on a Deployment's pod template: the fields the runtime enforces load,
the others read "not supported yet", and values are checked as the API server does (plus
capability names, which the API server leaves to the container runtime)."""

from __future__ import annotations

import pytest
from _apihelp import document, load, load_errors

from isthmus.api.capabilities import (
    DEFAULT_CAPABILITIES,
    LINUX_CAPABILITIES,
    capability_name,
    capability_number,
)
from isthmus.api.core import Deployment

PREFIX = "app.yaml:1 Deployment production/reviews: "
POD = "spec.template.spec.securityContext"
CONTAINER = "spec.template.spec.containers[0].securityContext"


def deployment(container: str = "", pod: str = "") -> str:
    """A Deployment whose pod and first container carry these securityContext bodies."""
    pod_line = f"    securityContext: {pod}\n" if pod else ""
    container_line = f"      securityContext: {container}\n" if container else ""
    return document(
        "Deployment",
        "selector: {matchLabels: {app: r}}\n"
        "template:\n"
        "  metadata: {labels: {app: r}}\n"
        "  spec:\n"
        f"{pod_line}"
        "    containers:\n"
        "    - name: app\n"
        "      command: [/bin/app]\n"
        f"{container_line}",
        api_version="apps/v1",
    )


def test_supported_fields_load() -> None:
    [loaded] = load(
        deployment(
            "{runAsUser: 1000, runAsGroup: 1000, runAsNonRoot: true, privileged: false, "
            "readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, "
            "capabilities: {drop: [ALL], add: [NET_BIND_SERVICE, CAP_NET_RAW, kill]}}",
            "{runAsUser: 2000, runAsGroup: 3000, runAsNonRoot: true, supplementalGroups: [4, 5]}",
        )
    )
    deployment_object = loaded.resource
    assert isinstance(deployment_object, Deployment)
    spec = deployment_object.spec.template.spec
    assert spec.security_context is not None
    assert spec.security_context.run_as_user == 2000
    assert spec.security_context.supplemental_groups == [4, 5]
    context = spec.containers[0].security_context
    assert context is not None and context.capabilities is not None
    assert context.run_as_user == 1000 and context.read_only_root_filesystem
    assert context.allow_privilege_escalation is False
    assert context.capabilities.add == ["NET_BIND_SERVICE", "CAP_NET_RAW", "kill"]


@pytest.mark.parametrize(
    "field",
    [
        "seLinuxOptions: {level: 's0:c1'}",
        "windowsOptions: {runAsUserName: x}",
        "procMount: Unmasked",
        "seccompProfile: {type: RuntimeDefault}",
        "appArmorProfile: {type: RuntimeDefault}",
    ],
)
def test_container_fields_not_supported_yet(field: str) -> None:
    name = field.split(":")[0]
    assert load_errors(deployment("{" + field + "}")) == [
        f"{PREFIX}{CONTAINER}.{name}: not supported yet"
    ]


@pytest.mark.parametrize(
    "field",
    [
        "seLinuxOptions: {level: 's0:c1'}",
        "seLinuxChangePolicy: Recursive",
        "windowsOptions: {runAsUserName: x}",
        "fsGroup: 2000",
        "fsGroupChangePolicy: Always",
        "sysctls: [{name: net.core.somaxconn, value: '1024'}]",
        "seccompProfile: {type: RuntimeDefault}",
        "appArmorProfile: {type: RuntimeDefault}",
        "supplementalGroupsPolicy: Strict",
    ],
)
def test_pod_fields_not_supported_yet(field: str) -> None:
    name = field.split(":")[0]
    assert load_errors(deployment(pod="{" + field + "}")) == [
        f"{PREFIX}{POD}.{name}: not supported yet"
    ]


@pytest.mark.parametrize(
    ("container", "pod", "error"),
    [
        (
            "{runAsUser: -1}",
            "",
            f"{CONTAINER}.runAsUser: must be between 0 and 2147483647, inclusive",
        ),
        (
            "{runAsGroup: 2147483648}",
            "",
            f"{CONTAINER}.runAsGroup: must be between 0 and 2147483647, inclusive",
        ),
        (
            "",
            "{runAsUser: -5}",
            f"{POD}.runAsUser: must be between 0 and 2147483647, inclusive",
        ),
        (
            "",
            "{supplementalGroups: [1, -1]}",
            f"{POD}.supplementalGroups[1]: must be between 0 and 2147483647, inclusive",
        ),
        ("{runAsUser: '1000'}", "", f'{CONTAINER}.runAsUser: must be an integer (got "1000")'),
        (
            "{capabilities: {add: [NET_BIND_SERVICE, NET_ADMINN]}}",
            "",
            f'{CONTAINER}.capabilities.add[1]: "NET_ADMINN" is not a Linux capability '
            "(like NET_BIND_SERVICE or CAP_NET_ADMIN, or ALL)",
        ),
        (
            "{capabilities: {drop: ['']}}",
            "",
            f'{CONTAINER}.capabilities.drop[0]: "" is not a Linux capability '
            "(like NET_BIND_SERVICE or CAP_NET_ADMIN, or ALL)",
        ),
        (
            "{capabilities: {keep: [CHOWN]}}",
            "",
            f"{CONTAINER}.capabilities.keep: unknown field",
        ),
        (
            "{allowPrivilegeEscalation: false, privileged: true}",
            "",
            f"{CONTAINER}: cannot set allowPrivilegeEscalation to false and privileged to true",
        ),
        (
            "{allowPrivilegeEscalation: false, capabilities: {add: [CAP_SYS_ADMIN]}}",
            "",
            f"{CONTAINER}: cannot set allowPrivilegeEscalation to false and "
            "capabilities.add SYS_ADMIN",
        ),
        (
            "{allowPrivilegeEscalation: false, capabilities: {add: [ALL]}}",
            "",
            f"{CONTAINER}: cannot set allowPrivilegeEscalation to false and "
            "capabilities.add SYS_ADMIN",
        ),
    ],
)
def test_values_are_checked(container: str, pod: str, error: str) -> None:
    assert load_errors(deployment(container, pod)) == [PREFIX + error]


def test_run_as_non_root_with_root_is_accepted_and_refused_when_the_pod_starts() -> None:
    """As in Kubernetes: the API server takes it, the kubelet (our runtime) refuses to
    start the container (see tests/unit/runtime/test_isolation.py)."""
    assert load(deployment("{runAsNonRoot: true, runAsUser: 0}"))


def test_capability_names() -> None:
    assert len(LINUX_CAPABILITIES) == 41
    assert capability_number("CHOWN") == 0 and capability_number("CHECKPOINT_RESTORE") == 40
    assert capability_number("NET_BIND_SERVICE") == 10
    assert set(LINUX_CAPABILITIES) > DEFAULT_CAPABILITIES and len(DEFAULT_CAPABILITIES) == 14
    for written in ("NET_ADMIN", "CAP_NET_ADMIN", "net_admin", "cap_net_admin", " NET_ADMIN "):
        assert capability_name(written) == "NET_ADMIN"
    assert capability_name("all") == capability_name("ALL") == "ALL"
    assert capability_name("CAP_ALL") is None
    assert capability_name("CAP_") is None and capability_name("ADMIN") is None
