"""Envoy's RBAC matchers, evaluated in Python: permissions, principals and the string,
header, path, path-template, CIDR and metadata matchers inside them (the kinds pilot
generates).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import re2
from envoy.config.core.v3 import address_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.path.match.uri_template.v3 import uri_template_match_pb2
from envoy.type.matcher.v3 import string_pb2

from isthmus.pilot.authz.jwt_attributes import JWT_FILTER, JWT_PAYLOAD
from isthmus.pilot.authz.metadata_match import metadata_matches
from isthmus.pilot.authz.request import Request

# Envoy's uri_template operators: `*` one path segment, `**` any number of them.
_TEMPLATE_CHARS = r"a-zA-Z0-9\-._~%!$&'()+,;:@"
_MATCH_SEGMENT = f"[{_TEMPLATE_CHARS}]+"
_MATCH_SEGMENTS = f"[{_TEMPLATE_CHARS}/]*"
_TEMPLATE_LITERAL_SPECIALS = str.maketrans({c: "\\" + c for c in "$()+."})


@dataclass(frozen=True)
class Attributes:
    """The request as one filter sees it: network filters have no headers, no path and no
    HTTP filter's dynamic metadata (the verified JWT's payload)."""

    request: Request
    headers: Mapping[str, str]
    path: str | None
    metadata: Mapping[str, Any]

    @classmethod
    def of(cls, request: Request, *, http: bool) -> Attributes:
        if not http:
            return cls(request, {}, None, {})
        headers = {name.lower(): value for name, value in request.headers.items()}
        headers.update({":method": request.method, ":path": request.path})
        if request.host:
            headers[":authority"] = request.host
        metadata: dict[str, Any] = {}
        if request.jwt_payload is not None:
            metadata[JWT_FILTER] = {JWT_PAYLOAD: request.jwt_payload}
        return cls(request, headers, request.path, metadata)


def permission_matches(permission: rbac_pb2.Permission, attributes: Attributes) -> bool:
    kind = permission.WhichOneof("rule")
    request = attributes.request
    if kind == "any":
        return bool(permission.any)
    if kind == "and_rules":
        return all(permission_matches(p, attributes) for p in permission.and_rules.rules)
    if kind == "or_rules":
        return any(permission_matches(p, attributes) for p in permission.or_rules.rules)
    if kind == "not_rule":
        return not permission_matches(permission.not_rule, attributes)
    if kind == "header":
        return _header(permission.header, attributes.headers)
    if kind == "url_path":
        path = attributes.path
        return path is not None and _string(permission.url_path.path, _without_query(path))
    if kind == "uri_template":
        return attributes.path is not None and _uri_template(permission, attributes.path)
    if kind == "destination_ip":
        return _in_cidr(request.destination_ip, permission.destination_ip)
    if kind == "destination_port":
        return request.destination_port == int(permission.destination_port)
    if kind == "destination_port_range":
        port_range = permission.destination_port_range
        return int(port_range.start) <= request.destination_port < int(port_range.end)
    if kind == "requested_server_name":
        return _string(permission.requested_server_name, request.sni)
    raise ValueError(f"cannot evaluate RBAC permission {kind}")


def principal_matches(principal: rbac_pb2.Principal, attributes: Attributes) -> bool:
    kind = principal.WhichOneof("identifier")
    request = attributes.request
    if kind == "any":
        return bool(principal.any)
    if kind == "and_ids":
        return all(principal_matches(p, attributes) for p in principal.and_ids.ids)
    if kind == "or_ids":
        return any(principal_matches(p, attributes) for p in principal.or_ids.ids)
    if kind == "not_id":
        return not principal_matches(principal.not_id, attributes)
    if kind == "authenticated":
        if request.source_principal is None:
            return False  # Envoy: no TLS peer, never authenticated
        name = principal.authenticated
        return not name.HasField("principal_name") or _string(
            name.principal_name, request.source_principal
        )
    if kind in ("direct_remote_ip", "source_ip"):
        return _in_cidr(request.source_ip, getattr(principal, kind))
    if kind == "remote_ip":
        return _in_cidr(request.remote_ip or request.source_ip, principal.remote_ip)
    if kind == "header":
        return _header(principal.header, attributes.headers)
    if kind == "url_path":
        path = attributes.path
        return path is not None and _string(principal.url_path.path, _without_query(path))
    if kind == "metadata":
        return metadata_matches(principal.metadata, attributes.metadata, _string)
    raise ValueError(f"cannot evaluate RBAC principal {kind}")


def _string(matcher: string_pb2.StringMatcher, value: str) -> bool:
    kind = matcher.WhichOneof("match_pattern")
    if kind == "safe_regex":
        return _regex(matcher.safe_regex.regex).fullmatch(value) is not None
    expected: str = getattr(matcher, kind) if kind else ""
    if matcher.ignore_case:
        expected, value = expected.lower(), value.lower()
    if kind == "exact":
        return value == expected
    if kind == "prefix":
        return value.startswith(expected)
    if kind == "suffix":
        return value.endswith(expected)
    if kind == "contains":
        return expected in value
    raise ValueError(f"cannot evaluate string matcher {kind}")


def _header(matcher: rc.HeaderMatcher, headers: Mapping[str, str]) -> bool:
    """Envoy's HeaderUtility::matchHeaders for the matcher kinds pilot generates."""
    kind = matcher.WhichOneof("header_match_specifier")
    value = headers.get(matcher.name.lower())
    if value is None and not matcher.treat_missing_header_as_empty:
        return kind == "present_match" and bool(matcher.present_match) == bool(matcher.invert_match)
    if kind == "present_match":
        matched = bool(matcher.present_match)
    elif kind == "string_match":
        matched = _string(matcher.string_match, value or "")
    else:
        raise ValueError(f"cannot evaluate header matcher {kind}")
    return matched != bool(matcher.invert_match)


def _uri_template(permission: rbac_pb2.Permission, path: str) -> bool:
    config = uri_template_match_pb2.UriTemplateMatchConfig()
    if not permission.uri_template.typed_config.Unpack(config):
        raise ValueError("cannot evaluate a uri_template that is not a UriTemplateMatchConfig")
    return _regex(_template_regex(config.path_template)).fullmatch(_without_query(path)) is not None


def _template_regex(template: str) -> str:
    """Envoy's conversion of a (Istio-validated) path template: operators as whole segments."""
    segments = template.removeprefix("/").split("/")
    converted = [
        _MATCH_SEGMENTS
        if segment == "**"
        else _MATCH_SEGMENT
        if segment == "*"
        else segment.translate(_TEMPLATE_LITERAL_SPECIALS)
        for segment in segments
    ]
    return "/" + "/".join(converted)


def _without_query(path: str) -> str:
    for separator in "?#":
        path = path.split(separator, 1)[0]
    return path


def _in_cidr(address: str, cidr: address_pb2.CidrRange) -> bool:
    network = ipaddress.ip_network(f"{cidr.address_prefix}/{cidr.prefix_len.value}", strict=False)
    return ipaddress.ip_address(address) in network


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> Any:
    return re2.compile(pattern)
