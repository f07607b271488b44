"""The one thing the ADS server asks of the rest of the control plane.

Like go-control-plane's cache interface, this keeps the gRPC streams (here) apart from
the translation that decides what each proxy should have (pilot, wired by the daemon).
"""

from __future__ import annotations

from typing import Protocol

from envoy.config.core.v3 import base_pb2

from isthmus.pilot.resources import Snapshot


class ProxyRejected(Exception):
    """The node is unknown or invalid; its stream is closed with INVALID_ARGUMENT."""


class SnapshotSource(Protocol):
    """Computes the full desired configuration for one proxy from its Node."""

    def snapshot_for(self, node: base_pb2.Node) -> Snapshot:
        """Everything ``node`` should have now; raises ProxyRejected for a bad node."""
        ...
