"""MeshConfig pathNormalization -> HttpConnectionManager path handling, as Istio's
listener builder sets it (pilot/pkg/networking/core/listener_builder.go).

Authorization matches `paths` against the path Envoy has normalized, so the mode
decides whether `/a/../admin` or `//admin` can slip past a rule on `/admin`.
BASE (RFC 3986 normalization) is Istio's default.
"""

from __future__ import annotations

import re

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


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_ESCAPED_SLASH = re.compile(r"%2[fF]")
_ESCAPED_BACKSLASH = re.compile(r"%5[cC]")


def envoy_path(path: str, manager: hcm.HttpConnectionManager) -> str | None:
    """The path `manager`'s Envoy routes and authorizes for the request path `path`, or
    None where Envoy refuses the request (400). Istio's order: decode %2F and %5C (with
    UNESCAPE_AND_FORWARD), RFC 3986 normalization (percent-decoding of unreserved
    characters, `\\` to `/`, dot segments), then merging slashes. The fragment is dropped
    (the sidecar bootstrap strips it); the query is kept apart and untouched."""
    raw, separator, query = path.split("#", 1)[0].partition("?")
    if manager.path_with_escaped_slashes_action == Manager.UNESCAPE_AND_FORWARD:
        raw = _ESCAPED_BACKSLASH.sub("\\\\", _ESCAPED_SLASH.sub("/", raw))
    if manager.normalize_path.value:
        if re.search(r"%00", raw):
            return None
        raw = _ESCAPE.sub(_decode_unreserved, raw).replace("\\", "/")
        raw = _remove_dot_segments(raw)
    if manager.merge_slashes:
        raw = re.sub("/{2,}", "/", raw)
    return raw + separator + query


def _decode_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match[1], 16))
    return char if char in _UNRESERVED else match[0]


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4 for an absolute path: `.` and `..` segments resolved, a path
    ending in one of them keeps its trailing slash."""
    segments = path.split("/")[1:]
    output: list[str] = []
    for segment in segments:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    if segments and segments[-1] in (".", ".."):
        output.append("")
    return "/" + "/".join(output)
