"""How an application container is started: the command that isolates it from isthmus.

Identities mean nothing if an application can steal them. So an application container
(never the sidecar agent, which is trusted; never the capture rules, which the node
runtime writes before anything of the pod runs) is started as

    unshare --pid --fork --kill-child --mount --propagation private --mount-proc \\
        python -I -S podinit.py NAME PLAN

inside the pod's network namespace (the caller wraps it in `ip netns exec`), where
- `unshare` gives it a PID namespace of its own (it sees only its own processes, so it
  can signal no other pod's) and a private mount namespace (nothing it mounts reaches the
  host); it stays as the parent, small, blocks SIGTERM/SIGINT, exits with its child's
  status, and its child dies with it (--kill-child);
- runtime.podinit, PID 1 there, hides the mesh home and /run/isthmus (an addon's pod gets
  its own directory back, runtime.addons), gives it a container's /dev, /proc and /sys,
  and starts the application through `setpriv` as
  built by `setpriv_argv` (user, groups, capability sets, no_new_privs), then forwards
  signals, reaps, and exits with the application's status.

The shim signals the process group of `unshare`: SIGTERM reaches podinit, which passes it
on to the application's process group; SIGKILL kills `unshare` and podinit, and the kernel
kills everything in the PID namespace with its PID 1. If the shim dies, `unshare` dies
(PR_SET_PDEATHSIG), then podinit, then the rest: no orphan outlives the pod.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from isthmus.api.core import Container
from isthmus.netns.commands import tool_path
from isthmus.runtime.security_context import ContainerSecurity

PODINIT = Path(__file__).with_name("podinit.py")
UNSHARE_ARGS = (
    "--pid",
    "--fork",
    "--kill-child",
    "--mount",
    "--propagation",
    "private",
    "--mount-proc",
)


def capability_list(names: Iterable[str]) -> str:
    """setpriv's notation for exactly these capabilities: `-all,+chown,+kill`."""
    return ",".join(["-all", *(f"+{name.lower()}" for name in sorted(names))])


def setpriv_argv(security: ContainerSecurity, argv: Sequence[str], setpriv: str) -> list[str]:
    """`setpriv ... -- argv`: exec argv as the container's user, groups and capabilities.

    For root, the bounding set is also what it gets as permitted and effective on exec;
    for another user, its effective capabilities are its ambient ones (none unless
    capabilities.add named some); a privileged container keeps every capability."""
    command = [setpriv]
    if security.no_new_privs:
        command.append("--no-new-privs")
    command += ["--regid", str(security.gid), "--reuid", str(security.uid)]
    if security.groups:
        command += ["--groups", ",".join(str(g) for g in security.groups)]
    else:
        command.append("--clear-groups")
    if not security.privileged:
        command += ["--bounding-set", capability_list(security.capabilities)]
    command += ["--inh-caps", capability_list(security.ambient)]
    command += ["--ambient-caps", capability_list(security.ambient)]
    return [*command, "--", *argv]


def isolated_argv(
    name: str,
    security: ContainerSecurity,
    argv: Sequence[str],
    *,
    cwd: str,
    hidden: Iterable[Path],
    exposed: Iterable[tuple[Path, Path]] = (),
    python: str = sys.executable,
) -> list[str]:
    """The command that runs `argv` as container `name`, isolated (see the module
    docstring); wrap it in the pod's `ip netns exec`.

    The plan travels base64-encoded, so that this command line does not contain the
    application's: whoever looks for the application by its command line (`ps`, tests
    that stall it) finds the application, not its wrappers. `exposed` are (host directory,
    path in the container) pairs that podinit binds back inside a hidden path."""
    plan = {
        "exec": setpriv_argv(security, argv, tool_path("setpriv")),
        "cwd": cwd,
        "hide": [str(path) for path in hidden],
        "expose": [[str(source), str(target)] for source, target in exposed],
        "privileged": security.privileged,
        "readOnlyRoot": security.read_only_root,
    }
    encoded = base64.urlsafe_b64encode(json.dumps(plan, separators=(",", ":")).encode())
    return [
        tool_path("unshare"),
        *UNSHARE_ARGS,
        python,
        "-I",
        "-S",
        str(PODINIT),
        name,
        encoded.decode(),
    ]


def container_argv(
    container: Container,
    security: ContainerSecurity,
    hidden: Iterable[Path],
    argv: Sequence[str] | None = None,
    exposed: Iterable[tuple[Path, Path]] = (),
) -> list[str]:
    """The isolated command of `container`: its command and args, or `argv` (an exec
    probe, which runs as its container does)."""
    command = [*container.command, *container.args] if argv is None else list(argv)
    return isolated_argv(
        container.name,
        security,
        command,
        cwd=container.working_dir or "/",
        hidden=hidden,
        exposed=exposed,
    )
