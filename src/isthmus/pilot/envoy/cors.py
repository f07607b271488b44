"""Istio CorsPolicy -> the per-route config of Envoy's CORS filter.

As Istio's TranslateCORSPolicy (pilot/pkg/networking/core/route/route.go): the policy goes
in the route's typed_per_filter_config under `envoy.filters.http.cors`, and the outbound
connection managers carry that filter (empty) so the per-route policy takes effect.
"""

from __future__ import annotations

from datetime import timedelta

from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.type.matcher.v3 import string_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2

from isthmus.api.networking import CorsPolicy, UnmatchedPreflights
from isthmus.pilot.envoy.matchers import string_matcher

CORS_FILTER = "envoy.filters.http.cors"


def cors_policy(policy: CorsPolicy) -> cors_pb2.CorsPolicy:
    """Envoy's CorsPolicy, field for field as Istio builds it.

    - Origins: `allowOrigins` as string matchers (case-sensitive), else the deprecated
      `allowOrigin` as exact matchers; with neither, no origin is allowed.
    - Lists become Envoy's comma-joined header values; `maxAge` whole seconds.
    - Always enabled for 100% of requests (`filter_enabled`).
    - `forward_not_matching_preflights` is always set: false only for
      `unmatchedPreflights: IGNORE` (Envoy then answers a preflight from a disallowed
      origin itself, without CORS headers); otherwise true, Envoy's behaviour before 1.30
      that Istio keeps: the preflight goes on to the application.
    """
    out = cors_pb2.CorsPolicy(
        allow_methods=",".join(policy.allow_methods),
        allow_headers=",".join(policy.allow_headers),
        expose_headers=",".join(policy.expose_headers),
        filter_enabled=base_pb2.RuntimeFractionalPercent(
            default_value=percent_pb2.FractionalPercent(
                numerator=100, denominator=percent_pb2.FractionalPercent.HUNDRED
            )
        ),
        forward_not_matching_preflights=wrappers_pb2.BoolValue(
            value=policy.unmatched_preflights != UnmatchedPreflights.IGNORE
        ),
    )
    if policy.allow_origins:
        out.allow_origin_string_match.extend(string_matcher(m) for m in policy.allow_origins)
    else:
        out.allow_origin_string_match.extend(
            string_pb2.StringMatcher(exact=origin) for origin in policy.allow_origin
        )
    if policy.allow_credentials is not None:
        out.allow_credentials.value = policy.allow_credentials
    if policy.max_age is not None:
        out.max_age = str(policy.max_age // timedelta(seconds=1))
    return out
