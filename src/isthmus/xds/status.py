"""What the ADS server knows about each connected proxy, as plain JSON-able values.

This is the answer to "did my change reach the proxy, and did Envoy accept it?":
per type, what was sent, what was ACKed, whether a push is in flight and Envoy's own
text for the last rejection. Times are Unix epoch seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

StreamKind = Literal["sotw", "delta"]


@dataclass(frozen=True)
class NackRecord:
    """One rejected response: the version and nonce Envoy refused and why."""

    version: str
    nonce: str
    message: str
    time: float


@dataclass(frozen=True)
class TypeStatus:
    """Per-type progress of one stream."""

    type_url: str
    sent_version: str | None = None
    sent_nonce: str | None = None
    acked_version: str | None = None
    acked_nonce: str | None = None
    last_nack: NackRecord | None = None
    # How many names the proxy asked for; None when the type is wildcard (it gets all).
    subscribed: int | None = None
    # The names themselves, only when asked for (thousands per proxy in a large mesh).
    subscribed_names: tuple[str, ...] | None = None
    # What the proxy holds of the type: resources and their encoded bytes.
    resources: int = 0
    bytes: int = 0
    # Since the stream opened: resources sent in responses and the responses' bytes.
    resources_sent: int = 0
    bytes_sent: int = 0

    @property
    def pending(self) -> bool:
        """A response is in flight: sent and neither ACKed nor NACKed yet."""
        if self.sent_nonce is None:
            return False
        answered = {self.acked_nonce, self.last_nack.nonce if self.last_nack else None}
        return self.sent_nonce not in answered


@dataclass(frozen=True)
class ProxyStatus:
    """One connected proxy (one ADS stream)."""

    node_id: str
    cluster: str
    connected_since: float
    stream: StreamKind
    types: dict[str, TypeStatus] = field(default_factory=dict)

    @property
    def synced(self) -> bool:
        """Every type's latest response was ACKed (Istio's SYNCED)."""
        return all(t.sent_nonce == t.acked_nonce for t in self.types.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict, including the derived ``pending`` and ``synced`` flags."""
        data = asdict(self)
        data["synced"] = self.synced
        for type_url, type_status in self.types.items():
            entry = data["types"][type_url]
            entry["pending"] = type_status.pending
            if entry["subscribed_names"] is None:
                del entry["subscribed_names"]
            else:
                entry["subscribed_names"] = list(entry["subscribed_names"])
        return data
