"""The tcp_proxy network filter (TCP services, passthrough, inbound TCP ports)."""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.type.v3 import hash_policy_pb2

from isthmus.pilot.destination_rule import NO_TCP_PROXY_POLICY, TcpProxyPolicy
from isthmus.pilot.envoy.durations import duration
from isthmus.pilot.envoy.typed import pack

TCP_PROXY_FILTER = "envoy.filters.network.tcp_proxy"


def _with_logs(
    config: tcp_proxy_pb2.TcpProxy, access_logs: Sequence[accesslog_pb2.AccessLog]
) -> lc.Filter:
    """Access logs are written when the connection ends and also when the upstream
    connection is established (telemetry counts opened connections then; every logger
    that must run once per connection filters on the log type)."""
    config.access_log.extend(access_logs)
    if access_logs:
        config.access_log_options.flush_access_log_on_connected = True
    return lc.Filter(name=TCP_PROXY_FILTER, typed_config=pack(config))


def _apply_policy(config: tcp_proxy_pb2.TcpProxy, policy: TcpProxyPolicy) -> None:
    """A DestinationRule's idle timeout (0s: none), connection duration limit and
    source-IP hash (the RING_HASH/MAGLEV cluster hashes the connection by it)."""
    if policy.idle_timeout is not None:
        config.idle_timeout.CopyFrom(duration(policy.idle_timeout))
    if policy.max_connection_duration is not None:
        config.max_downstream_connection_duration.CopyFrom(duration(policy.max_connection_duration))
    if policy.hash_source_ip:
        config.hash_policy.append(
            hash_policy_pb2.HashPolicy(source_ip=hash_policy_pb2.HashPolicy.SourceIp())
        )


def tcp_proxy(
    stat_prefix: str,
    cluster: str,
    access_logs: Sequence[accesslog_pb2.AccessLog] = (),
    policy: TcpProxyPolicy = NO_TCP_PROXY_POLICY,
) -> lc.Filter:
    config = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix, cluster=cluster)
    _apply_policy(config, policy)
    return _with_logs(config, access_logs)


def weighted_tcp_proxy(
    stat_prefix: str,
    clusters: Sequence[tuple[str, int]],
    access_logs: Sequence[accesslog_pb2.AccessLog] = (),
    policy: TcpProxyPolicy = NO_TCP_PROXY_POLICY,
) -> lc.Filter:
    """TCP routes with several destinations split connections by weight."""
    live = [(c, w) for c, w in clusters if w > 0]
    if len(live) == 1:
        return tcp_proxy(stat_prefix, live[0][0], access_logs, policy)
    config = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix)
    for cluster, weight in live:
        config.weighted_clusters.clusters.append(
            tcp_proxy_pb2.TcpProxy.WeightedCluster.ClusterWeight(name=cluster, weight=weight)
        )
    _apply_policy(config, policy)
    return _with_logs(config, access_logs)
