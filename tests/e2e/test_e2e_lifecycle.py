"""`isthmus up`/`down` own everything they make: a crash is recovered by the next `up`, and
`down` leaves no namespace, link, rule, process or socket behind, nor any change in the
root namespace."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ISTHMUS, E2EMesh, app_deployment, service

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


def test_crash_recovery_and_clean_down() -> None:
    if os.geteuid() != 0 or shutil.which("iptables-save") is None:
        pytest.skip("needs root and iptables")
    before = _root_state()
    home = Path(tempfile.mkdtemp(prefix="ie2e-", dir="/tmp"))
    mesh = E2EMesh(home, "e2elife" + os.urandom(2).hex())
    try:
        mesh.cli("up", "--mesh", mesh.name)
        mesh.apply(service("lifecycle") + app_deployment("lifecycle", "lifecycle", "v1", 2))
        first = {p["name"] for p in mesh.wait_pods({"lifecycle": 2})}

        # SIGKILL the daemon: its pods, namespaces and processes are left behind.
        pid = int((home / "isthmusd.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        assert any(n.startswith(f"{mesh.name}-") for n in _netns())

        # The next `up` removes the leftovers and brings the mesh back from the store.
        mesh.cli("up", "--mesh", mesh.name)
        second = {p["name"] for p in mesh.wait_pods({"lifecycle": 2})}
        assert not first & second
        leftovers = [n for n in _netns() if any(n.endswith(name) for name in first)]
        assert leftovers == []

        mesh.cli("down")
        assert [n for n in _netns() if n.startswith(f"{mesh.name}-")] == []
        assert not any(p.name.startswith(f"{mesh.name}-") for p in Path("/etc/netns").glob("*"))
        assert not Path(f"/run/isthmus/{mesh.name}").exists()
        assert _processes_of(home) == []
        assert not (home / "isthmusd.sock").exists() and not (home / "xds.sock").exists()
        assert _root_state() == before
    finally:
        mesh.cli("down", check=False)
        shutil.rmtree(home, ignore_errors=True)


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
