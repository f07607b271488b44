"""Which locality load balancing applies to a cluster, and what of a proxy it reads.

The setting (Istio's GetEffectiveLbSetting, without zone-aware LB and Service
trafficDistribution, which isthmus refuses): the cluster's DestinationRule
`loadBalancer.localityLbSetting` if set (none at all when it says `enabled: false`), else
the MeshConfig's (Istio's default: `enabled: true`), else none.

It makes endpoint assignments (and the inline ones of DNS clusters) depend on the proxy
when it can change them: with `distribute`, or with outlier detection (failover). Then the
assignment's inputs carry the proxy's `ProxyPlace`, narrowed to what the setting reads
(its locality; the labels failoverPriority names), so that proxies in the same place still
share one assignment and proxies elsewhere never get it.
"""

from __future__ import annotations

from dataclasses import dataclass

from isthmus.api.networking import TrafficPolicy
from isthmus.model.locality_lb import LocalityLbSetting
from isthmus.model.snapshot import MeshConfig
from isthmus.model.topology import UNKNOWN_LOCALITY, Locality, topology_labels
from isthmus.model.types import Proxy

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ProxyPlace:
    """Where a proxy is, for locality load balancing: its locality, and its labels with
    the topology labels Istio adds to them (which failoverPriority compares)."""

    locality: Locality = UNKNOWN_LOCALITY
    labels: Labels = ()

    @classmethod
    def of(cls, proxy: Proxy) -> ProxyPlace:
        return cls(proxy.locality, topology_labels(dict(proxy.labels), proxy.locality, None))

    def narrowed(self, needs: LocalityNeeds) -> ProxyPlace | None:
        """Only what `needs` reads; None when it reads nothing."""
        if not needs.locality and not needs.labels:
            return None
        return ProxyPlace(
            self.locality if needs.locality else UNKNOWN_LOCALITY,
            tuple((k, v) for k, v in self.labels if k in needs.labels),
        )


@dataclass(frozen=True)
class LocalityNeeds:
    """What of a proxy's place some clusters' locality load balancing reads."""

    locality: bool = False
    labels: frozenset[str] = frozenset()

    def __or__(self, other: LocalityNeeds) -> LocalityNeeds:
        return LocalityNeeds(self.locality or other.locality, self.labels | other.labels)


NOTHING = LocalityNeeds()


@dataclass(frozen=True)
class LocalityLb:
    """The locality load balancing of one cluster for proxies in `place`."""

    setting: LocalityLbSetting
    enable_failover: bool
    place: ProxyPlace = ProxyPlace()

    @property
    def needs(self) -> LocalityNeeds:
        """What of the proxy's place the result depends on."""
        setting = self.setting
        if setting.distribute:
            return LocalityNeeds(locality=True)
        if not self.enable_failover:
            return NOTHING
        names = frozenset(p.split("=")[0] for p in setting.failover_priority)
        located = not setting.failover_priority or bool(setting.failover)
        return LocalityNeeds(locality=located, labels=names)

    def at(self, place: ProxyPlace) -> LocalityLb:
        narrowed = place.narrowed(self.needs)
        return LocalityLb(self.setting, self.enable_failover, narrowed or ProxyPlace())


def effective_setting(config: MeshConfig, policy: TrafficPolicy | None) -> LocalityLbSetting | None:
    balancer = policy.load_balancer if policy else None
    chosen = balancer.locality_lb_setting if balancer else None
    setting = LocalityLbSetting.of(chosen) if chosen is not None else config.locality_lb_setting
    if setting is None or setting.enabled is False:
        return None
    return setting


def locality_lb(config: MeshConfig, policy: TrafficPolicy | None) -> LocalityLb | None:
    """The cluster's locality load balancing, for no place yet; None when it can change
    nothing (no setting, or one that needs outlier detection the policy lacks)."""
    setting = effective_setting(config, policy)
    if setting is None:
        return None
    enable_failover = policy is not None and policy.outlier_detection is not None
    if not enable_failover and not setting.distribute:
        return None  # its needs would be NOTHING (checked per cluster: kept cheap)
    return LocalityLb(setting, enable_failover)
