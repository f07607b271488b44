"""localityLbSetting checks (DestinationRule loadBalancer and MeshConfig), as Istio's
ValidateLocalityLbSetting (pkg/config/validation/agent/validation.go) makes them.

One check is stricter than Istio: `failoverPriority` with `distribute` is refused, since
Istio then ignores failoverPriority (the API says only one of them may be set). Istio's
warning for failover without outlierDetection is not given: failover then has no effect,
in isthmus as in Istio (Envoy cannot tell that endpoints are unhealthy).
"""

from __future__ import annotations

from isthmus.api.errors import FieldPath, Problems
from isthmus.api.networking import LocalityLoadBalancerSetting

# Topology labels a failoverPriority may not name together with `failover` (Istio's rule:
# region failover and priority by the same topology would contradict each other).
TOPOLOGY_LABELS = (
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
)


def check_locality_lb_setting(
    problems: Problems, path: FieldPath, setting: LocalityLoadBalancerSetting
) -> None:
    if setting.distribute and setting.failover:
        problems.add(path, "can not simultaneously specify 'distribute' and 'failover'")
        return
    if setting.distribute and setting.failover_priority:
        problems.add(
            path.field("failoverPriority"),
            "can not be set with 'distribute' (Istio ignores it then)",
        )
        return
    if setting.failover and setting.failover_priority:
        for label in setting.failover_priority:
            if label in TOPOLOGY_LABELS:
                problems.add(
                    path.field("failoverPriority"),
                    f"can not simultaneously set 'failover' and topology label '{label}' "
                    "in 'failoverPriority'",
                )
                return
    for position, entry in enumerate(setting.distribute):
        here = path.field("distribute").index(position)
        for weight in entry.to.values():
            if not 1 <= weight <= 100:
                problems.add(here.field("to"), "locality weight must be in range [1, 100]")
                return
        total = sum(entry.to.values())
        if total != 100:
            problems.add(here.field("to"), f"total locality weight {total} != 100")
            return
        problem = _localities_error(list(entry.to))
        if problem:
            problems.add(here.field("to"), problem)
    problem = _localities_error([entry.from_ for entry in setting.distribute])
    if problem:
        problems.add(path.field("distribute"), problem)
    for position, failover in enumerate(setting.failover):
        here = path.field("failover").index(position)
        if failover.from_ == failover.to:
            problems.add(here, "locality lb failover settings must specify different regions")
        if "/" in failover.from_ or "/" in failover.to:
            problems.add(here, "locality lb failover only specify region")
        if "*" in failover.from_ or "*" in failover.to:
            problems.add(here, "locality lb failover region should not contain '*' wildcard")


def _localities_error(localities: list[str]) -> str | None:
    """Istio's validateLocalities: at most one `*`, last; no empty part; no overlap with a
    locality given before (in Istio's order-dependent way)."""
    seen: dict[str, dict[str, dict[str, bool]]] = {}
    for locality in localities:
        stars = locality.count("*")
        if stars and (stars > 1 or not locality.endswith("*")):
            return (
                f"locality {locality} wildcard '*' number can not exceed 1 and must be in the end"
            )
        if "*" in seen:
            return f"locality {locality} overlap with previous specified ones"
        items = locality.split("/", 2)
        if any(item == "" for item in items):
            return f"locality {locality} must not contain empty region/zone/subzone info"
        region, zone, subzone = [*items, "", ""][:3]
        overlap = f"locality {locality} overlap with previous specified ones"
        if len(items) == 1:
            if region in seen:
                return overlap
            seen[region] = {"*": {"*": True}}
        elif len(items) == 2:
            zones = seen.get(region)
            if zones is None:
                seen[region] = {zone: {"*": True}}
            elif "*" in zones or zone in zones:
                return overlap
            else:
                zones[zone] = {"*": True}
        else:
            zones = seen.get(region)
            if zones is None:
                seen[region] = {zone: {subzone: True}}
            elif "*" in zones:
                return overlap
            elif zone in zones:
                if zones[zone].get("*") or zones[zone].get(subzone):
                    return overlap
                zones[zone][subzone] = True
            else:
                zones[zone] = {subzone: True}
    return None
