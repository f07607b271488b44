"""Isolated containers for real (root): started by a real shim through unshare, podinit and
setpriv, in a throwaway network namespace. What the application sees (capabilities, its
own processes only, no isthmus state, a container's /dev), and how it stops: gracefully
on SIGTERM, killed with everything it started after the grace period, and never outliving
its shim."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from isthmus.api.core import PodSpec
from isthmus.runtime.isolation import isolated_argv
from isthmus.runtime.process import process_alive
from isthmus.runtime.security_context import ContainerSecurity, resolve_security
from isthmus.runtime.shim_client import ShimClient, launch_shim

pytestmark = pytest.mark.root

REPORT = r"""
import json, os, signal, socket, sys

def attempt(action):
    try:
        action()
        return "allowed"
    except OSError as exc:
        return type(exc).__name__

def bind_80():
    with socket.socket() as s:
        s.bind(("0.0.0.0", 80))

def make_device():
    os.mknod(os.environ["SCRATCH"] + ".dev", 0o600 | 0o60000, os.makedev(1, 3))

def write(path):
    with open(path, "w") as f:
        f.write("x")

status = dict(
    line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line
)
secret = os.environ["SECRET"]
print(json.dumps({
    "pid": os.getpid(),
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "status": {k: v.strip() for k, v in status.items()},
    "home": sorted(os.listdir(os.path.dirname(os.path.dirname(secret)))),
    "secret": attempt(lambda: open(secret).read()),
    "cwd": os.getcwd(),
    "dev": sorted(os.listdir("/dev")),
    "kill_host_pid": attempt(lambda: os.kill(int(os.environ["HOST_PID"]), 0)),
    "bind_80": attempt(bind_80),
    "write_tmp": attempt(lambda: write(os.environ["SCRATCH"])),
    "write_shm": attempt(lambda: write("/dev/shm/x")),
    "write_null": attempt(lambda: write("/dev/null")),
    "mknod": attempt(make_device),
    "open_device": attempt(lambda: open(os.environ["SCRATCH"] + ".dev", "rb").close()),
    "core_pattern": attempt(lambda: write("/proc/sys/kernel/core_pattern")),
}), flush=True)
signal.pause()
"""


class Sandbox:
    """A shim, a fake mesh home with a CA key in it, and a scratch directory."""

    def __init__(self, root: Path, shim: ShimClient) -> None:
        self.root = root
        self.shim = shim
        self.home = root / "home"
        (self.home / "ca").mkdir(parents=True)
        self.secret = self.home / "ca" / "ca-key.pem"
        self.secret.write_text("-----BEGIN PRIVATE KEY-----\n")
        self.scratch = Path(tempfile.mkdtemp(prefix="iso-scratch-", dir="/tmp"))
        os.chmod(self.scratch, 0o777)

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    async def start(
        self,
        name: str,
        script: str,
        security: ContainerSecurity | None = None,
        exposed: tuple[tuple[Path, Path], ...] = (),
        hidden: tuple[Path, ...] = (),
    ) -> None:
        argv = isolated_argv(
            name,
            security or ContainerSecurity(),
            [sys.executable, "-c", script],
            cwd="/",
            hidden=[self.home, *hidden],
            exposed=exposed,
        )
        env = {
            "PATH": os.environ["PATH"],
            "SECRET": str(self.secret),
            "HOST_PID": str(os.getpid()),
            "SCRATCH": str(self.scratch / name),
        }
        # A network namespace of its own, as `ip netns exec` gives a pod's containers.
        command = [shutil.which("unshare") or "unshare", "--net", *argv]
        await self.shim.start(name, command, self.log(name), env=env, cwd="/")

    async def line(self, name: str, timeout: float = 10.0) -> str:
        path = self.log(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and (text := path.read_text()).strip():
                return text.strip().splitlines()[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"{name} printed nothing: {path.read_text() if path.exists() else ''}")

    async def report(self, name: str) -> dict[str, Any]:
        first = await self.line(name)
        try:
            report = json.loads(first)
        except ValueError:
            raise AssertionError(f"{name} failed: {self.log(name).read_text()}") from None
        assert isinstance(report, dict)
        return report


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("setpriv") is None:
        pytest.skip("needs root, unshare and setpriv")
    root = Path(tempfile.mkdtemp(prefix="iso-", dir="/tmp"))
    os.chmod(root, 0o755)  # as a mesh home is: other users may look, not read the CA key
    client = await launch_shim("ns.iso", root / "s.sock", root / "shim.log")
    box = Sandbox(root, client)
    try:
        yield box
    finally:
        if await client.alive():
            await client.exit(grace=1)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(box.scratch, ignore_errors=True)


def security(container: dict[str, Any]) -> ContainerSecurity:
    spec = PodSpec.model_validate(
        {"containers": [{"name": "c", "command": ["x"], "securityContext": container}]}
    )
    return resolve_security(spec, spec.containers[0])


def capability_mask(status: dict[str, str], field: str) -> int:
    return int(status[field], 16)


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_default_container_is_isolated_from_isthmus_and_the_host(sandbox: Sandbox) -> None:
    await sandbox.start("app", REPORT)
    report = await sandbox.report("app")
    status = report["status"]
    # Kubernetes' default capabilities, as bounding, permitted and effective set.
    for field in ("CapEff", "CapPrm", "CapBnd"):
        assert capability_mask(status, field) == 0xA80425FB, (field, status[field])
    assert capability_mask(status, "CapInh") == 0
    assert status["Uid"].split() == ["0"] * 4 and status["NoNewPrivs"] == "0"
    # Its own PID namespace: it is PID 2 under podinit, and sees nothing else.
    assert report["pid"] == 2 and report["pids"] == [1, 2]
    assert report["kill_host_pid"] == "ProcessLookupError"
    # The mesh home is an empty directory: no CA key to read.
    assert report["home"] == [] and report["secret"] == "FileNotFoundError"
    assert sandbox.secret.exists()  # hidden from it, not from the host
    assert report["cwd"] == "/"
    # A container's /dev; device nodes made elsewhere do not open; /proc/sys is read-only.
    assert report["dev"] == sorted(
        [
            *("fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout"),
            *("tty", "urandom", "zero"),
        ]
    )
    assert report["write_null"] == report["write_shm"] == report["write_tmp"] == "allowed"
    assert report["bind_80"] == "allowed"
    assert report["core_pattern"] == "OSError"  # EROFS
    # CAP_MKNOD makes device nodes, but nodev everywhere but its own /dev makes them inert.
    assert report["mknod"] == "allowed" and report["open_device"] == "PermissionError"


async def test_security_context_user_no_new_privs_and_capabilities(sandbox: Sandbox) -> None:
    wanted = security(
        {
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
        }
    )
    await sandbox.start("user", REPORT, wanted)
    report = await sandbox.report("user")
    status = report["status"]
    assert status["Uid"].split() == ["1000"] * 4 and status["Gid"].split() == ["1000"] * 4
    assert status["Groups"] == ""
    assert status["NoNewPrivs"] == "1"
    for field in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        assert capability_mask(status, field) == 1 << 10, (field, status[field])  # bind only
    assert report["bind_80"] == "allowed"
    assert report["kill_host_pid"] == "ProcessLookupError"
    assert report["mknod"] == "PermissionError"


async def test_non_root_without_added_capabilities_has_none(sandbox: Sandbox) -> None:
    await sandbox.start("plain", REPORT, security({"runAsUser": 1000}))
    status = (await sandbox.report("plain"))["status"]
    assert capability_mask(status, "CapEff") == capability_mask(status, "CapPrm") == 0
    assert capability_mask(status, "CapBnd") == 0xA80425FB


async def test_read_only_root_filesystem(sandbox: Sandbox) -> None:
    await sandbox.start("ro", REPORT, security({"readOnlyRootFilesystem": True}))
    report = await sandbox.report("ro")
    assert report["write_tmp"] == "OSError"  # EROFS
    assert report["write_shm"] == report["write_null"] == "allowed"


async def test_privileged_gets_every_capability_and_still_its_own_namespaces(
    sandbox: Sandbox,
) -> None:
    await sandbox.start("priv", REPORT, security({"privileged": True}))
    report = await sandbox.report("priv")
    # Every capability this machine has (a sandboxed CI host may lack some).
    own = dict(line.split(":\t", 1) for line in Path("/proc/self/status").read_text().splitlines())
    assert capability_mask(report["status"], "CapEff") == int(own["CapBnd"], 16)
    assert report["pids"] == [1, 2] and report["secret"] == "FileNotFoundError"


GRACEFUL = r"""
import signal, sys, time
def stop(*_):
    print("SIGTERM", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


async def test_sigterm_reaches_the_application(sandbox: Sandbox) -> None:
    await sandbox.start("graceful", GRACEFUL)
    assert await sandbox.line("graceful") == "ready"
    started = time.monotonic()
    await sandbox.shim.stop(["graceful"], grace=20)
    assert time.monotonic() - started < 5
    assert sandbox.log("graceful").read_text().split() == ["ready", "SIGTERM"]
    state = (await sandbox.shim.status()).containers["graceful"]
    assert not state.running and state.last_exit == 0


def stubborn(marker: str) -> str:
    """Ignores SIGTERM and leaves a child that ignores it too (as a PID 1 without handler
    would: Kubernetes then waits for the grace period and SIGKILLs)."""
    return (
        "import os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "if os.fork() == 0:\n"
        f"    os.execv('/bin/sleep', ['sleep', '{marker}'])\n"
        "print('ready', flush=True)\n"
        "time.sleep(1000)\n"
    )


async def test_sigkill_after_the_grace_period_takes_the_whole_namespace(sandbox: Sandbox) -> None:
    marker = f"{os.getpid() % 1000}.{time.time_ns() % 10**6:06d}"
    await sandbox.start("stubborn", stubborn(marker))
    assert await sandbox.line("stubborn") == "ready"
    await until(lambda: processes_with(marker))
    started = time.monotonic()
    await sandbox.shim.stop(["stubborn"], grace=1)
    assert time.monotonic() - started >= 1  # SIGTERM was ignored until the grace ran out
    await until(lambda: not processes_with(marker), timeout=5)
    assert (await sandbox.shim.status()).containers["stubborn"].last_exit == -signal.SIGKILL


async def test_nothing_outlives_the_shim(sandbox: Sandbox) -> None:
    marker = f"{os.getpid() % 1000}.{time.time_ns() % 10**6:06d}"
    await sandbox.start("orphan", stubborn(marker))
    assert await sandbox.line("orphan") == "ready"
    await until(lambda: processes_with(marker))
    shim_pid = (await sandbox.shim.status()).pid
    os.kill(shim_pid, signal.SIGKILL)
    await until(lambda: not process_alive(shim_pid))
    await until(lambda: not processes_with(marker), timeout=5)


async def test_exit_status_passes_through(sandbox: Sandbox) -> None:
    await sandbox.start("exits", "import sys; print('bye', flush=True); sys.exit(3)")
    await until(lambda: sandbox.log("exits").exists() and "bye" in sandbox.log("exits").read_text())

    async def exited() -> int | None:
        return (await sandbox.shim.status()).containers["exits"].last_exit

    deadline = time.monotonic() + 10
    while await exited() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert await exited() == 3


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


async def test_memory_cost_per_container(sandbox: Sandbox) -> None:
    """What isolation adds to each container: `unshare` (waiting) and podinit (PID 1)."""
    await sandbox.start("measured", GRACEFUL)
    assert await sandbox.line("measured") == "ready"
    state = (await sandbox.shim.status()).containers["measured"]
    assert state.pid is not None
    # shim -> unshare --net (execs) -> unshare --pid (waits) -> podinit -> application
    unshare = state.pid
    children = Path(f"/proc/{unshare}/task/{unshare}/children").read_text().split()
    init = int(children[0])
    assert b"podinit.py" in Path(f"/proc/{init}/cmdline").read_bytes()
    cost = _rss_kb(unshare) + _rss_kb(init)
    print(
        f"\nisolation VmRSS per container: unshare {_rss_kb(unshare)} kB, "
        f"podinit {_rss_kb(init)} kB, total {cost} kB"
    )
    assert cost < 32 * 1024


@pytest.mark.parametrize("wrapper", ["unshare", "podinit"])
async def test_killing_a_wrapper_takes_the_application_down(sandbox: Sandbox, wrapper: str) -> None:
    """SIGKILL to `unshare` kills podinit (its parent-death signal); SIGKILL to podinit,
    PID 1, kills its whole PID namespace. Either way the shim sees the container exit and
    restarts it, and nothing of the old instance is left."""
    marker = f"{os.getpid() % 1000}.{time.time_ns() % 10**6:06d}"
    await sandbox.start("victim", stubborn(marker))
    assert await sandbox.line("victim") == "ready"
    await until(lambda: processes_with(marker))
    before = processes_with(marker)
    state = (await sandbox.shim.status()).containers["victim"]
    assert state.pid is not None
    unshare = state.pid
    init = int(Path(f"/proc/{unshare}/task/{unshare}/children").read_text().split()[0])
    os.kill(unshare if wrapper == "unshare" else init, signal.SIGKILL)
    await until(lambda: not set(before) & set(processes_with(marker)), timeout=5)
    await until(lambda: not process_alive(init), timeout=5)


ADDON_VIEW = r"""
import json, os, signal, subprocess

def attempt(action):
    try:
        action()
        return "allowed"
    except OSError as exc:
        return type(exc).__name__

def write(path):
    with open(path, "w") as f:
        f.write("x")

view = os.environ["VIEW"]
home = os.environ["HOME_DIR"]
print(json.dumps({
    "home": sorted(os.listdir(home)),
    "run": sorted(os.listdir(os.path.dirname(view))),
    "view": sorted(os.listdir(view)),
    "config": open(os.path.join(view, "prometheus.yml")).read(),
    "secret": attempt(lambda: open(os.environ["SECRET"]).read()),
    "write_data": attempt(lambda: write(os.path.join(view, "data", "chunk"))),
    "write_config": attempt(lambda: write(os.path.join(view, "prometheus.yml"))),
    "write_beside": attempt(lambda: write(os.path.join(os.path.dirname(view), "x"))),
    "exec": attempt(lambda: subprocess.run([os.path.join(view, "data", "run.sh")])),
}), flush=True)
signal.pause()
"""


def _addon_dir(sandbox: Sandbox) -> Path:
    """$HOME/addons/prometheus as `up --with prometheus` makes it (a config root's, a data
    directory its user's, a script there to try to run)."""
    addon = sandbox.home / "addons" / "prometheus"
    (addon / "data").mkdir(parents=True)
    (addon / "prometheus.yml").write_text("global: {}\n")
    os.chown(addon / "data", 65534, 65534)
    script = addon / "data" / "run.sh"
    script.write_text("#!/bin/sh\necho ran\n")
    script.chmod(0o755)
    return addon


async def test_an_addon_sees_its_own_directory_and_nothing_else_of_the_home(
    sandbox: Sandbox,
) -> None:
    addon = _addon_dir(sandbox)
    run = sandbox.root / "run"  # stands for /run/isthmus, hidden as well
    (run / "other-mesh").mkdir(parents=True)
    view = run / "addon"
    sandbox_env = {"VIEW": str(view), "HOME_DIR": str(sandbox.home)}
    script = "import os; os.environ.update(" + repr(sandbox_env) + ")\n" + ADDON_VIEW
    nobody = security({"runAsUser": 65534, "runAsGroup": 65534})
    await sandbox.start("addon", script, nobody, exposed=((addon, view),), hidden=(run,))
    report = await sandbox.report("addon")
    assert report["home"] == []  # no CA, database, sockets, not even `addons`
    assert report["secret"] == "FileNotFoundError"
    assert report["run"] == ["addon"]  # /run/isthmus's other contents stay hidden
    assert report["view"] == ["data", "prometheus.yml"]
    assert report["config"] == "global: {}\n"
    assert report["write_data"] == "allowed"  # its TSDB
    assert report["write_config"] == "PermissionError"  # root's files, it is nobody
    assert report["write_beside"] == "OSError"  # EROFS: the tmpfs around it is read-only
    assert report["exec"] == "PermissionError"  # noexec
    assert (addon / "data" / "chunk").read_text() == "x"  # the host's directory itself
    assert not view.exists()  # the mount point was made on the container's tmpfs


async def test_an_addon_directory_that_is_a_link_is_refused(sandbox: Sandbox) -> None:
    """A link in place of the directory (to the CA, say) is not followed."""
    (sandbox.home / "addons").mkdir()
    link = sandbox.home / "addons" / "prometheus"
    link.symlink_to(sandbox.home / "ca")
    run = sandbox.root / "run"
    run.mkdir()
    await sandbox.start(
        "linked", "print('started', flush=True)", exposed=((link, run / "addon"),), hidden=(run,)
    )
    line = await sandbox.line("linked")
    assert line.startswith("isthmus-init: container linked:"), line
    assert "started" not in sandbox.log("linked").read_text()


async def test_an_exposed_directory_must_land_inside_a_hidden_one(sandbox: Sandbox) -> None:
    """Never a mount point made on the host's own filesystem."""
    addon = _addon_dir(sandbox)
    outside = sandbox.root / "elsewhere"
    await sandbox.start(
        "outside", "print('started', flush=True)", exposed=((addon, outside / "addon"),)
    )
    line = await sandbox.line("outside")
    assert "not inside a hidden directory" in line, line
    assert not outside.exists()
