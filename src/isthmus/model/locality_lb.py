"""Istio's LocalityLoadBalancerSetting as a hashable value (MeshConfig's default and a
DestinationRule's), so that what is built from it can be cached by it."""

from __future__ import annotations

from dataclasses import dataclass

from isthmus.api.networking import LocalityLoadBalancerSetting


@dataclass(frozen=True)
class LocalityLbSetting:
    """`distribute`: (from, ((to, weight), ...)) in the YAML's order; `failover`: (from
    region, to region); `failover_priority`: label names, each maybe `name=value`;
    `enabled`: None when unset (which counts as enabled)."""

    distribute: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()
    failover: tuple[tuple[str, str], ...] = ()
    failover_priority: tuple[str, ...] = ()
    enabled: bool | None = None

    @classmethod
    def of(cls, setting: LocalityLoadBalancerSetting) -> LocalityLbSetting:
        return cls(
            distribute=tuple((d.from_, tuple(d.to.items())) for d in setting.distribute),
            failover=tuple((f.from_, f.to) for f in setting.failover),
            failover_priority=tuple(setting.failover_priority),
            enabled=setting.enabled,
        )


# Istio's default MeshConfig enables locality load balancing (with no other setting): with
# outlier detection, a proxy prefers endpoints in its own region, zone and subzone.
ISTIO_DEFAULT = LocalityLbSetting(enabled=True)
