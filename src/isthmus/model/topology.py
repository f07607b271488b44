"""Where a workload is: its locality (region/zone/subzone) and network, as Istio reads them.

A WorkloadEntry (or ServiceEntry endpoint) names them in `locality` and `network`; a pod
(or an entry without `locality`) may carry Istio's `istio-locality` label
(`region.zone.subzone`). As Istio's AugmentLabels, the endpoint's labels then also carry
`topology.kubernetes.io/region`, `topology.kubernetes.io/zone`, `topology.istio.io/subzone`
and `topology.istio.io/network`, so DestinationRule subsets can select by them.
"""

from __future__ import annotations

from dataclasses import dataclass

LOCALITY_LABEL = "istio-locality"
REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
SUBZONE_LABEL = "topology.istio.io/subzone"
NETWORK_LABEL = "topology.istio.io/network"


@dataclass(frozen=True)
class Locality:
    """Envoy's Locality; all empty when unknown."""

    region: str = ""
    zone: str = ""
    subzone: str = ""

    @classmethod
    def parse(cls, text: str) -> Locality:
        """`region/zone/subzone`, any trailing part may be missing (Istio's SplitLocalityLabel)."""
        parts = text.split("/") if text else []
        region, zone, subzone = [*parts, "", "", ""][:3]
        return cls(region, zone, subzone)

    def __str__(self) -> str:
        return "/".join(p for p in (self.region, self.zone, self.subzone) if p)


UNKNOWN_LOCALITY = Locality()


def workload_locality(explicit: str | None, labels: dict[str, str]) -> Locality:
    """The `locality` field, else the `istio-locality` label with dots read as slashes."""
    if explicit:
        return Locality.parse(explicit)
    return Locality.parse(labels.get(LOCALITY_LABEL, "").replace(".", "/"))


def topology_labels(
    labels: dict[str, str], locality: Locality, network: str | None
) -> tuple[tuple[str, str], ...]:
    """`labels` plus the topology labels Istio adds; a label the workload sets wins for
    the network, the locality's parts overwrite (as AugmentLabels)."""
    out = dict(labels)
    for key, value in (
        (REGION_LABEL, locality.region),
        (ZONE_LABEL, locality.zone),
        (SUBZONE_LABEL, locality.subzone),
    ):
        if value:
            out[key] = value
    if network and not out.get(NETWORK_LABEL):
        out[NETWORK_LABEL] = network
    return tuple(sorted(out.items()))
