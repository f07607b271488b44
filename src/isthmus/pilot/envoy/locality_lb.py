"""Locality load balancing on Envoy resources, as Istio's loadbalancer package does it
(pilot/pkg/networking/core/loadbalancer/loadbalancer.go).

Per proxy, on a ClusterLoadAssignment whose groups are one locality each:

- `distribute` (applyLocalityWeights): the first entry whose `from` matches the proxy's
  locality weighs each group by the `to` locality it matches (a group's share of that
  locality's weight, rounded up; a wildcard sharing it among the groups it matches);
  groups that no `to` matches are left without endpoints. Needs no outlier detection.
- otherwise, only with outlier detection (else Envoy would never see that endpoints are
  down and fail over): `failoverPriority` (applyFailoverPriorities) splits each group by
  how many of the listed labels, in order, an endpoint shares with the proxy (`name=value`
  compares with value instead of the proxy's label; a first `topology.istio.io/network`
  that differs only lowers the priority below all others); then, or instead when there is
  no failoverPriority, `failover` (applyLocalityFailover) ranks groups by distance: same
  region, zone and subzone 0, same zone 1, same region 2, another region 3, or 4 when a
  `failover` entry from the proxy's region names another region than the group's.
  Priorities are compacted to 0..N, as Envoy needs them.

On the cluster: `locality_weighted_lb_config` when `distribute` is set, or when failover
applies (outlier detection) and `failover` or `failoverPriority` is set
(LocalityLBSettings.ApplyToCluster).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from envoy.config.core.v3 import base_pb2

from isthmus.model.locality_lb import LocalityLbSetting
from isthmus.model.topology import NETWORK_LABEL, Locality
from isthmus.model.types import Endpoint
from isthmus.pilot.envoy.cluster import Cluster
from isthmus.pilot.envoy.endpoint import ClusterLoadAssignment, LocalityLbEndpoints


def apply_locality_weighted_config(
    cluster: Cluster, setting: LocalityLbSetting | None, outlier_detection: bool
) -> None:
    if setting is None:
        return
    failover = outlier_detection and bool(setting.failover or setting.failover_priority)
    if failover or setting.distribute:
        cluster.common_lb_config.locality_weighted_lb_config.SetInParent()


def apply_locality_lb(
    assignment: ClusterLoadAssignment,
    groups: Sequence[Sequence[Endpoint]],
    setting: LocalityLbSetting,
    enable_failover: bool,
    locality: Locality,
    labels: Mapping[str, str],
) -> None:
    """Istio's ApplyLocalityLoadBalancer. `groups` are the endpoints of each of the
    assignment's groups, in order; `labels` the proxy's, with its topology labels."""
    if setting.distribute:
        _apply_weights(assignment, locality, setting.distribute)
    elif enable_failover:
        if setting.failover_priority:
            _apply_failover_priorities(assignment, groups, labels, setting.failover_priority)
            if setting.failover:
                _apply_failover(assignment, locality, setting.failover)
        else:
            _apply_failover(assignment, locality, setting.failover)


def locality_matches(locality: base_pb2.Locality | Locality, rule: str) -> bool:
    """Istio's LocalityMatch: `region/zone/subzone`, `*` or a missing part matches any
    (the region must be given)."""
    region, zone, subzone = [*rule.split("/"), "", ""][:3]
    have = _parts(locality)
    return region in ("*", have[0]) and zone in ("*", "", have[1]) and subzone in ("*", "", have[2])


def _parts(locality: base_pb2.Locality | Locality) -> tuple[str, str, str]:
    if isinstance(locality, Locality):
        return locality.region, locality.zone, locality.subzone
    return locality.region, locality.zone, locality.sub_zone


def _lb_priority(proxy: Locality, group: base_pb2.Locality) -> int:
    if proxy.region != group.region:
        return 3
    if proxy.zone != group.zone:
        return 2
    return 0 if proxy.subzone == group.sub_zone else 1


def _apply_weights(
    assignment: ClusterLoadAssignment,
    locality: Locality,
    distribute: Sequence[tuple[str, Sequence[tuple[str, int]]]],
) -> None:
    for source, targets in distribute:
        if not locality_matches(locality, source):
            continue
        unmatched = set(range(len(assignment.endpoints)))
        for target, weight in targets:
            originals: dict[int, int] = {}
            for index in sorted(unmatched):
                group = assignment.endpoints[index]
                if locality_matches(group.locality, target):
                    unmatched.discard(index)
                    has_weight = group.HasField("load_balancing_weight")
                    originals[index] = group.load_balancing_weight.value if has_weight else 1
            total = sum(originals.values())
            for index, original in originals.items():
                share = original * weight / total
                if share > 0:
                    assignment.endpoints[index].load_balancing_weight.value = math.ceil(share)
        for index in unmatched:
            del assignment.endpoints[index].lb_endpoints[:]
        return


def _apply_failover(
    assignment: ClusterLoadAssignment,
    locality: Locality,
    failover: Sequence[tuple[str, str]],
) -> None:
    by_priority: dict[int, list[int]] = {}
    for index, group in enumerate(assignment.endpoints):
        priority = _lb_priority(locality, group.locality)
        if priority == 3:
            for source, target in failover:
                if source == locality.region:
                    if group.locality.region != target:
                        priority = 4
                    break
        # Up to 5 distances per priority failoverPriority gave (Istio multiplies by 5).
        value = group.priority * 5 + priority
        group.priority = value
        by_priority.setdefault(value, []).append(index)
    _compact(assignment.endpoints, by_priority)


def _apply_failover_priorities(
    assignment: ClusterLoadAssignment,
    groups: Sequence[Sequence[Endpoint]],
    labels: Mapping[str, str],
    priorities: Sequence[str],
) -> None:
    split: list[LocalityLbEndpoints] = []
    for group, endpoints in zip(assignment.endpoints, groups, strict=True):
        split += _split_by_labels(group, endpoints, labels, priorities)
    by_priority: dict[int, list[int]] = {}
    for index, group in enumerate(split):
        by_priority.setdefault(group.priority, []).append(index)
    _compact(split, by_priority)
    del assignment.endpoints[:]
    assignment.endpoints.extend(split)


def _split_by_labels(
    group: LocalityLbEndpoints,
    endpoints: Sequence[Endpoint],
    proxy_labels: Mapping[str, str],
    priorities: Sequence[str],
) -> list[LocalityLbEndpoints]:
    """Istio's applyFailoverPriorityPerLocality: one group per priority."""
    lowest = len(priorities)
    names: list[str] = []
    overrides: dict[str, str] = {}
    for entry in priorities:
        parts = entry.split("=")
        names.append(parts[0])
        if len(parts) == 2:
            overrides[parts[0]] = parts[1]
    network_first = lowest > 0 and priorities[0] == NETWORK_LABEL
    by_priority: dict[int, list[int]] = {}
    for index, endpoint in enumerate(endpoints):
        endpoint_labels = dict(endpoint.labels)
        priority = adjust = 0
        for position, name in enumerate(names):
            wanted = overrides.get(name, proxy_labels.get(name, ""))
            if wanted != endpoint_labels.get(name, ""):
                if position == 0 and network_first:
                    adjust = lowest
                    continue
                priority = lowest - position
                break
        by_priority.setdefault(priority + adjust, []).append(index)
    out = []
    for priority in sorted(by_priority):
        part = LocalityLbEndpoints()
        part.CopyFrom(group)
        del part.lb_endpoints[:]
        part.priority = priority
        chosen = [group.lb_endpoints[i] for i in by_priority[priority]]
        part.lb_endpoints.extend(chosen)
        part.load_balancing_weight.value = sum(e.load_balancing_weight.value for e in chosen)
        out.append(part)
    return out


def _compact(groups: Sequence[LocalityLbEndpoints], by_priority: dict[int, list[int]]) -> None:
    """Priorities 0..N without gaps, in the same order (Envoy needs no gaps)."""
    for rank, priority in enumerate(sorted(by_priority)):
        if rank != priority:
            for index in by_priority[priority]:
                groups[index].priority = rank
