"""Istio StringMatch -> Envoy matchers (StringMatcher, HeaderMatcher, query parameters)."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import regex_pb2, string_pb2

from isthmus.api.networking import StringMatch


def regex_matcher(regex: str) -> regex_pb2.RegexMatcher:
    """RE2 regex matcher (Envoy's only engine); validation already checked RE2 syntax."""
    return regex_pb2.RegexMatcher(regex=regex, google_re2=regex_pb2.RegexMatcher.GoogleRE2())


def string_matcher(match: StringMatch, ignore_case: bool = False) -> string_pb2.StringMatcher:
    if match.exact is not None:
        return string_pb2.StringMatcher(exact=match.exact, ignore_case=ignore_case)
    if match.prefix is not None:
        return string_pb2.StringMatcher(prefix=match.prefix, ignore_case=ignore_case)
    if match.regex is not None:
        return string_pb2.StringMatcher(safe_regex=regex_matcher(match.regex))
    # An empty StringMatch means "any value" (presence) in Istio.
    return string_pb2.StringMatcher(safe_regex=regex_matcher(".*"))


def _is_empty(match: StringMatch) -> bool:
    return match.exact is None and match.prefix is None and match.regex is None


def header_matcher(name: str, match: StringMatch, invert: bool = False) -> rc.HeaderMatcher:
    """Istio header match; `{}` (no value) means the header is present. Header names are
    lower-cased as Envoy stores them (HTTP/2 and Envoy's internal form)."""
    matcher = rc.HeaderMatcher(name=name.lower(), invert_match=invert)
    if _is_empty(match):
        matcher.present_match = True
    else:
        matcher.string_match.CopyFrom(string_matcher(match))
    return matcher


def query_parameter_matcher(name: str, match: StringMatch) -> rc.QueryParameterMatcher:
    """Istio: `exact: ""` or an empty match means the parameter is present."""
    qp = rc.QueryParameterMatcher(name=name)
    if _is_empty(match) or match.exact == "":
        qp.present_match = True
    else:
        qp.string_match.CopyFrom(string_matcher(match))
    return qp
