"""A container's effective securityContext, resolved as the kubelet and containerd do.

The container's fields win over the pod's (runAsUser, runAsGroup, runAsNonRoot); the
capability set starts from containerd's default and applies capabilities.add/drop in
containerd's order ("ALL" first, so `drop: [ALL], add: [NET_BIND_SERVICE]` keeps exactly
one); privileged means every capability. isthmus runs commands from the host, not from an
image, so "the image's user" is root and its /etc/passwd is the host's.

Two choices differ from Kubernetes, on purpose:
- the inheritable set is empty (as containerd since CVE-2022-24769), except for what a
  non-root container needs for the next point;
- a non-root container gets the capabilities its capabilities.add names as ambient
  capabilities, so they are effective (`runAsUser: 1000` with `add: [NET_BIND_SERVICE]`
  can bind port 80). Kubernetes without ambient support (KEP-2763) leaves them only in the
  bounding set, where they do nothing for a program without file capabilities, and host
  programs have none. A non-root container that adds nothing has no capabilities at all.
"""

from __future__ import annotations

import pwd
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from isthmus.api.capabilities import ALL, DEFAULT_CAPABILITIES, LINUX_CAPABILITIES, capability_name
from isthmus.api.core import Capabilities, Container, PodSpec

EVERY_CAPABILITY = frozenset(LINUX_CAPABILITIES)
T = TypeVar("T")


class ContainerConfigError(ValueError):
    """The container must not start as configured (the kubelet's CreateContainerConfigError);
    the message says why."""


@dataclass(frozen=True)
class ContainerSecurity:
    """What a container runs as: user, groups and capability sets, and its mount view."""

    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    # The bounding set; for root also the permitted and effective sets.
    capabilities: frozenset[str] = DEFAULT_CAPABILITIES
    # A non-root container's effective capabilities (see the module docstring).
    ambient: frozenset[str] = frozenset()
    no_new_privs: bool = False
    privileged: bool = False
    read_only_root: bool = False


def passwd_gid(uid: int) -> int | None:
    """The primary group of `uid` in the host's /etc/passwd, None if it has no entry."""
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return None


def passwd_home(uid: int) -> str:
    """The home directory of `uid` in /etc/passwd, "/" without an entry (as the kubelet's
    HOME for a user the image does not know)."""
    try:
        return pwd.getpwuid(uid).pw_dir or "/"
    except KeyError:
        return "/"


def _first(*values: T | None) -> T | None:
    """The container's value if it set one, else the pod's (container wins)."""
    return next((value for value in values if value is not None), None)


def _names(values: Iterable[str]) -> set[str]:
    """Canonical capability names; validation already refused unknown ones."""
    return {name for value in values if (name := capability_name(value)) is not None}


def resolve_capabilities(capabilities: Capabilities | None) -> frozenset[str]:
    """containerd's WithCapabilities: add ALL, drop ALL, then the named adds and drops."""
    caps = set(DEFAULT_CAPABILITIES)
    if capabilities is None:
        return frozenset(caps)
    add, drop = _names(capabilities.add), _names(capabilities.drop)
    if ALL in add:
        caps = set(EVERY_CAPABILITY)
    if ALL in drop:
        caps = set()
    caps |= add - {ALL}
    caps -= drop - {ALL}
    return frozenset(caps)


def resolve_security(
    pod: PodSpec,
    container: Container,
    primary_gid: Callable[[int], int | None] = passwd_gid,
) -> ContainerSecurity:
    """The container's ContainerSecurity; ContainerConfigError if runAsNonRoot forbids the
    user it would run as (the kubelet refuses to start it, and so do we)."""
    own = container.security_context
    shared = pod.security_context
    run_as_user = _first(own.run_as_user if own else None, shared.run_as_user if shared else None)
    run_as_group = _first(
        own.run_as_group if own else None, shared.run_as_group if shared else None
    )
    non_root = _first(
        own.run_as_non_root if own else None, shared.run_as_non_root if shared else None
    )
    uid = run_as_user if run_as_user is not None else 0
    if non_root and uid == 0:
        if run_as_user == 0:
            raise ContainerConfigError("container's runAsUser breaks non-root policy")
        raise ContainerConfigError(
            "container has runAsNonRoot and would run as root (no runAsUser is set)"
        )
    if run_as_group is not None:
        gid = run_as_group
    elif uid == 0:
        gid = 0
    else:
        gid = primary_gid(uid) or 0
    privileged = bool(own and own.privileged)
    if privileged:
        capabilities, ambient = EVERY_CAPABILITY, frozenset[str]()
    else:
        capabilities = resolve_capabilities(own.capabilities if own else None)
        named = _names(own.capabilities.add) if own and own.capabilities else set()
        added = EVERY_CAPABILITY if ALL in named else frozenset(named)
        ambient = (added & capabilities) if uid != 0 else frozenset()
    return ContainerSecurity(
        uid=uid,
        gid=gid,
        groups=tuple(shared.supplemental_groups) if shared else (),
        capabilities=capabilities,
        ambient=ambient,
        no_new_privs=bool(own and own.allow_privilege_escalation is False),
        privileged=privileged,
        read_only_root=bool(own and own.read_only_root_filesystem),
    )
