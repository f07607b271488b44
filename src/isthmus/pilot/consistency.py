"""Snapshot consistency, checked before a snapshot is published (as go-control-plane does):
every route config a listener names exists, every EDS cluster has an assignment."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from isthmus.pilot.generators.clusters import eds_cluster_names
from isthmus.pilot.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, PreparedResource

if TYPE_CHECKING:
    from isthmus.pilot.resources import Snapshot


def rds_names(listener: listener_pb2.Listener) -> list[str]:
    names = []
    chains = [*listener.filter_chains]
    if listener.HasField("default_filter_chain"):
        chains.append(listener.default_filter_chain)
    for chain in chains:
        for f in chain.filters:
            if f.typed_config.Is(hcm.HttpConnectionManager.DESCRIPTOR):
                manager = hcm.HttpConnectionManager()
                f.typed_config.Unpack(manager)
                if manager.HasField("rds"):
                    names.append(manager.rds.route_config_name)
    return names


def listener_rds_names(res: PreparedResource) -> frozenset[str]:
    """Route config names a packed listener refers to."""
    listener = listener_pb2.Listener()
    res.any.Unpack(listener)
    return frozenset(rds_names(listener))


def _unpacked_clusters(clusters: Mapping[str, PreparedResource]) -> list[cluster_pb2.Cluster]:
    out = []
    for res in clusters.values():
        cluster = cluster_pb2.Cluster()
        res.any.Unpack(cluster)
        out.append(cluster)
    return out


def dangling_references(
    snapshot: Snapshot,
    rds_by_listener: Mapping[str, Iterable[str]] | None = None,
    eds_clusters: Iterable[str] | None = None,
) -> list[str]:
    """Every route config a listener names exists; every EDS cluster has an assignment.

    The generator passes the names it already knows for each shared view, so the hot path
    unpacks nothing; without them they are read from the resources themselves.
    """
    if rds_by_listener is None:
        rds_by_listener = {
            name: listener_rds_names(res) for name, res in snapshot.of_type(LISTENER).items()
        }
    if eds_clusters is None:
        eds_clusters = eds_cluster_names(_unpacked_clusters(snapshot.of_type(CLUSTER)))
    errors = []
    routes = snapshot.of_type(ROUTE)
    for listener in sorted(rds_by_listener):
        for rds in sorted(rds_by_listener[listener]):
            if rds not in routes:
                errors.append(f"listener {listener} uses route config {rds!r}, which is missing")
    assignments = snapshot.of_type(ENDPOINT)
    for name in eds_clusters:
        if name not in assignments:
            errors.append(f"EDS cluster {name} has no ClusterLoadAssignment")
    return errors
