"""DestinationRule loadBalancer -> cluster lb_policy, and consistentHash -> route hash policy.

Istio's choices: unset means LEAST_REQUEST; LEAST_CONN is an alias of LEAST_REQUEST;
PASSTHROUGH turns the cluster into an original-destination one; consistentHash means a
RING_HASH cluster (minimum ring 1024 unless minimumRingSize says otherwise) and a hash
policy on every route to it, which is why `hash_policy_for` is separate: the route
builder calls it.
"""

from __future__ import annotations

from typing import TypeAlias

from envoy.config.route.v3 import route_components_pb2

from isthmus.api.networking import ConsistentHashLB, LoadBalancerSettings, SimpleLB
from isthmus.pilot.envoy.cluster import Cluster, duration

HashPolicy: TypeAlias = route_components_pb2.RouteAction.HashPolicy
DEFAULT_MINIMUM_RING_SIZE = 1024

_SIMPLE = {
    SimpleLB.LEAST_CONN: Cluster.LEAST_REQUEST,
    SimpleLB.LEAST_REQUEST: Cluster.LEAST_REQUEST,
    SimpleLB.RANDOM: Cluster.RANDOM,
    SimpleLB.ROUND_ROBIN: Cluster.ROUND_ROBIN,
}


def apply_load_balancer(cluster: Cluster, settings: LoadBalancerSettings | None) -> None:
    """Istio's applyLoadBalancer for clusters of mesh services."""
    if cluster.type == Cluster.ORIGINAL_DST:
        cluster.lb_policy = Cluster.CLUSTER_PROVIDED
        return
    simple = settings.simple if settings else None
    if simple == SimpleLB.PASSTHROUGH:
        cluster.type = Cluster.ORIGINAL_DST
        cluster.lb_policy = Cluster.CLUSTER_PROVIDED
        cluster.ClearField("load_assignment")
    else:
        cluster.lb_policy = _SIMPLE.get(simple or SimpleLB.UNSPECIFIED, Cluster.LEAST_REQUEST)
    if settings is not None and settings.consistent_hash is not None:
        apply_ring_hash(cluster, settings.consistent_hash)


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
