"""State-of-the-World ADS: every response carries the complete set for its type.

Wildcard types (CDS, LDS) always carry everything; named types (EDS, RDS, SDS) carry
exactly the names of the latest request. A response is owed when what the proxy would
get differs from what it was last sent. Content that was NACKed is therefore not sent
again: the proxy stays on its last accepted config until the content changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.service.discovery.v3 import discovery_pb2

from isthmus.xds.connection import Connection, TypeState, ordered_types, selected, version_of

# What a response was computed from: the version and, for named types, the names.
_Key = tuple[str, frozenset[str] | None]


@dataclass
class SotwTypeState(TypeState):
    sent_key: _Key | None = None


class SotwConnection(
    Connection[discovery_pb2.DiscoveryRequest, discovery_pb2.DiscoveryResponse, SotwTypeState]
):
    """An ADS stream speaking StreamAggregatedResources."""

    kind = "sotw"

    def new_state(self, type_url: str, subscribed: set[str] | None) -> SotwTypeState:
        return SotwTypeState(type_url=type_url, subscribed=subscribed)

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
            state.subscribed = set(request.resource_names)

    def responses(self) -> list[discovery_pb2.DiscoveryResponse]:
        out = []
        for type_url in ordered_types(self.types):
            state = self.types[type_url]
            if not state.requested or (state.subscribed is not None and not state.subscribed):
                continue
            chosen = selected(self.snapshot, state)
            version = version_of(self.snapshot, state, chosen)
            names = None if state.subscribed is None else frozenset(state.subscribed)
            key = (version, names)
            # The last response (pending, ACKed or NACKed) already had this content.
            if not state.must_respond and key == state.sent_key:
                continue
            nonce = self.new_nonce()
            out.append(
                discovery_pb2.DiscoveryResponse(
                    version_info=version,
                    type_url=type_url,
                    nonce=nonce,
                    resources=[chosen[name].any for name in sorted(chosen)],
                )
            )
            state.sent_key = key
            self.record_sent(state, version, nonce, len(chosen))
        return out
