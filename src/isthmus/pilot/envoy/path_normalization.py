"""MeshConfig pathNormalization -> HttpConnectionManager path handling, as Istio's
listener builder sets it (pilot/pkg/networking/core/listener_builder.go).

Authorization matches `paths` against the path Envoy has normalized, so the mode
decides whether `/a/../admin` or `//admin` can slip past a rule on `/admin`.
BASE (RFC 3986 normalization) is Istio's default.
"""

from __future__ import annotations

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from google.protobuf import wrappers_pb2

Manager = hcm.HttpConnectionManager

# mode -> (normalize_path, merge_slashes, path_with_escaped_slashes_action)
_MODES: dict[str, tuple[bool, bool, int]] = {
    "NONE": (False, False, Manager.KEEP_UNCHANGED),
    "BASE": (True, False, Manager.KEEP_UNCHANGED),
    "DEFAULT": (True, False, Manager.KEEP_UNCHANGED),
    "MERGE_SLASHES": (True, True, Manager.KEEP_UNCHANGED),
    "DECODE_AND_MERGE_SLASHES": (True, True, Manager.UNESCAPE_AND_FORWARD),
}
PATH_NORMALIZATION_MODES = frozenset(_MODES)


def apply_path_normalization(manager: hcm.HttpConnectionManager, mode: str = "BASE") -> None:
    """Set the three path fields of `manager` for `mode` (ValueError if unknown)."""
    try:
        normalize, merge_slashes, escaped_slashes = _MODES[mode]
    except KeyError:
        known = ", ".join(sorted(_MODES))
        raise ValueError(f"unknown path normalization {mode!r} (one of {known})") from None
    manager.normalize_path.CopyFrom(wrappers_pb2.BoolValue(value=normalize))
    manager.merge_slashes = merge_slashes
    manager.path_with_escaped_slashes_action = escaped_slashes
