"""Istio Headers operations -> Envoy header mutations on routes and weighted clusters."""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2

from isthmus.api.networking import Headers_HeaderOperations


def header_values(ops: Headers_HeaderOperations | None) -> list[base_pb2.HeaderValueOption]:
    """`set` overwrites, `add` appends (Istio semantics)."""
    if ops is None:
        return []
    out = []
    for name, value in sorted(ops.set.items()):
        out.append(
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=name, value=value),
                append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            )
        )
    for name, value in sorted(ops.add.items()):
        out.append(
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=name, value=value),
                append_action=base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD,
            )
        )
    return out


def header_removals(ops: Headers_HeaderOperations | None) -> list[str]:
    return list(ops.remove) if ops is not None else []
