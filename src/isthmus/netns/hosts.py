"""A pod's /etc/hosts and /etc/resolv.conf, the way the pod's processes resolve mesh names.

`ip netns exec NS ...` bind-mounts every file in /etc/netns/NS/ over the same name in /etc
for the process it starts. Names therefore resolve from a per-pod hosts file, and the pod's
resolv.conf names no nameserver, so nothing in a pod ever sends DNS queries off the pod.

A bind mount pins the file's inode: replacing the file by rename would leave every running
process with the old content. The files are therefore created when the pod's network is
(before any process starts) and then rewritten in place with a single write that never
shrinks them (shorter content is padded with blank lines, which resolvers ignore), so
running processes see new entries and a reader never sees an empty or truncated file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

ETC_NETNS = Path("/etc/netns")
_HOST_NAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_HOST_NAME_MAX = 253

RESOLV_CONF = (
    "# isthmus: pod names resolve from /etc/hosts only; there is no DNS server in the mesh.\n"
    "options attempts:1 timeout:1\n"
)


def _checked_name(name: str) -> str:
    if len(name) > _HOST_NAME_MAX or not _HOST_NAME.match(name):
        raise ValueError(f"host name {name!r} is not a valid DNS name")
    return name


def _checked_ip(ip: str) -> IPv4Address | IPv6Address:
    try:
        return ip_address(ip)
    except ValueError:
        raise ValueError(f"hosts entry {ip!r} is not an IP address") from None


def render_hosts(pod: str, entries: Mapping[str, Sequence[str]]) -> str:
    """hosts(5) text: localhost, then one line per IP (sorted) with its names in order."""
    lines = [
        f"# isthmus: hosts of pod {pod}; rewritten in place on every change",
        "127.0.0.1\tlocalhost",
    ]
    parsed = sorted(((_checked_ip(ip), names) for ip, names in entries.items()), key=_ip_key)
    for ip, names in parsed:
        unique = list(dict.fromkeys(_checked_name(name) for name in names))
        if unique:
            lines.append(f"{ip}\t{' '.join(unique)}")
    return "\n".join(lines) + "\n"


def _ip_key(item: tuple[IPv4Address | IPv6Address, Sequence[str]]) -> tuple[int, int]:
    return (item[0].version, int(item[0]))


def write_in_place(path: Path, text: str) -> None:
    """Write text to path keeping its inode: one write, padded so the file never shrinks.

    No temporary file: `ip netns exec` would try to bind-mount any stray file in the
    directory onto /etc.
    """
    data = text.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.fchmod(fd, 0o644)  # readable by the proxy (uid 1337) whatever the umask
        size = os.fstat(fd).st_size
        os.pwrite(fd, data + b"\n" * max(0, size - len(data)), 0)
    finally:
        os.close(fd)


def pod_etc_dir(netns: str) -> Path:
    """The directory `ip netns exec` takes the pod's /etc overrides from."""
    return ETC_NETNS / netns
