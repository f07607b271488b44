"""Istio Headers operations -> Envoy header mutations on routes and weighted clusters.

Envoy refuses to add or remove pseudo-headers and `host`, so, as Istio does, those names
are dropped from the mutations; a request `set`/`add` of `:authority` or `host` becomes
the route's authority rewrite instead (see `authority_rewrite`).
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2

from isthmus.api.networking import Headers_HeaderOperations


def _is_authority(name: str) -> bool:
    return name.lower() in (":authority", "host")


def _is_internal(name: str) -> bool:
    """Headers Envoy manages itself and will not let a route mutate."""
    return name.startswith(":") or name.lower() == "host"


def header_values(ops: Headers_HeaderOperations | None) -> list[base_pb2.HeaderValueOption]:
    """`set` overwrites, `add` appends (Istio semantics); each group sorted by name."""
    if ops is None:
        return []
    out = []
    for values, action in (
        (ops.set, base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD),
        (ops.add, base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD),
    ):
        for name, value in sorted(values.items()):
            if _is_internal(name):
                continue
            out.append(
                base_pb2.HeaderValueOption(
                    header=base_pb2.HeaderValue(key=name, value=value), append_action=action
                )
            )
    return out


def header_removals(ops: Headers_HeaderOperations | None) -> list[str]:
    return [name for name in ops.remove if not _is_internal(name)] if ops is not None else []


def authority_rewrite(ops: Headers_HeaderOperations | None) -> str | None:
    """The authority a request `set` (preferred) or `add` of `:authority`/`host` asks for."""
    if ops is None:
        return None
    for values in (ops.set, ops.add):
        for name, value in values.items():
            if _is_authority(name):
                return value
    return None
