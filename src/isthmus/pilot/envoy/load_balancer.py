"""DestinationRule loadBalancer -> cluster lb_policy, and consistentHash -> route hash policy.

Istio's choices: unset means LEAST_REQUEST; LEAST_CONN is an alias of LEAST_REQUEST;
PASSTHROUGH turns the cluster into an original-destination one; consistentHash means a
RING_HASH cluster (minimum ring 1024 unless minimumRingSize says otherwise) and a hash
policy on every route to it, which is why `hash_policy_for` is separate: the route
builder calls it. `warmup` (or the deprecated `warmupDurationSecs`) is Envoy's slow
start on ROUND_ROBIN and LEAST_REQUEST clusters (Istio's setWarmup: aggression 1 and
minimum weight 10% unless set, its runtime key "(" so that no runtime can override it).
The locality load balancing config comes first, as in Istio's applyLoadBalancer.
"""

from __future__ import annotations

from typing import TypeAlias

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_components_pb2

from isthmus.api.networking import (
    ConsistentHashLB,
    LoadBalancerSettings,
    SimpleLB,
    WarmupConfiguration,
)
from isthmus.model.locality_lb import LocalityLbSetting
from isthmus.pilot.envoy.cluster import Cluster, duration
from isthmus.pilot.envoy.locality_lb import apply_locality_weighted_config

HashPolicy: TypeAlias = route_components_pb2.RouteAction.HashPolicy
DEFAULT_MINIMUM_RING_SIZE = 1024
SlowStartConfig: TypeAlias = cluster_pb2.Cluster.SlowStartConfig
DEFAULT_AGGRESSION = 1.0
DEFAULT_MIN_WEIGHT_PERCENT = 10.0
# Istio's: a key no runtime layer sets, so the aggression is always the configured one.
AGGRESSION_RUNTIME_KEY = "("

_SIMPLE = {
    SimpleLB.LEAST_CONN: Cluster.LEAST_REQUEST,
    SimpleLB.LEAST_REQUEST: Cluster.LEAST_REQUEST,
    SimpleLB.RANDOM: Cluster.RANDOM,
    SimpleLB.ROUND_ROBIN: Cluster.ROUND_ROBIN,
}


def apply_load_balancer(
    cluster: Cluster,
    settings: LoadBalancerSettings | None,
    locality: LocalityLbSetting | None = None,
) -> None:
    """Istio's applyLoadBalancer for clusters of mesh services; `locality` is the cluster's
    effective locality load balancing (pilot.locality_lb), set after outlier detection."""
    if cluster.type == Cluster.ORIGINAL_DST:
        cluster.lb_policy = Cluster.CLUSTER_PROVIDED
        return
    apply_locality_weighted_config(cluster, locality, cluster.HasField("outlier_detection"))
    simple = settings.simple if settings else None
    if simple == SimpleLB.PASSTHROUGH:
        cluster.type = Cluster.ORIGINAL_DST
        cluster.lb_policy = Cluster.CLUSTER_PROVIDED
        cluster.ClearField("load_assignment")
    else:
        cluster.lb_policy = _SIMPLE.get(simple or SimpleLB.UNSPECIFIED, Cluster.LEAST_REQUEST)
        slow_start = slow_start_config(settings) if settings else None
        if slow_start is not None and cluster.lb_policy == Cluster.ROUND_ROBIN:
            cluster.round_robin_lb_config.slow_start_config.CopyFrom(slow_start)
        elif slow_start is not None and cluster.lb_policy == Cluster.LEAST_REQUEST:
            cluster.least_request_lb_config.slow_start_config.CopyFrom(slow_start)
    if settings is not None and settings.consistent_hash is not None:
        apply_ring_hash(cluster, settings.consistent_hash)


def slow_start_config(settings: LoadBalancerSettings) -> SlowStartConfig | None:
    """`warmup` (Istio's setWarmup), else `warmupDurationSecs` (its setSlowStartConfig:
    the window alone), else None."""
    if settings.warmup is not None:
        return _warmup(settings.warmup)
    if settings.warmup_duration_secs is not None:
        out = SlowStartConfig()
        out.slow_start_window.CopyFrom(duration(settings.warmup_duration_secs))
        return out
    return None


def _warmup(warmup: WarmupConfiguration) -> SlowStartConfig:
    out = SlowStartConfig()
    out.slow_start_window.CopyFrom(duration(warmup.duration))
    aggression = warmup.aggression if warmup.aggression is not None else DEFAULT_AGGRESSION
    out.aggression.default_value = aggression
    out.aggression.runtime_key = AGGRESSION_RUNTIME_KEY
    minimum = warmup.minimum_percent
    out.min_weight_percent.value = minimum if minimum is not None else DEFAULT_MIN_WEIGHT_PERCENT
    return out


def apply_ring_hash(cluster: Cluster, consistent_hash: ConsistentHashLB) -> None:
    cluster.lb_policy = Cluster.RING_HASH
    size = consistent_hash.minimum_ring_size or DEFAULT_MINIMUM_RING_SIZE
    cluster.ring_hash_lb_config.minimum_ring_size.value = size


def hash_policy_for(consistent_hash: ConsistentHashLB | None) -> list[HashPolicy]:
    """The RouteAction hash policy for a consistentHash (empty when there is none).

    Take `consistent_hash` from `destination_rule.route_consistent_hash`."""
    if consistent_hash is None:
        return []
    policy = HashPolicy()
    if consistent_hash.http_header_name is not None:
        policy.header.header_name = consistent_hash.http_header_name
    elif consistent_hash.http_cookie is not None:
        cookie = consistent_hash.http_cookie
        policy.cookie.name = cookie.name
        if cookie.path is not None:
            policy.cookie.path = cookie.path
        if cookie.ttl is not None:
            policy.cookie.ttl.CopyFrom(duration(cookie.ttl))
    elif consistent_hash.use_source_ip is not None:
        policy.connection_properties.source_ip = consistent_hash.use_source_ip
    elif consistent_hash.http_query_parameter_name is not None:
        policy.query_parameter.name = consistent_hash.http_query_parameter_name
    else:
        return []
    return [policy]
