"""`isthmus up`/`down` own everything they make: pods outlive crashes of isthmusd and the
node runtime and are adopted by the next `up`, a mesh name belongs to one home, and `down`
leaves no namespace, link, rule, process or socket behind, nor any change in the root
namespace."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ISTHMUS, E2EMesh, app_deployment, app_pid, service

pytestmark = pytest.mark.root


def _root_state() -> dict[str, str]:
    """The root namespace as isthmus must leave it (read only)."""

    def out(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    saved = out("iptables-save")
    rules = "\n".join(line for line in saved.splitlines() if not line.startswith("#"))
    return {
        "links": out("ip", "-j", "link"),
        "addresses": out("ip", "-j", "addr"),
        "routes": out("ip", "-j", "route"),
        "rules": rules,
    }


def _netns() -> list[str]:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()


def _processes_of(home: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(home) in cmdline:
            found.append(cmdline)
    return found


def _shims(mesh: str) -> list[int]:
    """Pids of the mesh's pod shims (found by their socket directory in the argv)."""
    marker = f"/run/isthmus/{mesh}/shims/".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _pod_names(mesh: E2EMesh) -> set[str]:
    return {p["name"] for p in mesh.wait_pods({"lifecycle": 2})}


def test_crash_recovery_ownership_and_clean_down() -> None:
    if os.geteuid() != 0 or shutil.which("iptables-save") is None:
        pytest.skip("needs root and iptables")
    before = _root_state()
    home = Path(tempfile.mkdtemp(prefix="ie2e-", dir="/tmp"))
    other = Path(tempfile.mkdtemp(prefix="ie2e-", dir="/tmp"))
    mesh = E2EMesh(home, "e2elife" + os.urandom(2).hex())
    intruder = E2EMesh(other, mesh.name)
    try:
        # Later `up`s of the mesh keep its choice: no ingress gateway pod in the counts.
        mesh.cli("up", "--mesh", mesh.name, "--no-ingress-gateway")
        mesh.apply(service("lifecycle") + app_deployment("lifecycle", "lifecycle", "v1", 2))
        first = _pod_names(mesh)

        # SIGKILL both processes: the pods run on under their shims and are adopted.
        for name in ("isthmusd.pid", "node.pid"):
            os.kill(int((home / name).read_text()), signal.SIGKILL)
        time.sleep(0.5)
        assert len(_shims(mesh.name)) == 2
        mesh.cli("up", "--mesh", mesh.name)
        assert _pod_names(mesh) == first

        # The mesh name belongs to this home: another home is refused, and its `down`
        # leaves the mesh alone.
        refused = intruder.cli("up", "--mesh", mesh.name, check=False)
        assert refused.returncode == 1
        assert f"mesh {mesh.name} is owned by home {home}" in refused.stderr
        assert not (other / "isthmusd.sock").exists()
        intruder.cli("down")
        assert _pod_names(mesh) == first
        served = mesh.load(mesh.pod("lifecycle"), "http://lifecycle:8080/", "--count", "20")
        assert served["statuses"] == {"200": 20}, served

        # An upgrade: both processes restarted gracefully, no pod or app touched.
        apps = {p["name"]: app_pid(p) for p in mesh.pods()}
        upgrade = mesh.cli("restart")
        assert "2 pods adopted" in upgrade.stdout, upgrade.stdout
        assert _pod_names(mesh) == first
        assert {p["name"]: app_pid(p) for p in mesh.pods()} == apps

        # SIGKILL everything, shims too (their processes die with them): the claim is
        # stale, and the next `up` brings the same pods back in their namespaces.
        for name in ("isthmusd.pid", "node.pid"):
            os.kill(int((home / name).read_text()), signal.SIGKILL)
        for pid in _shims(mesh.name):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        mesh.cli("up", "--mesh", mesh.name)
        assert _pod_names(mesh) == first
        restarted = {p["name"]: p["restarts"] for p in mesh.pods()}
        assert all(count >= 1 for count in restarted.values()), restarted

        mesh.cli("down")
        assert [n for n in _netns() if n.startswith(f"{mesh.name}-")] == []
        assert not any(p.name.startswith(f"{mesh.name}-") for p in Path("/etc/netns").glob("*"))
        assert not Path(f"/run/isthmus/{mesh.name}").exists()
        assert not Path(f"/run/isthmus/{mesh.name}.lock").exists()
        assert _processes_of(home) == [] and _shims(mesh.name) == []
        for leftover in ("isthmusd.sock", "xds.sock", "node.sock"):
            assert not (home / leftover).exists()
        assert _root_state() == before
    finally:
        mesh.cli("down", check=False)
        intruder.cli("down", check=False)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(other, ignore_errors=True)


def test_up_without_root_says_what_is_needed(tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare to drop root")
    # A user namespace without mappings: the same binary, but not root.
    result = subprocess.run(
        ["unshare", "--user", ISTHMUS, "--home", str(tmp_path / "home"), "up"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs root" in lines[0] and "iptables" in lines[0], lines
