"""Istio HTTPRoute -> Envoy Route (action, redirect, direct response, policies).

Cluster names are resolved by the caller (`destinations` is a list of
(cluster name, weight, per-destination headers)), so this module knows nothing of services.
It follows Istio's translateRoute: zero-weight destinations are dropped, a destination's
headers go on its weighted cluster (or on the route when it is the only one), and an
authority set through headers or `rewrite.authority` becomes a host rewrite.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from envoy.config.route.v3 import route_components_pb2 as rc
from google.protobuf import wrappers_pb2

from isthmus.api.networking import Headers, HTTPRedirect, HTTPRoute, Percent
from isthmus.pilot.envoy.cors import CORS_FILTER, cors_policy
from isthmus.pilot.envoy.durations import duration
from isthmus.pilot.envoy.fault import FAULT_FILTER, fractional_percent, http_fault, integer_percent
from isthmus.pilot.envoy.headers import authority_rewrite, header_removals, header_values
from isthmus.pilot.envoy.matchers import regex_matcher
from isthmus.pilot.envoy.retry import retry_policy


@dataclass(frozen=True)
class WeightedDestination:
    cluster: str
    weight: int
    headers: Headers | None = None


_REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}


def mirror_fraction(
    percentage: Percent | None, legacy: int | None
) -> rc.RouteAction.RequestMirrorPolicy | None:
    """Istio mirrors 100% unless mirrorPercentage (or legacy mirrorPercent) says otherwise;
    an explicit 0% means no mirror at all (None)."""
    if percentage is not None:
        if percentage.value <= 0:
            return None
        fraction = fractional_percent(percentage)
    elif legacy is not None:
        if legacy <= 0:
            return None
        fraction = integer_percent(legacy)
    else:
        fraction = integer_percent(100)
    policy = rc.RouteAction.RequestMirrorPolicy(trace_sampled=wrappers_pb2.BoolValue(value=False))
    policy.runtime_fraction.default_value.CopyFrom(fraction)
    return policy


def _apply_headers(route: rc.Route, headers: Headers | None) -> None:
    if headers is None:
        return
    route.request_headers_to_add.extend(header_values(headers.request))
    route.request_headers_to_remove.extend(header_removals(headers.request))
    route.response_headers_to_add.extend(header_values(headers.response))
    route.response_headers_to_remove.extend(header_removals(headers.response))


def _authority(headers: Headers | None) -> str | None:
    return authority_rewrite(headers.request) if headers is not None else None


def _cluster_weight(dest: WeightedDestination) -> rc.WeightedCluster.ClusterWeight:
    cw = rc.WeightedCluster.ClusterWeight(
        name=dest.cluster, weight=wrappers_pb2.UInt32Value(value=dest.weight)
    )
    if dest.headers is not None:
        cw.request_headers_to_add.extend(header_values(dest.headers.request))
        cw.request_headers_to_remove.extend(header_removals(dest.headers.request))
        cw.response_headers_to_add.extend(header_values(dest.headers.response))
        cw.response_headers_to_remove.extend(header_removals(dest.headers.response))
        authority = _authority(dest.headers)
        if authority is not None:
            cw.host_rewrite_literal = authority
    return cw


def _redirect(r: HTTPRedirect, port: int) -> rc.RedirectAction:
    """Istio's ApplyRedirect: derivePort FROM_REQUEST_PORT is the listener's port, and a
    port that is the scheme's default (http:80, https:443) is left out of the Location."""
    redirect = rc.RedirectAction()
    if r.uri is not None:
        redirect.path_redirect = r.uri
    if r.authority is not None:
        redirect.host_redirect = r.authority
    if r.scheme is not None:
        redirect.scheme_redirect = r.scheme
    target = r.port if r.port is not None else (port if r.derive_port == "FROM_REQUEST_PORT" else 0)
    if target and (target, r.scheme or "http") not in ((80, "http"), (443, "https")):
        redirect.port_redirect = target
    # Envoy knows only these codes; validation admits other 3xx, which fall back to 301.
    redirect.response_code = _REDIRECT_CODES.get(
        r.redirect_code or 301, rc.RedirectAction.MOVED_PERMANENTLY
    )
    return redirect


def _direct_response(rule: HTTPRoute) -> rc.DirectResponseAction:
    assert rule.direct_response is not None
    dr = rule.direct_response
    out = rc.DirectResponseAction(status=dr.status)
    if dr.body:
        if "string" in dr.body:
            out.body.inline_string = dr.body["string"]
        elif "bytes" in dr.body:
            # Istio's `bytes` is a proto bytes field: base64 in YAML and JSON.
            out.body.inline_bytes = base64.b64decode(dr.body["bytes"])
    return out


def _route_action(
    rule: HTTPRoute,
    route: rc.Route,
    destinations: Sequence[WeightedDestination],
    authority: str | None,
) -> rc.RouteAction:
    action = rc.RouteAction()
    live = [d for d in destinations if d.weight > 0] or list(destinations[:1])
    if len(live) == 1:
        action.cluster = live[0].cluster
        _apply_headers(route, live[0].headers)
        # A route-level rewrite wins over the destination's own authority header.
        authority = authority or _authority(live[0].headers)
    else:
        action.weighted_clusters.CopyFrom(
            rc.WeightedCluster(clusters=[_cluster_weight(d) for d in live])
        )
    if authority is not None:
        action.host_rewrite_literal = authority
    if rule.rewrite is not None:
        rw = rule.rewrite
        if rw.uri_regex_rewrite is not None:
            action.regex_rewrite.pattern.CopyFrom(regex_matcher(rw.uri_regex_rewrite.match))
            action.regex_rewrite.substitution = rw.uri_regex_rewrite.rewrite
        elif rw.uri is not None:
            action.prefix_rewrite = rw.uri
    return action


def build_route(
    rule: HTTPRoute,
    match: rc.RouteMatch,
    name: str,
    destinations: Sequence[WeightedDestination],
    mirrors: Sequence[tuple[str, rc.RouteAction.RequestMirrorPolicy]] = (),
    hash_policies: Sequence[rc.RouteAction.HashPolicy] = (),
    *,
    port: int = 0,
    consistent_hash: bool = False,
) -> rc.Route:
    """One Envoy route for one (rule, match) pair, as Istio's translateRoute does.

    `port` is the listener port (for redirect derivePort); `consistent_hash` keeps retries
    on the hashed host (Istio sets it when the rule has a single, hashed destination)."""
    route = rc.Route(name=name, match=match)
    _apply_headers(route, rule.headers)
    if rule.fault is not None:
        fault = http_fault(rule.fault)
        if fault is not None:
            route.typed_per_filter_config[FAULT_FILTER].Pack(fault)
    if rule.cors_policy is not None:
        # As Istio, on every kind of route (redirects and direct responses too).
        route.typed_per_filter_config[CORS_FILTER].Pack(cors_policy(rule.cors_policy))

    if rule.redirect is not None:
        route.redirect.CopyFrom(_redirect(rule.redirect, port))
        return route
    if rule.direct_response is not None:
        route.direct_response.CopyFrom(_direct_response(rule))
        return route

    authority = _authority(rule.headers)
    if rule.rewrite is not None and rule.rewrite.authority:
        authority = rule.rewrite.authority
    action = _route_action(rule, route, destinations, authority)
    # Istio disables Envoy's 15s default: no timeout unless the rule sets one.
    action.timeout.CopyFrom(duration(rule.timeout if rule.timeout is not None else timedelta(0)))
    policy = retry_policy(rule.retries, consistent_hash=consistent_hash)
    if policy is not None:
        action.retry_policy.CopyFrom(policy)
    for cluster, mirror in mirrors:
        m = rc.RouteAction.RequestMirrorPolicy()
        m.CopyFrom(mirror)
        m.cluster = cluster
        action.request_mirror_policies.append(m)
    action.hash_policy.extend(hash_policies)
    # Websocket upgrades pass through, as in Istio.
    action.upgrade_configs.append(rc.RouteAction.UpgradeConfig(upgrade_type="websocket"))
    route.route.CopyFrom(action)
    return route


def default_route(
    cluster: str, hash_policies: Sequence[rc.RouteAction.HashPolicy] = ()
) -> rc.Route:
    """The route for a service with no VirtualService: all paths, Istio's default retries.

    Istio's BuildDefaultHTTPOutboundRoute keeps the previous-hosts retry predicate even
    when the DestinationRule hashes (consistent_hash=False)."""
    return build_route(
        HTTPRoute(),
        rc.RouteMatch(prefix="/"),
        "default",
        [WeightedDestination(cluster, 100)],
        hash_policies=hash_policies,
    )
