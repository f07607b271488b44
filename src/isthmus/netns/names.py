"""Names of everything a mesh creates: namespaces, links and iptables chains.

Every name carries a prefix derived from the mesh name, so `teardown` can remove exactly
what this mesh made and nothing else. Mesh names are lowercase letters and digits only (no
`-`), which makes `<mesh>-` an unambiguous owner prefix: the mesh is everything before the
first `-`, so mesh `isthmus` never claims `isthmus2-web` nor a mesh `isthmus-dev`'s pods.
"""

from __future__ import annotations

import hashlib
import re

MESH_NAME_MAX = 16
_MESH_NAME = re.compile(r"^[a-z][a-z0-9]*$")
# A Kubernetes pod name is a DNS subdomain: lowercase alphanumerics, '-' and '.', at most 253.
_POD_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")
_POD_NAME_MAX = 253

NODE = "node"
# Namespace names become file names under /run/netns and /etc/netns; keep them readable.
NETNS_NAME_MAX = 63
_NETNS_HASH_LEN = 10
IFNAME_MAX = 15  # IFNAMSIZ - 1
_LINK_PREFIX_MAX = 8
CHAIN_PREFIX_MAX = 16  # longest suffix is "_IN_REDIRECT" (12); iptables allows 28


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def validate_mesh_name(mesh: str) -> str:
    """Return mesh if it is a valid mesh name, else raise ValueError saying what is allowed."""
    if not _MESH_NAME.match(mesh) or len(mesh) > MESH_NAME_MAX:
        raise ValueError(
            f"mesh name {mesh!r} is invalid: use 1-{MESH_NAME_MAX} lowercase letters and "
            "digits, starting with a letter (no '-': it separates the mesh from pod names)"
        )
    return mesh


def validate_pod_name(pod: str) -> str:
    """Return pod if it is a DNS-subdomain pod name that is not reserved, else ValueError."""
    if len(pod) > _POD_NAME_MAX or not _POD_NAME.match(pod):
        raise ValueError(
            f"pod name {pod!r} is invalid: use lowercase letters, digits, '-' and '.', "
            f"at most {_POD_NAME_MAX} characters, starting and ending alphanumeric"
        )
    if pod == NODE:
        raise ValueError(f"pod name {NODE!r} is reserved for the mesh's node namespace")
    return pod


def netns_prefix(mesh: str) -> str:
    """The prefix every namespace of this mesh starts with."""
    return f"{validate_mesh_name(mesh)}-"


def node_netns(mesh: str) -> str:
    """The namespace holding the mesh's bridge: `<mesh>-node`."""
    return f"{netns_prefix(mesh)}{NODE}"


def pod_netns(mesh: str, pod: str) -> str:
    """`<mesh>-<pod>`, or a truncated name plus a hash of the pod name when that is too long."""
    name = f"{netns_prefix(mesh)}{validate_pod_name(pod)}"
    if len(name) <= NETNS_NAME_MAX:
        return name
    keep = NETNS_NAME_MAX - _NETNS_HASH_LEN - 1
    return f"{name[:keep].rstrip('.-')}-{_digest(pod)[:_NETNS_HASH_LEN]}"


def owns_netns(mesh: str, name: str) -> bool:
    """Whether a namespace name belongs to this mesh (node or pod)."""
    return name.startswith(netns_prefix(mesh))


def link_prefix(mesh: str) -> str:
    """The short mesh prefix of link names (link names are limited to 15 characters)."""
    return validate_mesh_name(mesh)[:_LINK_PREFIX_MAX]


def bridge_name(mesh: str) -> str:
    """The bridge in the node namespace: `<short>-br`."""
    return f"{link_prefix(mesh)}-br"


def veth_name(mesh: str, pod: str) -> str:
    """The node-side end of a pod's veth: `<short><hash of pod name>`, 15 characters."""
    short = link_prefix(mesh)
    return f"{short}{_digest(validate_pod_name(pod))[: IFNAME_MAX - len(short)]}"


def chain_prefix(mesh: str) -> str:
    """The prefix of the capture chains in a pod: `ISTHMUS` for mesh `isthmus`."""
    return validate_mesh_name(mesh).upper()[:CHAIN_PREFIX_MAX]
