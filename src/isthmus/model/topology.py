"""Where a workload is: its locality (region/zone/subzone) and network, as Istio reads them.

A WorkloadEntry (or ServiceEntry endpoint) names them in `locality` and `network`; a pod
(or an entry without `locality`) may carry Istio's `topology.istio.io/locality` or
`istio-locality` label (`region.zone.subzone`). A pod without one is where its
`topology.kubernetes.io/region`, `topology.kubernetes.io/zone` and
`topology.istio.io/subzone` labels say: Istio reads those from the pod's node, isthmus
(which has no nodes) from the pod itself. A proxy is where its pod is, else where its
Envoy node's locality says (Istio's order). As Istio's AugmentLabels, the endpoint's
labels then also carry `topology.kubernetes.io/region`, `topology.kubernetes.io/zone`,
`topology.istio.io/subzone` and `topology.istio.io/network`, so DestinationRule subsets
(and failoverPriority) can select by them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

LOCALITY_LABEL = "istio-locality"
TOPOLOGY_LOCALITY_LABEL = "topology.istio.io/locality"
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


def locality_label(labels: Mapping[str, str]) -> str:
    """Istio's GetLocalityLabel and SanitizeLocalityLabel: `topology.istio.io/locality`, else
    `istio-locality`, dots read as slashes (labels cannot hold a slash)."""
    value = labels.get(TOPOLOGY_LOCALITY_LABEL, labels.get(LOCALITY_LABEL, ""))
    return value if "/" in value else value.replace(".", "/")


def workload_locality(explicit: str | None, labels: Mapping[str, str]) -> Locality:
    """A WorkloadEntry's: the `locality` field, else its locality label."""
    if explicit:
        return Locality.parse(explicit)
    return Locality.parse(locality_label(labels))


def pod_locality(labels: Mapping[str, str]) -> Locality:
    """A pod's (Istio's getPodLocality): its locality label, else the region, zone and
    subzone labels (of the node in Istio; of the pod here)."""
    found = locality_label(labels)
    if found:
        return Locality.parse(found)
    return Locality(
        labels.get(REGION_LABEL, ""), labels.get(ZONE_LABEL, ""), labels.get(SUBZONE_LABEL, "")
    )


def proxy_locality(labels: Mapping[str, str], node: Locality) -> Locality:
    """A proxy's: its pod's (by the pod's labels, which the proxy reports), else the
    locality its Envoy node reports (Istio's setTopologyLabels)."""
    found = pod_locality(labels)
    return found if found != UNKNOWN_LOCALITY else node


def topology_labels(
    labels: Mapping[str, str], locality: Locality, network: str | None
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
