"""Mesh ownership: one home per mesh name, held while any process of the mesh lives (the
node runtime or a pod's shim that inherited the claim), free once all of them are gone."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from isthmus.node.ownership import (
    MeshOwned,
    check_owner,
    claim,
    current_owner,
    is_held,
    lock_path,
    read_owner,
)

HOME_A = Path("/tmp/home-a")
HOME_B = Path("/tmp/home-b")


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes standing in for shims: they hold an inherited claim descriptor."""
    running: list[subprocess.Popen[bytes]] = []
    yield running
    for process in running:
        process.kill()
        process.wait()


def hold(fd: int, holders: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], pass_fds=(fd,)
    )
    holders.append(process)
    return process


def test_free_mesh_is_claimed_and_recorded(tmp_path: Path) -> None:
    assert current_owner("m", tmp_path) is None
    held = claim("m", HOME_A, tmp_path)
    assert not held.adopted and held.previous is None
    owner = read_owner("m", tmp_path)
    assert owner is not None and owner.home == str(HOME_A)
    assert is_held("m", tmp_path)
    check_owner("m", HOME_A, tmp_path)  # its own home may go on
    with pytest.raises(MeshOwned) as refused:
        check_owner("m", HOME_B, tmp_path)
    assert str(HOME_A) in str(refused.value) and "isthmus --home /tmp/home-a down" in str(
        refused.value
    )
    with pytest.raises(MeshOwned):
        claim("m", HOME_B, tmp_path)
    held.release(tmp_path, remove=True)
    assert not lock_path("m", tmp_path).exists()


def test_held_by_pods_after_the_node_runtime_died(
    tmp_path: Path, holders: list[subprocess.Popen[bytes]]
) -> None:
    held = claim("m", HOME_A, tmp_path)
    shim = hold(held.fd, holders)
    held.release(tmp_path)  # the node runtime is gone; its pod's shim still holds the claim
    assert is_held("m", tmp_path)
    with pytest.raises(MeshOwned):
        claim("m", HOME_B, tmp_path)
    again = claim("m", HOME_A, tmp_path)  # the owner's next node runtime joins the claim
    assert again.adopted and again.previous is None
    shim.kill()
    shim.wait()
    assert is_held("m", tmp_path)  # the new node runtime holds it now
    again.release(tmp_path, remove=True)
    assert not is_held("m", tmp_path)


def test_stale_claim_is_taken_over(tmp_path: Path, holders: list[subprocess.Popen[bytes]]) -> None:
    held = claim("m", HOME_A, tmp_path)
    shim = hold(held.fd, holders)
    held.release(tmp_path)
    shim.kill()
    shim.wait()
    assert not is_held("m", tmp_path) and current_owner("m", tmp_path) is None
    taken = claim("m", HOME_B, tmp_path)
    assert taken.previous is not None and taken.previous.home == str(HOME_A)
    assert json.loads(lock_path("m", tmp_path).read_text())["home"] == str(HOME_B)
    taken.release(tmp_path, remove=True)


def test_unreadable_record_of_a_held_claim_still_refuses(
    tmp_path: Path, holders: list[subprocess.Popen[bytes]]
) -> None:
    held = claim("m", HOME_A, tmp_path)
    hold(held.fd, holders)
    lock_path("m", tmp_path).write_text("garbage")
    with pytest.raises(MeshOwned, match="<unknown>"):
        claim("m", HOME_B, tmp_path)
    held.release(tmp_path)
