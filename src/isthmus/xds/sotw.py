"""State-of-the-World ADS: a response carries the complete set for wildcard types.

Wildcard types (CDS, LDS) always carry everything; named types (EDS, RDS, SDS) carry the
names of the latest request: all of them in the first response and after cluster warming
or a rejection, then only those that changed (Envoy leaves the others as they are). A
response is owed when what the proxy would get differs from what it was last sent. Content
that was NACKed is therefore not sent again: the proxy stays on its last accepted config
until the content changes. One exception: after a CDS response that adds or changes EDS
clusters, the EDS response is sent even if unchanged, because Envoy keeps those clusters
warming until it arrives.

Responses are written as encoded bytes: the per-proxy fields around the resources'
entries, which shared layers encode once for every proxy (`encode_response`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from envoy.service.discovery.v3 import discovery_pb2

from isthmus.pilot import wire
from isthmus.pilot.resources import (
    CLUSTER,
    ENDPOINT,
    Layers,
    PreparedResource,
    changed_resources,
)
from isthmus.xds.connection import (
    Connection,
    TypeState,
    ordered_types,
    selected,
    short_type,
    version_of,
)
from isthmus.xds.warming import eds_names

# What a response was computed from: the version and, for named types, which
# subscription (a generation number that changes whenever the requested names do).
_Key = tuple[str, int | None]


@dataclass
class SotwTypeState(TypeState):
    sent_key: _Key | None = None
    # What was last sent, by reference: shared immutable mappings cost nothing per proxy.
    sent_resources: Mapping[str, PreparedResource] = field(default_factory=dict)
    names_digest: bytes = b""  # of the last request's resource_names (see handle_request)


class SotwConnection(Connection[discovery_pb2.DiscoveryRequest, SotwTypeState]):
    """An ADS stream speaking StreamAggregatedResources."""

    kind = "sotw"

    def new_state(self, type_url: str, subscribed: set[str] | None) -> SotwTypeState:
        return SotwTypeState(type_url=type_url, subscribed=subscribed)

    def describe(self, request: discovery_pb2.DiscoveryRequest) -> dict[str, object]:
        return {
            "type": short_type(request.type_url),
            "version": request.version_info,
            "nonce": request.response_nonce,
            "names": ",".join(request.resource_names),
            "error": request.error_detail.message,
        }

    def handle_request(self, request: discovery_pb2.DiscoveryRequest) -> None:
        state = self.type_state(request.type_url)
        nonce = request.response_nonce
        if nonce:
            if nonce != state.sent_nonce:
                return  # stale: answers a response that was since superseded
            if request.HasField("error_detail"):
                self.record_nack(state, request.error_detail.message)
            elif state.last_nack is None or state.last_nack.nonce != nonce:
                self.record_ack(state)
            # else: a subscription change after a NACK, which is no ACK of the rejected one
        else:
            state.must_respond = True  # an initial request always gets an answer
        state.requested = True
        if state.subscribed is not None:
            names = request.resource_names
            # Envoy repeats its names on every ACK: keep the set (and its generation)
            # unless they really changed, so thousands of proxies allocate nothing. The
            # names' bytes are hashed in C first: turning 6000 names into Python strings
            # on every ACK was the largest cost of an endpoint change at 2000 proxies.
            digest = _names_digest(request)
            if digest == state.names_digest:
                return
            state.names_digest = digest
            if len(names) != len(state.subscribed) or not state.subscribed.issuperset(names):
                state.subscribed = set(names)
                state.subscription += 1

    def responses(self, type_urls: Iterable[str]) -> list[bytes]:
        out = []
        for type_url in ordered_types(t for t in type_urls if t in self.types):
            state = self.types[type_url]
            if not state.requested or (state.subscribed is not None and not state.subscribed):
                continue
            chosen = selected(self.snapshot, state)
            version = version_of(self.snapshot, state, chosen)
            key = (version, None if state.subscribed is None else state.subscription)
            # The last response (pending, ACKed or NACKed) already had this content.
            if not state.must_respond and key == state.sent_key:
                continue
            nonce = self.new_nonce()
            body = chosen
            if _may_send_changes_only(state):
                changed = changed_resources(chosen, state.sent_resources)
                body = {r.name: r for r in changed}
            data = encode_response(version, type_url, nonce, body)
            out.append(data)
            state.sent_key = key
            self.record_sent(state, version, nonce, len(body), len(data))
            previous, state.sent_resources = state.sent_resources, chosen
            if type_url == CLUSTER and chosen is not previous:
                changed = changed_resources(chosen, previous)
                if changed:
                    self._warm(changed)
        return out

    def held(self, state: SotwTypeState) -> Mapping[str, PreparedResource]:
        return state.sent_resources

    def _warm(self, clusters: list[PreparedResource]) -> None:
        """Owe an EDS response for subscribed assignments of added or changed clusters."""
        endpoints = self.types.get(ENDPOINT)
        if endpoints is None or not endpoints.subscribed:
            return
        if eds_names(clusters) & endpoints.subscribed:
            endpoints.must_respond = True


def _names_digest(request: discovery_pb2.DiscoveryRequest) -> bytes:
    """A hash of the request's resource names, computed without a Python string per name:
    the request is the last thing a stream reads from it, so everything else is cleared
    and the rest serialized (type_url stays; it is the same within a type's state)."""
    for name in ("version_info", "node", "response_nonce", "error_detail"):
        request.ClearField(name)
    return hashlib.blake2b(request.SerializeToString(), digest_size=16).digest()


def _may_send_changes_only(state: SotwTypeState) -> bool:
    """Named types (EDS, RDS) are not state of the world in SotW: a resource missing from
    a response is left as it is, not removed. So once the proxy ACKed the last response,
    it holds what it was sent, and a push carries only what changed since (Istio's
    incremental EDS). An initial request and cluster warming get everything."""
    return (
        state.subscribed is not None
        and not state.must_respond
        and state.sent_nonce is not None
        and state.acked_nonce == state.sent_nonce
    )


def encode_response(
    version: str, type_url: str, nonce: str, chosen: Mapping[str, PreparedResource]
) -> bytes:
    """A serialized DiscoveryResponse, assembled from the resources' cached entries."""
    return b"".join(
        (
            wire.string_field(wire.SOTW_VERSION_INFO, version),
            *_entries(chosen),
            wire.string_field(wire.SOTW_TYPE_URL, type_url),
            wire.string_field(wire.SOTW_NONCE, nonce),
        )
    )


def _entries(chosen: Mapping[str, PreparedResource]) -> Sequence[bytes]:
    """Shared layers keep their (sorted) build order and their cached bytes; ad-hoc
    selections are sorted and encoded now."""
    if isinstance(chosen, Layers):
        return chosen.sotw_chunks
    return [chosen[name].sotw_entry for name in sorted(chosen)]
