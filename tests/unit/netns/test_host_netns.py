"""The reference to the host's network namespace (root: a real bind mount under tmp_path).

It refers to the namespace of the process that makes it, survives being made again (a
restarted node runtime), replaces a stale file, and is gone after release. A process in
another namespace that enters it, as Envoy does for `network_namespace_filepath`, listens
on the host's loopback (an ephemeral port on 127.0.0.1, closed at once)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from isthmus.netns.host_netns import ensure_host_netns, refers_to_this_netns, release_host_netns

pytestmark = pytest.mark.root


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("bind mounts need root")
    path = tmp_path / "run" / "host-netns"
    try:
        yield path
    finally:
        release_host_netns(path)


def _mounts(path: Path) -> int:
    text = Path("/proc/self/mountinfo").read_text()
    return sum(1 for line in text.splitlines() if line.split()[4] == str(path))


def test_refers_to_this_namespace_and_is_made_once(reference: Path) -> None:
    assert not refers_to_this_netns(reference)
    assert ensure_host_netns(reference) == reference
    assert refers_to_this_netns(reference)
    assert _mounts(reference) == 1
    ensure_host_netns(reference)  # a restarted node runtime
    assert _mounts(reference) == 1
    assert reference.parent.stat().st_mode & 0o777 == 0o700


def test_release_unmounts_and_removes(reference: Path) -> None:
    ensure_host_netns(reference)
    release_host_netns(reference)
    assert _mounts(reference) == 0
    assert not reference.exists()
    release_host_netns(reference)  # nothing left: nothing to do


def test_a_stale_file_is_replaced(reference: Path) -> None:
    reference.parent.mkdir(parents=True)
    reference.write_text("left by a crash")
    ensure_host_netns(reference)
    assert refers_to_this_netns(reference)


def test_another_namespace_mounted_there_is_replaced(reference: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare")
    other = subprocess.Popen(["unshare", "--net", "sleep", "30"])
    try:
        for _ in range(100):  # until unshare has exec'd sleep in its own namespace
            if os.readlink(f"/proc/{other.pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                break
            subprocess.run(["sleep", "0.05"], check=True)
        reference.parent.mkdir(parents=True)
        reference.touch()
        subprocess.run(["mount", "--bind", f"/proc/{other.pid}/ns/net", str(reference)], check=True)
        assert not refers_to_this_netns(reference)
        ensure_host_netns(reference)
        assert refers_to_this_netns(reference)
        assert _mounts(reference) == 1
    finally:
        other.kill()
        other.wait()


ENTER_AND_LISTEN = """
import ctypes, os, socket, sys
setns = ctypes.CDLL(None, use_errno=True).setns
CLONE_NEWNET = 0x40000000
host = os.open(sys.argv[1], os.O_RDONLY)
own = os.open("/proc/self/ns/net", os.O_RDONLY)
assert setns(host, CLONE_NEWNET) == 0, ctypes.get_errno()
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
assert setns(own, CLONE_NEWNET) == 0, ctypes.get_errno()
print(listener.getsockname()[1], flush=True)
connection, _ = listener.accept()
connection.sendall(b"from the other namespace")
connection.close()
"""


def test_a_process_in_another_namespace_listens_on_the_hosts_loopback(reference: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare")
    ensure_host_netns(reference)
    child = subprocess.Popen(
        ["unshare", "--net", sys.executable, "-c", ENTER_AND_LISTEN, str(reference)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            assert connection.recv(100) == b"from the other namespace"
        assert child.wait(timeout=10) == 0
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()
