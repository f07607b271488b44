"""Mesh ownership: a mesh name belongs to one home at a time.

Everything a mesh makes carries its name (namespaces, links, chains, /run/isthmus/<mesh>),
so two homes running the same mesh name would destroy each other's pods. The owner is
recorded in `/run/isthmus/<mesh>.lock` (its home and the node runtime's pid), and the
claim is a shared flock on that file held by every process of the mesh: the node runtime
and each pod's shim (which inherits the descriptor). So the mesh stays owned while any of
its pods runs, also when its node runtime crashed, and the kernel drops the claim when
the last of them is gone: a lock that nobody holds is stale and may be taken over.

Claims are made under a short exclusive flock on `/run/isthmus/.claims`, so two homes
starting at once can not both take a stale lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

LOCK_DIR = Path("/run/isthmus")
_CLAIMS = ".claims"


@dataclass(frozen=True)
class Owner:
    """Who owns a mesh: its home directory and the node runtime's pid when it claimed it."""

    home: str
    pid: int
    since: str


class MeshOwned(RuntimeError):
    """The mesh name belongs to another home; the message names it."""

    def __init__(self, mesh: str, owner: Owner) -> None:
        super().__init__(
            f"mesh {mesh} is owned by home {owner.home} (node runtime pid {owner.pid}, "
            f"since {owner.since}); use another --mesh, or stop it with "
            f"`isthmus --home {owner.home} down`"
        )
        self.mesh = mesh
        self.owner = owner


def lock_path(mesh: str, lock_dir: Path = LOCK_DIR) -> Path:
    return lock_dir / f"{mesh}.lock"


def read_owner(mesh: str, lock_dir: Path = LOCK_DIR) -> Owner | None:
    """The recorded owner, or None if there is no readable record."""
    try:
        data = json.loads(lock_path(mesh, lock_dir).read_text())
        return Owner(str(data["home"]), int(data["pid"]), str(data.get("since", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_held(mesh: str, lock_dir: Path = LOCK_DIR) -> bool:
    """Whether any live process of the mesh holds its claim."""
    path = lock_path(mesh, lock_dir)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    finally:
        os.close(fd)  # also drops the probe's own lock
    return False


def current_owner(mesh: str, lock_dir: Path = LOCK_DIR) -> Owner | None:
    """The owner if the claim is live (a held lock), else None (free or stale)."""
    if not is_held(mesh, lock_dir):
        return None
    return read_owner(mesh, lock_dir) or Owner("<unknown>", 0, "")


def check_owner(mesh: str, home: Path, lock_dir: Path = LOCK_DIR) -> None:
    """Raise MeshOwned if another home holds the mesh (a read-only check for the CLI)."""
    owner = current_owner(mesh, lock_dir)
    if owner is not None and Path(owner.home) != home:
        raise MeshOwned(mesh, owner)


@contextlib.contextmanager
def _claims(lock_dir: Path) -> Iterator[None]:
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / _CLAIMS, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Claim:
    """A held claim: `fd` carries the shared lock (hand it to every pod's shim).

    `previous` is the owner recorded before a takeover of a stale lock, if any."""

    mesh: str
    fd: int
    previous: Owner | None
    adopted: bool  # this home's pods (shims) still held the mesh: adopt them

    def release(self, lock_dir: Path = LOCK_DIR, remove: bool = False) -> None:
        """Drop this process's hold; with `remove`, also the record if nobody holds it."""
        with _claims(lock_dir):
            os.close(self.fd)
            if remove and not is_held(self.mesh, lock_dir):
                lock_path(self.mesh, lock_dir).unlink(missing_ok=True)


def claim(mesh: str, home: Path, lock_dir: Path = LOCK_DIR) -> Claim:
    """Claim `mesh` for `home` in this process, or raise MeshOwned.

    Free or stale: take it (recording the previous owner). Held by this home's own
    processes (pods whose shims outlived a node runtime): join their claim."""
    with _claims(lock_dir):
        path = lock_path(mesh, lock_dir)
        previous = read_owner(mesh, lock_dir)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            adopted = False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                if previous is None or Path(previous.home) != home:
                    raise MeshOwned(mesh, previous or Owner("<unknown>", 0, "")) from None
                adopted = True
            # Only claimants change locks, and they hold _claims: no one races us here.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            record = {
                "home": str(home),
                "pid": os.getpid(),
                "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode() + b"\n", 0)
            os.chmod(path, 0o644)
        except BaseException:
            os.close(fd)
            raise
    stale = None if adopted or previous is None or Path(previous.home) == home else previous
    return Claim(mesh, fd, stale, adopted)
