"""securityContext resolution (as the kubelet and containerd do it) and the commands that
start an application container isolated: unshare + podinit + setpriv."""

from __future__ import annotations

import base64
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from isthmus.api.capabilities import DEFAULT_CAPABILITIES, LINUX_CAPABILITIES, capability_number
from isthmus.api.core import Container, PodSpec
from isthmus.runtime import podinit
from isthmus.runtime.isolation import (
    PODINIT,
    UNSHARE_ARGS,
    capability_list,
    container_argv,
    isolated_argv,
    setpriv_argv,
)
from isthmus.runtime.pod import Pod, PodContext
from isthmus.runtime.records import PodRecords
from isthmus.runtime.security_context import (
    ContainerConfigError,
    ContainerSecurity,
    resolve_capabilities,
    resolve_security,
)
from isthmus.runtime.shim_client import ShimClient


def spec(container: dict[str, Any] | None = None, pod: dict[str, Any] | None = None) -> PodSpec:
    data: dict[str, Any] = {
        "containers": [{"name": "app", "command": ["/bin/app"], **(container or {})}]
    }
    if pod is not None:
        data["securityContext"] = pod
    return PodSpec.model_validate(data)


def resolved(
    container: dict[str, Any] | None = None, pod: dict[str, Any] | None = None
) -> ContainerSecurity:
    pod_spec = spec({"securityContext": container} if container is not None else None, pod)
    return resolve_security(pod_spec, pod_spec.containers[0], primary_gid=lambda uid: None)


def mask(names: frozenset[str]) -> int:
    return sum(1 << capability_number(name) for name in names)


# --- resolution -------------------------------------------------------------------------


def test_default_is_root_with_containerds_capabilities() -> None:
    security = resolved()
    assert security == ContainerSecurity()
    assert (security.uid, security.gid, security.groups) == (0, 0, ())
    # The mask a Docker or containerd container shows as CapEff (and CapBnd).
    assert mask(security.capabilities) == 0xA80425FB
    assert not {"NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"} & security.capabilities
    assert security.ambient == frozenset()
    assert not (security.no_new_privs or security.privileged or security.read_only_root)


@pytest.mark.parametrize(
    ("capabilities", "expected"),
    [
        ({"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}, {"NET_BIND_SERVICE"}),
        ({"drop": ["all"]}, set()),
        (
            {"add": ["CAP_NET_ADMIN", "sys_ptrace"]},
            DEFAULT_CAPABILITIES | {"NET_ADMIN", "SYS_PTRACE"},
        ),
        ({"drop": ["NET_RAW", "cap_kill"]}, DEFAULT_CAPABILITIES - {"NET_RAW", "KILL"}),
        # containerd applies add ALL, then drop ALL, then the named ones.
        ({"add": ["ALL"], "drop": ["CHOWN"]}, set(LINUX_CAPABILITIES) - {"CHOWN"}),
        ({"add": ["ALL", "CHOWN"], "drop": ["ALL"]}, {"CHOWN"}),
        ({"add": ["KILL"], "drop": ["KILL"]}, DEFAULT_CAPABILITIES - {"KILL"}),
    ],
)
def test_capabilities_add_and_drop_in_containerds_order(
    capabilities: dict[str, list[str]], expected: set[str]
) -> None:
    assert resolved({"capabilities": capabilities}).capabilities == expected


def test_privileged_gets_every_capability_whatever_add_and_drop_say() -> None:
    security = resolved({"privileged": True, "capabilities": {"drop": ["ALL"]}})
    assert security.privileged
    assert security.capabilities == frozenset(LINUX_CAPABILITIES)


def test_container_fields_win_over_the_pods() -> None:
    pod = {"runAsUser": 1000, "runAsGroup": 2000, "supplementalGroups": [5, 6]}
    assert (resolved(None, pod).uid, resolved(None, pod).gid) == (1000, 2000)
    security = resolved({"runAsUser": 3000}, pod)
    assert (security.uid, security.gid, security.groups) == (3000, 2000, (5, 6))
    assert resolved({"runAsUser": 0, "runAsGroup": 0}, pod).uid == 0


def test_group_defaults_to_the_users_primary_group_else_root() -> None:
    pod_spec = spec({"securityContext": {"runAsUser": 1000}})
    known = resolve_security(pod_spec, pod_spec.containers[0], primary_gid=lambda uid: 1234)
    unknown = resolve_security(pod_spec, pod_spec.containers[0], primary_gid=lambda uid: None)
    assert (known.gid, unknown.gid) == (1234, 0)


def test_non_root_users_get_only_what_they_add_as_effective() -> None:
    plain = resolved({"runAsUser": 1000})
    assert plain.ambient == frozenset()  # no capabilities at all, as in Kubernetes
    bind = resolved(
        {
            "runAsUser": 1000,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
        }
    )
    assert bind.capabilities == bind.ambient == {"NET_BIND_SERVICE"}
    assert bind.no_new_privs
    # An add that a drop removes again is not effective either.
    dropped = resolved({"runAsUser": 7, "capabilities": {"add": ["KILL"], "drop": ["KILL"]}})
    assert dropped.ambient == frozenset()
    # Root's effective set is its bounding set; it needs no ambient capabilities.
    assert resolved({"capabilities": {"add": ["NET_ADMIN"]}}).ambient == frozenset()


@pytest.mark.parametrize(
    ("container", "pod", "message"),
    [
        ({"runAsNonRoot": True}, None, "container has runAsNonRoot and would run as root"),
        (None, {"runAsNonRoot": True}, "container has runAsNonRoot and would run as root"),
        ({"runAsUser": 0}, {"runAsNonRoot": True}, "container's runAsUser breaks non-root policy"),
        (
            {"runAsNonRoot": True, "runAsUser": 0},
            None,
            "container's runAsUser breaks non-root policy",
        ),
    ],
)
def test_run_as_non_root_refuses_root(
    container: dict[str, Any] | None, pod: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(ContainerConfigError, match=message):
        resolved(container, pod)


def test_run_as_non_root_allows_other_users_and_the_container_can_lift_it() -> None:
    assert resolved({"runAsUser": 1}, {"runAsNonRoot": True}).uid == 1
    assert resolved({"runAsNonRoot": False}, {"runAsNonRoot": True}).uid == 0


def test_read_only_root_and_no_new_privs() -> None:
    security = resolved({"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False})
    assert security.read_only_root and security.no_new_privs
    assert not resolved({"allowPrivilegeEscalation": True}).no_new_privs


def test_resolve_capabilities_without_settings_is_the_default() -> None:
    assert resolve_capabilities(None) == DEFAULT_CAPABILITIES


# --- commands -----------------------------------------------------------------------------


def test_capability_list_is_exact() -> None:
    assert capability_list([]) == "-all"
    assert capability_list({"NET_RAW", "CHOWN"}) == "-all,+chown,+net_raw"


def test_setpriv_for_root_bounds_capabilities_and_empties_inheritable() -> None:
    argv = setpriv_argv(resolved(), ["/bin/app", "--flag"], "setpriv")
    assert argv[: argv.index("--")] == [
        "setpriv",
        "--regid",
        "0",
        "--reuid",
        "0",
        "--clear-groups",
        "--bounding-set",
        capability_list(DEFAULT_CAPABILITIES),
        "--inh-caps",
        "-all",
        "--ambient-caps",
        "-all",
    ]
    assert argv[argv.index("--") + 1 :] == ["/bin/app", "--flag"]


def test_setpriv_for_a_user_with_added_capabilities() -> None:
    security = resolved(
        {
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
        },
        {"supplementalGroups": [10, 20]},
    )
    argv = setpriv_argv(security, ["app"], "setpriv")
    assert argv == [
        "setpriv",
        "--no-new-privs",
        "--regid",
        "1000",
        "--reuid",
        "1000",
        "--groups",
        "10,20",
        "--bounding-set",
        "-all,+net_bind_service",
        "--inh-caps",
        "-all,+net_bind_service",
        "--ambient-caps",
        "-all,+net_bind_service",
        "--",
        "app",
    ]


def test_setpriv_for_privileged_keeps_the_bounding_set() -> None:
    argv = setpriv_argv(resolved({"privileged": True}), ["app"], "setpriv")
    assert "--bounding-set" not in argv


def _plan(argv: list[str]) -> dict[str, Any]:
    plan = json.loads(base64.urlsafe_b64decode(argv[-1]))
    assert isinstance(plan, dict)
    return plan


def test_isolated_command_runs_podinit_in_new_pid_and_mount_namespaces() -> None:
    argv = isolated_argv(
        "web",
        resolved({"readOnlyRootFilesystem": True}),
        ["/usr/bin/python3", "-m", "isthmus.demo.app"],
        cwd="/srv",
        hidden=[Path("/home/mesh"), Path("/run/isthmus")],
        python="/py",
    )
    assert argv[0].endswith("unshare")
    assert argv[1 : 1 + len(UNSHARE_ARGS)] == list(UNSHARE_ARGS)
    assert {"--pid", "--fork", "--kill-child", "--mount", "--mount-proc"} <= set(argv)
    assert argv[1 + len(UNSHARE_ARGS) :][:5] == ["/py", "-I", "-S", str(PODINIT), "web"]
    # The application's command line is not in its wrappers' (a search by command line
    # finds the application itself).
    assert not any("isthmus.demo.app" in arg for arg in argv)
    plan = _plan(argv)
    assert plan["cwd"] == "/srv"
    assert plan["hide"] == ["/home/mesh", "/run/isthmus"]
    assert plan["readOnlyRoot"] is True and plan["privileged"] is False
    assert plan["exec"][0].endswith("setpriv")
    assert plan["exec"][-4:] == ["--", "/usr/bin/python3", "-m", "isthmus.demo.app"]


def test_container_command_defaults_to_root_directory_and_probes_run_as_the_container() -> None:
    container = Container.model_validate(
        {"name": "app", "command": ["/bin/app"], "args": ["--port", "80"]}
    )
    started = _plan(container_argv(container, resolved(), [Path("/h")]))
    assert started["cwd"] == "/"
    assert started["exec"][-3:] == ["/bin/app", "--port", "80"]
    probe = _plan(container_argv(container, resolved(), [Path("/h")], ["cat", "/tmp/ready"]))
    assert probe["exec"][-3:] == ["--", "cat", "/tmp/ready"]
    assert probe["exec"][:-2] == started["exec"][:-3]


def test_podinit_is_a_standalone_script() -> None:
    """It runs with `python -I -S`: no site packages, so no isthmus import."""
    source = PODINIT.read_text()
    assert "import isthmus" not in source and "from isthmus" not in source


def test_podinit_hides_outermost_existing_directories(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "ca").mkdir(parents=True)
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "file").write_text("")
    paths = [str(home / "ca"), str(home) + "/", str(run), "/", str(tmp_path / "gone")]
    paths.append(str(tmp_path / "file"))
    # Nested paths are covered by their parent, "/" is never hidden, nor non-directories.
    assert podinit.outermost(paths) == [str(home), str(run)]


def test_podinit_exit_code_is_the_applications() -> None:
    assert podinit.exit_code(3 << 8) == 3
    assert podinit.exit_code(signal.SIGKILL) == 128 + signal.SIGKILL
    assert podinit.exit_code(signal.SIGTERM) == 128 + signal.SIGTERM


async def test_a_pod_refuses_a_container_that_would_break_run_as_non_root(tmp_path: Path) -> None:
    """The kubelet's CreateContainerConfigError: not started, the reason in the container's
    log (`isthmus logs`) and in its status; the refusal happens before the shim is asked."""

    async def report(wait: bool) -> None:
        return None

    async def pod_token(namespace: str, pod: str, uid: str, service_account: str) -> str:
        raise AssertionError("not needed")

    ctx = PodContext(
        network=None,  # type: ignore[arg-type]  # a refused container reaches no network
        state_dir=tmp_path,
        proxy_dir=tmp_path / "run" / "mesh",
        shim_dir=tmp_path / "run" / "mesh" / "shims",
        xds_socket=str(tmp_path / "xds.sock"),
        hosts_for=lambda ns: {},
        report=report,
        records=PodRecords(tmp_path / "node" / "pods"),
        pod_token=pod_token,
    )
    assert ctx.hidden_paths() == (tmp_path, tmp_path / "run")
    pod_spec = spec(pod={"runAsNonRoot": True})
    pod = Pod(
        name="web-1",
        namespace="production",
        deployment="web",
        template_hash="h",
        labels={},
        annotations={},
        spec=pod_spec,
        inject=False,
        phase="Running",
    )
    pod.shim = ShimClient(tmp_path / "absent.sock")  # never called
    await pod._start_container(ctx, pod_spec.containers[0])
    message = (
        "container has runAsNonRoot and would run as root (no runAsUser is set) "
        "(pod: production/web-1, container: app)"
    )
    assert pod.refused == {"app": message}
    log = (pod.log_dir(ctx) / "app.log").read_text()
    assert log == f"isthmus: CreateContainerConfigError: {message}\n"
    [status] = pod.document("node", ctx)["status"]["containerStatuses"]
    assert status["state"] == {
        "waiting": {"reason": "CreateContainerConfigError", "message": message}
    }
    assert not status["ready"]
