"""Envoy's MetadataMatcher and ValueMatcher, evaluated in Python on dynamic metadata.

Dynamic metadata is a mapping of filter name to a JSON-like structure (what a filter such
as jwt_authn wrote for the request). A path names keys into it; a missing key, or a path
through something that is not an object, yields no value at all, which only a negated
matcher (`invert`) matches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from envoy.type.matcher.v3 import metadata_pb2, string_pb2, value_pb2

StringMatch = Callable[[string_pb2.StringMatcher, str], bool]
MISSING = object()  # no value (Envoy's Value with no kind set), unlike JSON null


def metadata_matches(
    matcher: metadata_pb2.MetadataMatcher,
    metadata: Mapping[str, Any],
    string_matches: StringMatch,
) -> bool:
    value = lookup(metadata, matcher.filter, [segment.key for segment in matcher.path])
    return value_matches(matcher.value, value, string_matches) != bool(matcher.invert)


def lookup(metadata: Mapping[str, Any], filter_name: str, path: list[str]) -> Any:
    """Envoy's Metadata::metadataValue: the value at `path` under `filter_name`, or MISSING."""
    value: Any = metadata.get(filter_name, MISSING)
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return MISSING
        value = value[key]
    return value


def value_matches(matcher: value_pb2.ValueMatcher, value: Any, string_matches: StringMatch) -> bool:
    kind = matcher.WhichOneof("match_pattern")
    if kind == "null_match":
        return value is None
    if kind == "present_match":
        return bool(matcher.present_match) and value is not MISSING
    if kind == "bool_match":
        return isinstance(value, bool) and value == matcher.bool_match
    if kind == "string_match":
        return isinstance(value, str) and string_matches(matcher.string_match, value)
    if kind == "double_match":
        return _is_number(value) and _double_matches(matcher.double_match, float(value))
    if kind == "list_match":
        one_of = matcher.list_match.one_of
        return isinstance(value, list) and any(
            value_matches(one_of, item, string_matches) for item in value
        )
    if kind == "or_match":
        return any(
            value_matches(option, value, string_matches)
            for option in matcher.or_match.value_matchers
        )
    raise ValueError(f"cannot evaluate value matcher {kind}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _double_matches(matcher: Any, value: float) -> bool:
    if matcher.WhichOneof("match_pattern") == "range":
        return bool(matcher.range.start <= value < matcher.range.end)
    return bool(value == matcher.exact)
