"""Which ClusterLoadAssignments Envoy waits for after a CDS update (cluster warming).

When Envoy adds or updates an EDS cluster, the new cluster stays "warming" (and, over
ADS, Envoy holds back its CDS ACK) until it receives a ClusterLoadAssignment for it,
even if the assignment did not change. So a CDS response that adds or changes EDS
clusters must be followed by an EDS response for them; this module finds their names.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from envoy.config.cluster.v3 import cluster_pb2
from google.protobuf import any_pb2

from isthmus.pilot.resources import PreparedResource


def eds_names(clusters: Iterable[PreparedResource]) -> set[str]:
    """The EDS resource names (service_name, else cluster name) of the EDS clusters."""
    names = set()
    for cluster in clusters:
        name = _eds_name(cluster.encoded)
        if name is not None:
            names.add(name)
    return names


@lru_cache(maxsize=8192)
def _eds_name(packed: bytes) -> str | None:
    # Cached by content: every proxy that gets the same cluster shares one parse.
    cluster = cluster_pb2.Cluster.FromString(any_pb2.Any.FromString(packed).value)
    if cluster.type != cluster_pb2.Cluster.EDS:
        return None
    return str(cluster.eds_cluster_config.service_name or cluster.name)
