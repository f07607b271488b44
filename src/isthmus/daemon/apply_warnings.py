"""The warnings an apply gives (as Istio's admission webhook warns): the apply goes ahead.

isthmusd gives them on every apply and dry run; `isthmus validate` and an offline
`apply --dry-run` give the same ones, under the path normalization the mesh would run.
"""

from __future__ import annotations

from collections.abc import Sequence

from isthmus.api.authorization import AuthorizationPolicy
from isthmus.api.checks_secret import secret_warnings
from isthmus.api.loader import LoadedObject
from isthmus.api.networking import WorkloadEntry
from isthmus.api.secret import Secret
from isthmus.pilot.authz.warnings import path_normalization_warnings

__all__ = ["DEFAULT_PATH_NORMALIZATION", "apply_warnings"]

DEFAULT_PATH_NORMALIZATION = "BASE"  # Istio's default, and isthmusd's


def apply_warnings(objects: Sequence[LoadedObject], path_normalization: str) -> list[str]:
    """Warning lines for the objects an apply stores, under the mesh's pathNormalization."""
    out = []
    for o in objects:
        if isinstance(o.resource, AuthorizationPolicy):
            out.extend(path_normalization_warnings(o.resource, path_normalization))
        elif isinstance(o.resource, WorkloadEntry):
            out.extend(_unreachable_entry(o.resource))
        elif isinstance(o.resource, Secret):
            out.extend(secret_warnings(o.resource))
    return out


def _unreachable_entry(entry: WorkloadEntry) -> list[str]:
    """Istio warns that an entry with a network and no address is reached only through
    that network's gateway; isthmus has no network gateways, so it gets no traffic."""
    if entry.spec.address or not entry.spec.network:
        return []
    name = f"{entry.metadata.namespace or 'default'}/{entry.metadata.name}"
    return [
        f"WorkloadEntry {name}: address is unset with network {entry.spec.network!r}: it is "
        "reachable only through that network's gateway, and isthmus has none, so it gets "
        "no traffic"
    ]
