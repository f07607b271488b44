"""Istio HTTPRoute -> Envoy Route (action, redirect, direct response, policies).

Cluster names are resolved by the caller (`destinations` is a list of
(cluster name, weight, per-destination headers)), so this module knows nothing of services.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2, wrappers_pb2

from isthmus.api.networking import Headers, HTTPRoute, Percent
from isthmus.pilot.envoy.durations import duration
from isthmus.pilot.envoy.fault import FAULT_FILTER, http_fault
from isthmus.pilot.envoy.headers import header_removals, header_values
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
) -> rc.RouteAction.RequestMirrorPolicy:
    """Istio mirrors 100% unless mirrorPercentage (or legacy mirrorPercent) says otherwise."""
    if percentage is not None:
        fraction = percent_pb2.FractionalPercent(
            numerator=round(percentage.value * 10_000),
            denominator=percent_pb2.FractionalPercent.MILLION,
        )
    elif legacy is not None:
        fraction = percent_pb2.FractionalPercent(
            numerator=legacy, denominator=percent_pb2.FractionalPercent.HUNDRED
        )
    else:
        fraction = percent_pb2.FractionalPercent(
            numerator=100, denominator=percent_pb2.FractionalPercent.HUNDRED
        )
    policy = rc.RouteAction.RequestMirrorPolicy()
    policy.runtime_fraction.default_value.CopyFrom(fraction)
    return policy


def _apply_headers(route: rc.Route, headers: Headers | None) -> None:
    if headers is None:
        return
    route.request_headers_to_add.extend(header_values(headers.request))
    route.request_headers_to_remove.extend(header_removals(headers.request))
    route.response_headers_to_add.extend(header_values(headers.response))
    route.response_headers_to_remove.extend(header_removals(headers.response))


def _cluster_weight(dest: WeightedDestination) -> rc.WeightedCluster.ClusterWeight:
    cw = rc.WeightedCluster.ClusterWeight(
        name=dest.cluster, weight=wrappers_pb2.UInt32Value(value=dest.weight)
    )
    if dest.headers is not None:
        cw.request_headers_to_add.extend(header_values(dest.headers.request))
        cw.request_headers_to_remove.extend(header_removals(dest.headers.request))
        cw.response_headers_to_add.extend(header_values(dest.headers.response))
        cw.response_headers_to_remove.extend(header_removals(dest.headers.response))
    return cw


def build_route(
    rule: HTTPRoute,
    match: rc.RouteMatch,
    name: str,
    destinations: Sequence[WeightedDestination],
    mirrors: Sequence[tuple[str, rc.RouteAction.RequestMirrorPolicy]] = (),
    hash_policies: Sequence[rc.RouteAction.HashPolicy] = (),
) -> rc.Route:
    """One Envoy route for one (rule, match) pair, as Istio's translateRoute does."""
    route = rc.Route(name=name, match=match)
    _apply_headers(route, rule.headers)
    if rule.fault is not None:
        fault = http_fault(rule.fault)
        if fault is not None:
            packed = any_pb2.Any()
            packed.Pack(fault)
            route.typed_per_filter_config[FAULT_FILTER].CopyFrom(packed)

    if rule.redirect is not None:
        r = rule.redirect
        redirect = rc.RedirectAction()
        if r.uri is not None:
            redirect.path_redirect = r.uri
        if r.authority is not None:
            redirect.host_redirect = r.authority
        if r.port is not None:
            redirect.port_redirect = r.port
        if r.scheme is not None:
            redirect.scheme_redirect = r.scheme
        redirect.response_code = _REDIRECT_CODES.get(
            r.redirect_code or 301, rc.RedirectAction.MOVED_PERMANENTLY
        )
        route.redirect.CopyFrom(redirect)
        return route
    if rule.direct_response is not None:
        dr = rule.direct_response
        route.direct_response.status = dr.status
        if dr.body:
            if "string" in dr.body:
                route.direct_response.body.inline_string = dr.body["string"]
            elif "bytes" in dr.body:
                route.direct_response.body.inline_bytes = dr.body["bytes"].encode()
        return route

    action = rc.RouteAction()
    live = [d for d in destinations if d.weight > 0] or list(destinations[:1])
    if len(live) == 1:
        action.cluster = live[0].cluster
        if live[0].headers is not None:
            _apply_headers(route, live[0].headers)
    else:
        action.weighted_clusters.CopyFrom(
            rc.WeightedCluster(clusters=[_cluster_weight(d) for d in live])
        )
    # Istio disables Envoy's 15s default: no timeout unless the rule sets one.
    action.timeout.CopyFrom(duration(rule.timeout if rule.timeout is not None else timedelta(0)))
    policy = retry_policy(rule.retries, consistent_hash=bool(hash_policies))
    if policy is not None:
        action.retry_policy.CopyFrom(policy)
    for cluster, mirror in mirrors:
        m = rc.RouteAction.RequestMirrorPolicy()
        m.CopyFrom(mirror)
        m.cluster = cluster
        action.request_mirror_policies.append(m)
    if rule.rewrite is not None:
        rw = rule.rewrite
        if rw.uri is not None:
            action.prefix_rewrite = rw.uri
        if rw.uri_regex_rewrite is not None:
            action.regex_rewrite.pattern.CopyFrom(regex_matcher(rw.uri_regex_rewrite.match))
            action.regex_rewrite.substitution = rw.uri_regex_rewrite.rewrite
        if rw.authority is not None:
            action.host_rewrite_literal = rw.authority
    action.hash_policy.extend(hash_policies)
    # Websocket upgrades pass through, as in Istio.
    action.upgrade_configs.append(rc.RouteAction.UpgradeConfig(upgrade_type="websocket"))
    route.route.CopyFrom(action)
    return route


def default_route(
    cluster: str, hash_policies: Sequence[rc.RouteAction.HashPolicy] = ()
) -> rc.Route:
    """The route for a service with no VirtualService: all paths, Istio's default retries."""
    return build_route(
        HTTPRoute(),
        rc.RouteMatch(prefix="/"),
        "default",
        [WeightedDestination(cluster, 100)],
        hash_policies=hash_policies,
    )
