"""Linux capability names as a Kubernetes securityContext writes them.

Kept here, below everything, because two layers read the same table: the API checks a
Deployment's `capabilities.add/drop` against it (a typo is an apply error, not a pod that
fails to start), and the runtime resolves a container's capability set from it.
"""

from __future__ import annotations

# capabilities(7), in kernel number order (CAP_CHOWN = 0 ... CAP_CHECKPOINT_RESTORE = 40).
LINUX_CAPABILITIES: tuple[str, ...] = (
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
)

# What containerd and Docker give a container that is not privileged (containerd's
# oci.defaultUnixCaps / moby's caps.DefaultCapabilities): no NET_ADMIN, SYS_ADMIN,
# SYS_PTRACE, so no iptables, no mounts, no tracing of other processes.
DEFAULT_CAPABILITIES: frozenset[str] = frozenset(
    {
        "CHOWN",
        "DAC_OVERRIDE",
        "FSETID",
        "FOWNER",
        "MKNOD",
        "NET_RAW",
        "SETGID",
        "SETUID",
        "SETFCAP",
        "SETPCAP",
        "NET_BIND_SERVICE",
        "SYS_CHROOT",
        "KILL",
        "AUDIT_WRITE",
    }
)

ALL = "ALL"
_KNOWN = frozenset(LINUX_CAPABILITIES)


def capability_name(value: str) -> str | None:
    """The canonical name (upper case, no CAP_ prefix) of a capability as written in a
    securityContext (`NET_ADMIN`, `CAP_NET_ADMIN`, `net_admin`), "ALL" for all, or None
    when it names no capability."""
    name = value.strip().upper()
    if name == ALL:
        return ALL
    name = name.removeprefix("CAP_")
    return name if name in _KNOWN else None


def capability_number(name: str) -> int:
    """The kernel's number of a canonical capability name (its bit in CapEff)."""
    return LINUX_CAPABILITIES.index(name)
