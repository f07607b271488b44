"""Istio HTTPMatchRequest -> Envoy RouteMatch."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from google.protobuf import wrappers_pb2

from isthmus.api.networking import HTTPMatchRequest, StringMatch
from isthmus.pilot.envoy.matchers import header_matcher, query_parameter_matcher, regex_matcher


def catch_all_match() -> rc.RouteMatch:
    return rc.RouteMatch(prefix="/")


def route_match(match: HTTPMatchRequest | None) -> rc.RouteMatch:
    """Path, headers (incl. pseudo-headers for method/authority/scheme), query parameters.

    sourceLabels, sourceNamespace, port and gateways select whether the rule applies to a
    proxy at all; they are handled by the route generator, not here.
    """
    if match is None:
        return catch_all_match()
    out = rc.RouteMatch()
    uri = match.uri
    if uri is None:
        out.prefix = "/"
    elif uri.exact is not None:
        out.path = uri.exact
    elif uri.prefix is not None:
        out.prefix = uri.prefix
    elif uri.regex is not None:
        out.safe_regex.CopyFrom(regex_matcher(uri.regex))
    else:
        out.prefix = "/"
    if match.ignore_uri_case:
        out.case_sensitive.CopyFrom(wrappers_pb2.BoolValue(value=False))
    # Istio sorts header and withoutHeaders matchers together by name.
    headers = [header_matcher(n, v) for n, v in match.headers.items()]
    headers += [header_matcher(n, v, invert=True) for n, v in match.without_headers.items()]
    out.headers.extend(sorted(headers, key=lambda h: h.name))
    pseudo_headers: tuple[tuple[str, StringMatch | None], ...] = (
        (":method", match.method),
        (":authority", match.authority),
        (":scheme", match.scheme),
    )
    for pseudo, pseudo_match in pseudo_headers:
        if pseudo_match is not None:
            out.headers.append(header_matcher(pseudo, pseudo_match))
    for name, value in sorted(match.query_params.items()):
        out.query_parameters.append(query_parameter_matcher(name, value))
    return out
