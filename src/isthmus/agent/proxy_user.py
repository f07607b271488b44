"""Who Envoy runs as, and the work directory it must be able to use as that user.

A sidecar's Envoy runs as uid/gid 1337 so the pod's iptables rules can exempt its own
traffic from capture. That only works when the agent is root; otherwise Envoy runs as
the agent's user and no ownership changes are needed. The agent stays the owner of
everything it writes: Envoy (group 1337) may read the bootstrap, connect to the xDS
socket and append to its log, and nothing more.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

PROXY_UID = 1337
PROXY_GID = 1337


class WorkdirUnusable(RuntimeError):
    """The proxy user could not reach the agent's work directory."""


@dataclass(frozen=True)
class ProxyUser:
    """The uid and gid Envoy is switched to (only when the agent runs as root)."""

    uid: int = PROXY_UID
    gid: int = PROXY_GID


def proxy_user() -> ProxyUser | None:
    """ProxyUser() when running as root, else None (Envoy keeps the agent's user)."""
    return ProxyUser() if os.geteuid() == 0 else None


def _searchable_by(info: os.stat_result, user: ProxyUser) -> bool:
    if info.st_uid == user.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == user.gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def check_reachable(path: Path, user: ProxyUser) -> None:
    """Raise WorkdirUnusable unless `user` may traverse every directory above `path`."""
    for parent in reversed(path.resolve().parents):
        info = parent.stat()
        if not _searchable_by(info, user):
            raise WorkdirUnusable(
                f"uid {user.uid} can not reach {path}: {parent} is mode "
                f"{stat.S_IMODE(info.st_mode):04o} owned by {info.st_uid}:{info.st_gid}"
            )


def prepare_workdir(workdir: Path, user: ProxyUser | None) -> None:
    """Create the work directory, open to the proxy group only (or private)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if user is None:
        workdir.chmod(0o700)
        return
    check_reachable(workdir, user)
    os.chown(workdir, os.geteuid(), user.gid)
    workdir.chmod(0o750)


def share_file(path: Path, user: ProxyUser | None, *, writable: bool = False) -> None:
    """Let the proxy read (or, for its log and sockets, write) one file in the work dir."""
    if user is None:
        path.chmod(0o600)
        return
    os.chown(path, os.geteuid(), user.gid)
    path.chmod(0o660 if writable else 0o640)


def share_stdout(user: ProxyUser | None) -> None:
    """Let Envoy open the agent's stdout (the istio-proxy container's output) for its
    access logs: Envoy opens `/dev/stdout` by path, which checks the file's own mode, so
    the proxy group gets write (append) access to it. Nothing else is opened up."""
    if user is None:
        return
    info = os.fstat(1)
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
        return  # a terminal: Envoy's access log to /dev/stdout is the user's problem
    os.fchown(1, info.st_uid, user.gid)
    os.fchmod(1, stat.S_IMODE(info.st_mode) | stat.S_IWGRP)
