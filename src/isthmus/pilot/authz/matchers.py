"""Istio's authorization value syntax -> Envoy matchers (pilot/pkg/security/authz/matcher).

A value is exact, a prefix (`abc*`), a suffix (`*abc`) or presence (`*`). Envoy refuses
empty prefixes and suffixes, so `*` is always tested first.
"""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import path_pb2, regex_pb2, string_pb2

_GO_REGEX_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def quote_meta(text: str) -> str:
    """Go's regexp.QuoteMeta, so generated regexes read exactly as Istio's."""
    return "".join("\\" + char if char in _GO_REGEX_SPECIAL else char for char in text)


def regex(pattern: str) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=pattern))


def string_matcher(value: str, prefix: str = "") -> string_pb2.StringMatcher:
    """Istio's StringMatcherWithPrefix: `prefix` joins every form but presence (`.+`)."""
    if value == "*":
        return regex(".+")
    if value.startswith("*"):
        if not prefix:
            return string_pb2.StringMatcher(suffix=value[1:])
        return regex(prefix + ".*" + quote_meta(value[1:]))
    if value.endswith("*"):
        return string_pb2.StringMatcher(prefix=prefix + value[:-1])
    return string_pb2.StringMatcher(exact=prefix + value)


def header_matcher(name: str, value: str, ignore_case: bool = False) -> rc.HeaderMatcher:
    """Istio's HeaderMatcher (and HostMatcher with `ignore_case`): `*` is presence."""
    if value == "*":
        return rc.HeaderMatcher(name=name, present_match=True)
    if value.startswith("*"):
        match = string_pb2.StringMatcher(suffix=value[1:], ignore_case=ignore_case)
    elif value.endswith("*"):
        match = string_pb2.StringMatcher(prefix=value[:-1], ignore_case=ignore_case)
    else:
        match = string_pb2.StringMatcher(exact=value, ignore_case=ignore_case)
    return rc.HeaderMatcher(name=name, string_match=match)


def path_matcher(value: str) -> path_pb2.PathMatcher:
    return path_pb2.PathMatcher(path=string_matcher(value))
