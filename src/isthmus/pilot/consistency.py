"""Snapshot consistency, checked before a snapshot is published (as go-control-plane does):
every route config a listener names exists, every EDS cluster has an assignment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from isthmus.pilot.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE

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


def dangling_references(snapshot: Snapshot) -> list[str]:
    errors = []
    routes = snapshot.of_type(ROUTE)
    for name, res in snapshot.of_type(LISTENER).items():
        listener = listener_pb2.Listener()
        res.any.Unpack(listener)
        for rds in rds_names(listener):
            if rds not in routes:
                errors.append(f"listener {name} uses route config {rds!r}, which is missing")
    assignments = snapshot.of_type(ENDPOINT)
    for name, res in snapshot.of_type(CLUSTER).items():
        cluster = cluster_pb2.Cluster()
        res.any.Unpack(cluster)
        if cluster.type == cluster_pb2.Cluster.EDS and name not in assignments:
            errors.append(f"EDS cluster {name} has no ClusterLoadAssignment")
    return errors
