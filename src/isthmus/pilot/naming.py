"""Envoy cluster names as Istio spells them, and their parser.

Cluster names carry meaning: CDS, EDS, routes and stats all key on
`outbound|8080|v1|inventory-service.production.svc.cluster.local` and `inbound|8080||`,
so one module owns how they are built and read back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

BLACK_HOLE_CLUSTER = "BlackHoleCluster"
PASSTHROUGH_CLUSTER = "PassthroughCluster"
INBOUND_PASSTHROUGH_CLUSTER = "InboundPassthroughCluster"


class TrafficDirection(StrEnum):
    """The first field of a cluster name: which way the cluster carries traffic."""

    OUTBOUND = "outbound"
    INBOUND = "inbound"


@dataclass(frozen=True)
class ClusterKey:
    """The parts of `direction|port|subset|hostname`; empty subset and host are ""."""

    direction: TrafficDirection
    port: int
    subset: str
    hostname: str


def outbound_cluster_name(port: int, subset: str | None, hostname: str) -> str:
    """`outbound|8080|v1|host`; without a subset `outbound|8080||host`."""
    return f"{TrafficDirection.OUTBOUND}|{port}|{subset or ''}|{hostname}"


def inbound_cluster_name(port: int) -> str:
    """`inbound|8080||`: one inbound cluster per workload port, as Istio names it."""
    return f"{TrafficDirection.INBOUND}|{port}||"


def parse_cluster_name(name: str) -> ClusterKey | None:
    """Read a name built above back into its parts; None for any other cluster name."""
    parts = name.split("|")
    if len(parts) != 4:
        return None
    direction, port, subset, hostname = parts
    if direction not in (TrafficDirection.OUTBOUND, TrafficDirection.INBOUND):
        return None
    if not port.isdigit():
        return None
    return ClusterKey(TrafficDirection(direction), int(port), subset, hostname)
