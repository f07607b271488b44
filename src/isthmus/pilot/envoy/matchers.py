"""Istio StringMatch -> Envoy matchers (StringMatcher, HeaderMatcher, query parameters)."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import regex_pb2, string_pb2

from isthmus.api.networking import StringMatch


def regex_matcher(regex: str) -> regex_pb2.RegexMatcher:
    """RE2 regex matcher; validation already checked RE2 syntax.

    No engine is named: `google_re2` is deprecated and RE2 is Envoy's default.
    """
    return regex_pb2.RegexMatcher(regex=regex)


def string_matcher(match: StringMatch, ignore_case: bool = False) -> string_pb2.StringMatcher:
    if match.exact is not None:
        return string_pb2.StringMatcher(exact=match.exact, ignore_case=ignore_case)
    if match.prefix is not None:
        return string_pb2.StringMatcher(prefix=match.prefix, ignore_case=ignore_case)
    if match.regex is not None:
        return string_pb2.StringMatcher(safe_regex=regex_matcher(match.regex))
    # An empty StringMatch means "any value" (presence) in Istio.
    return string_pb2.StringMatcher(safe_regex=regex_matcher(".*"))


def is_presence_match(match: StringMatch) -> bool:
    """Istio: an empty match, or the regex `*` (not RE2; Istio's spelling), means presence."""
    if match.regex == "*":
        return True
    return match.exact is None and match.prefix is None and match.regex is None


def header_matcher(name: str, match: StringMatch, invert: bool = False) -> rc.HeaderMatcher:
    """Istio header match; presence matches become `present_match`. Header names are
    lower-cased as Envoy stores them (HTTP/2 and Envoy's internal form).

    An inverted value match (withoutHeaders) treats a missing header as empty, as Istio
    does, so a request without the header is not `x: v` and matches."""
    matcher = rc.HeaderMatcher(name=name.lower(), invert_match=invert)
    if is_presence_match(match):
        matcher.present_match = True
    else:
        matcher.string_match.CopyFrom(string_matcher(match))
        matcher.treat_missing_header_as_empty = invert
    return matcher


def query_parameter_matcher(name: str, match: StringMatch) -> rc.QueryParameterMatcher:
    """Istio: an empty match (or regex `*`) means the parameter is present. `exact: ""`
    stays a value match: it matches `?key` (empty value) but not `?key=abc`."""
    qp = rc.QueryParameterMatcher(name=name)
    if is_presence_match(match):
        qp.present_match = True
    else:
        qp.string_match.CopyFrom(string_matcher(match))
    return qp
