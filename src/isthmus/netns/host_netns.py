"""A reference to the host's network namespace, for an ingress gateway's published ports.

`isthmus up --ingress-port 8080:80` makes the gateway's port 80 reachable on the host at
127.0.0.1:8080. The gateway's Envoy runs in its pod's namespace; it opens that one
listening socket in the host's namespace through Envoy's
`SocketAddress.network_namespace_filepath`, which names a file referring to a network
namespace. This module makes that file: the node runtime (which runs in the host's
namespace) bind-mounts its own `/proc/self/ns/net` onto `$ISTHMUS_HOME/run/host-netns`.

Why this is safe (ARCHITECTURE.md, network safety):
- What happens in the host's namespace is one listening TCP socket on 127.0.0.1 per
  published port, as `isthmus port-forward` opens. No link, address, route or iptables
  rule is added anywhere, and nothing in the host's namespace can route to pod or service
  addresses: connections accepted there are handled by the gateway's Envoy, which forwards
  them over its own connections from inside the mesh. The address is always 127.0.0.1
  (pilot builds the listener; the agent only passes HOSTPORT:PORT pairs).
- The file is not under /run/netns and does not carry the mesh's namespace prefix, so
  nothing that enumerates the mesh's namespaces (teardown, `ip netns pids` and the kill of
  a pod's leftover processes) ever sees it: the host's processes can not be mistaken for a
  pod's.
- It lives in the mesh home, which every application container has hidden
  (runtime.isolation), and using it (setns) needs CAP_SYS_ADMIN, which only the gateway's
  Envoy (root, in its agent) has.
- `release` unmounts it (MNT_DETACH) and removes the file: `isthmus down`, the node
  runtime's teardown and the e2e tests' cleanup call it; `ensure` is idempotent, so a
  restarted node runtime keeps the mount a previous one made.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from pathlib import Path

log = logging.getLogger("isthmus.netns")

_SELF_NETNS = "/proc/self/ns/net"
_MS_BIND = 0x1000
_MNT_DETACH = 0x2
_UMOUNT_NOFOLLOW = 0x8
_ENOENT = 2
_EINVAL = 22


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def refers_to_this_netns(path: Path) -> bool:
    """Whether `path` is (a mount of) the network namespace this process runs in."""
    try:
        return _same_file(os.stat(path), os.stat(_SELF_NETNS))
    except OSError:
        return False


def _unmount(path: Path) -> bool:
    """Detach whatever is mounted on `path`; False when nothing was."""
    if _libc().umount2(os.fsencode(path), _MNT_DETACH | _UMOUNT_NOFOLLOW) == 0:
        return True
    error = ctypes.get_errno()
    if error in (_EINVAL, _ENOENT):  # not a mount point, or no file at all
        return False
    raise OSError(error, f"umount {path}: {os.strerror(error)}")


def ensure_host_netns(path: Path) -> Path:
    """Make `path` refer to the network namespace of this process (the host's, for the
    node runtime); nothing to do when it already does. Returns `path`."""
    if refers_to_this_netns(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists():  # a stale file, or a mount of another namespace: replace it
        _unmount(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.close(fd)
    if _libc().mount(os.fsencode(_SELF_NETNS), os.fsencode(path), None, _MS_BIND, None) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"bind-mount {_SELF_NETNS} on {path}: {os.strerror(error)}")
    log.info("host_netns_ready path=%s", path)
    return path


def release_host_netns(path: Path) -> None:
    """Unmount and remove the reference; nothing to do when there is none."""
    mounted = False
    while _unmount(path):  # a reference mounted twice (two racing ensures) needs two
        mounted = True
    path.unlink(missing_ok=True)
    if mounted:
        log.info("host_netns_released path=%s", path)
