"""Incremental (Delta) ADS: send only resources that changed, and names that went away.

Per type we track which version of each resource the proxy holds (``known``; None means
the proxy was told the resource does not exist). It starts from the request's
``initial_resource_versions`` so a reconnecting proxy gets only what differs. One
response per type is in flight at a time: the next diff is computed only after the
ACK or NACK, so it is always relative to what the proxy really accepted. A NACKed diff
is not sent again unchanged. After a CDS response that adds or changes EDS clusters, their
subscribed assignments are sent again even if unchanged (cluster warming).

Responses are written as encoded bytes: the per-response fields around each resource's
cached entry (`encode_response`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from envoy.service.discovery.v3 import discovery_pb2

from isthmus.pilot import wire
from isthmus.pilot.resources import CLUSTER, ENDPOINT, Layers, PreparedResource
from isthmus.xds.connection import (
    Connection,
    TypeState,
    ordered_types,
    selected,
    short_type,
    version_of,
)
from isthmus.xds.warming import eds_names

# name -> version the proxy should move to; None removes the resource.
Diff = dict[str, str | None]


@dataclass
class DeltaTypeState(TypeState):
    known: dict[str, str | None] = field(default_factory=dict)
    in_flight: Diff | None = None
    rejected: Diff | None = None
    resend: set[str] = field(default_factory=set)  # sent again even if unchanged


class DeltaConnection(Connection[discovery_pb2.DeltaDiscoveryRequest, DeltaTypeState]):
    """An ADS stream speaking DeltaAggregatedResources."""

    kind = "delta"

    def new_state(self, type_url: str, subscribed: set[str] | None) -> DeltaTypeState:
        return DeltaTypeState(type_url=type_url, subscribed=subscribed)

    def describe(self, request: discovery_pb2.DeltaDiscoveryRequest) -> dict[str, object]:
        return {
            "type": short_type(request.type_url),
            "nonce": request.response_nonce,
            "subscribe": ",".join(request.resource_names_subscribe),
            "unsubscribe": ",".join(request.resource_names_unsubscribe),
            "initial": len(request.initial_resource_versions),
            "error": request.error_detail.message,
        }

    def handle_request(self, request: discovery_pb2.DeltaDiscoveryRequest) -> None:
        state = self.type_state(request.type_url)
        initial = not state.requested
        if initial:
            state.requested = True
            state.must_respond = True
            state.known = dict(request.initial_resource_versions)
        nonce = request.response_nonce
        if nonce and state.in_flight is not None and nonce == state.sent_nonce:
            if request.HasField("error_detail"):
                self.record_nack(state, request.error_detail.message)
                state.rejected = state.in_flight
            else:
                self.record_ack(state)
                for name, version in state.in_flight.items():
                    if version is None and state.subscribed is None:
                        state.known.pop(name, None)
                    else:
                        state.known[name] = version
                state.rejected = None
            state.in_flight = None
        # Other nonces are stale; subscription changes apply whatever the nonce.
        if state.subscribed is not None:
            if request.resource_names_unsubscribe or request.resource_names_subscribe:
                state.subscription += 1
            for name in request.resource_names_unsubscribe:
                state.subscribed.discard(name)
                state.known.pop(name, None)
            for name in request.resource_names_subscribe:
                state.subscribed.add(name)
                if not initial:
                    # An explicit (re-)subscribe asks for the current copy.
                    state.known.pop(name, None)

    def responses(self, type_urls: Iterable[str]) -> list[bytes]:
        out = []
        for type_url in ordered_types(t for t in type_urls if t in self.types):
            state = self.types[type_url]
            if not state.requested or state.in_flight is not None:
                continue
            chosen = selected(self.snapshot, state)
            diff = self._diff(state, chosen)
            if not state.must_respond and (not diff or diff == state.rejected):
                continue
            version = version_of(self.snapshot, state, chosen)
            nonce = self.new_nonce()
            added = sorted(name for name, v in diff.items() if v is not None)
            removed = sorted(name for name, v in diff.items() if v is None)
            data = encode_response(version, type_url, nonce, [chosen[n] for n in added], removed)
            out.append(data)
            state.in_flight = diff
            state.resend.clear()
            self.record_sent(state, version, nonce, len(added), len(data))
            if type_url == CLUSTER and added:
                self._warm([chosen[name] for name in added])
        return out

    def _warm(self, clusters: list[PreparedResource]) -> None:
        """Resend subscribed assignments of added or changed clusters (cluster warming)."""
        endpoints = self.types.get(ENDPOINT)
        if endpoints is not None and endpoints.subscribed:
            endpoints.resend |= eds_names(clusters) & endpoints.subscribed

    def held(self, state: DeltaTypeState) -> Mapping[str, PreparedResource]:
        chosen = selected(self.snapshot, state)
        if isinstance(chosen, Layers) and state.known == chosen.versions:
            return chosen
        return {n: chosen[n] for n, v in state.known.items() if v is not None and n in chosen}

    @staticmethod
    def _diff(state: DeltaTypeState, chosen: Mapping[str, PreparedResource]) -> Diff:
        """What the proxy must change to hold exactly ``chosen``."""
        if not state.resend and isinstance(chosen, Layers) and state.known == chosen.versions:
            return {}  # a proxy that resumes holding everything (one comparison, in C)
        diff: Diff = {
            name: res.version
            for name, res in chosen.items()
            if state.known.get(name) != res.version or name in state.resend
        }
        if state.subscribed is None:
            gone = [n for n, v in state.known.items() if v is not None and n not in chosen]
        else:
            # Named: also say "does not exist" once for names the proxy waits for.
            gone = [
                n
                for n in state.subscribed
                if n not in chosen and (n not in state.known or state.known[n] is not None)
            ]
        diff.update(dict.fromkeys(gone))
        return diff


def encode_response(
    version: str,
    type_url: str,
    nonce: str,
    added: Iterable[PreparedResource],
    removed: Iterable[str],
) -> bytes:
    """A serialized DeltaDiscoveryResponse, assembled from the resources' cached entries."""
    return b"".join(
        (
            wire.string_field(wire.DELTA_SYSTEM_VERSION_INFO, version),
            *(resource.delta_entry for resource in added),
            wire.string_field(wire.DELTA_TYPE_URL, type_url),
            wire.string_field(wire.DELTA_NONCE, nonce),
            *(wire.length_delimited(wire.DELTA_REMOVED_RESOURCES, n.encode()) for n in removed),
        )
    )
