"""One ADS stream: its proxy, its current snapshot and a merging event queue.

Everything that changes a stream's state (a request from the proxy, a new snapshot from
a push, a close) goes through one queue processed by one task, so protocol state needs
no locks. Snapshots merge in that queue: a proxy that is slow to read gets the newest
snapshot once, not every intermediate one, and never holds up other proxies.
The wire protocol (State-of-the-World or Delta) lives in subclasses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar, cast

import grpc
from envoy.config.core.v3 import base_pb2
from google.protobuf.message import Message

from isthmus.pilot.resources import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    PUSH_ORDER,
    Layer,
    Layers,
    PreparedResource,
    Snapshot,
    encoded_size,
)
from isthmus.xds import _log
from isthmus.xds.status import NackRecord, ProxyStatus, StreamKind, TypeStatus

# CDS and LDS are wildcard: a proxy always gets all of them. Other types are by name.
WILDCARD_TYPES = frozenset({CLUSTER, LISTENER})

RequestT = TypeVar("RequestT", bound=Message)
StateT = TypeVar("StateT", bound="TypeState")


@dataclass
class TypeState:
    """Per-type bookkeeping common to both protocols."""

    type_url: str
    subscribed: set[str] | None  # None: wildcard
    requested: bool = False  # the proxy asked for this type on this stream
    must_respond: bool = False  # an initial request is waiting for its first answer
    sent_version: str | None = None
    sent_nonce: str | None = None
    acked_version: str | None = None
    acked_nonce: str | None = None
    last_nack: NackRecord | None = None
    # Since the stream opened: resources put in responses and the responses' bytes.
    resources_sent: int = 0
    bytes_sent: int = 0
    subscription: int = 0  # bumped whenever the requested names change
    # The layers last found to hold exactly the subscribed names, with the subscription
    # they were checked for: the check is skipped while both are the same.
    whole_layers: tuple[int, tuple[Layer, ...]] | None = None

    def status(self, held: Mapping[str, PreparedResource], names: bool = False) -> TypeStatus:
        """This type's status; `held` is what the proxy holds of it (see `Connection.held`),
        `names` adds the subscribed names (sorting thousands of them costs)."""
        return TypeStatus(
            type_url=self.type_url,
            sent_version=self.sent_version,
            sent_nonce=self.sent_nonce,
            acked_version=self.acked_version,
            acked_nonce=self.acked_nonce,
            last_nack=self.last_nack,
            subscribed=None if self.subscribed is None else len(self.subscribed),
            subscribed_names=(
                tuple(sorted(self.subscribed)) if names and self.subscribed is not None else None
            ),
            resources=len(held),
            bytes=encoded_size(held),
            resources_sent=self.resources_sent,
            bytes_sent=self.bytes_sent,
        )


def ordered_types(type_urls: Iterable[str]) -> list[str]:
    """PUSH_ORDER first (CDS, EDS, LDS, RDS, SDS), then any other type by name."""
    present = set(type_urls)
    head = [t for t in PUSH_ORDER if t in present]
    return head + sorted(present - set(head))


@dataclass(frozen=True)
class _Close:
    code: grpc.StatusCode
    message: str


class _SnapshotChanged:
    pass


class _EndOfStream:
    pass


_Event: TypeAlias = "Message | _Close | _SnapshotChanged | _EndOfStream"
_SNAPSHOT_CHANGED = _SnapshotChanged()
_END = _EndOfStream()


class Connection(ABC, Generic[RequestT, StateT]):
    """A connected proxy; subclasses implement one xDS protocol variant."""

    kind: StreamKind

    def __init__(self, node: base_pb2.Node, snapshot: Snapshot, nonce: Callable[[], str]) -> None:
        self.node = node
        self.snapshot = snapshot
        self.connected_since = time.time()
        self.types: dict[str, StateT] = {}
        self._nonce = nonce
        self._events: asyncio.Queue[_Event] = asyncio.Queue()
        self._next_snapshot: Snapshot | None = None
        self._idle = asyncio.Event()

    # -- called by the server -------------------------------------------------------

    def offer(self, snapshot: Snapshot) -> None:
        """Hand over the newest snapshot; merges with one not yet applied."""
        queued = self._next_snapshot is not None
        self._next_snapshot = snapshot
        if not queued:
            self._put(_SNAPSHOT_CHANGED)

    def close(self, code: grpc.StatusCode, message: str) -> None:
        """End the stream with a gRPC status (e.g. the node is no longer valid)."""
        self._put(_Close(code, message))

    async def wait_idle(self) -> None:
        """Return once every queued event was handled and its responses written."""
        await self._idle.wait()

    @property
    def idle(self) -> bool:
        return self._idle.is_set()

    def status(self, names: bool = False) -> ProxyStatus:
        return ProxyStatus(
            node_id=self.node.id,
            cluster=self.node.cluster,
            connected_since=self.connected_since,
            stream=self.kind,
            types={
                url: self.types[url].status(self.held(self.types[url]), names)
                for url in ordered_types(list(self.types))
            },
        )

    async def serve(
        self,
        first: RequestT,
        read: Callable[[], Awaitable[object]],
        write: Callable[[bytes], Awaitable[None]],
        abort: Callable[[grpc.StatusCode, str], Awaitable[None]],
    ) -> None:
        """Run the stream until the proxy goes away or the server closes it."""
        reader = asyncio.get_running_loop().create_task(self._read_all(read))
        self._put(first)
        try:
            while True:
                event = await self._events.get()
                if isinstance(event, _EndOfStream):
                    return
                if isinstance(event, _Close):
                    await abort(event.code, event.message)
                    return
                if isinstance(event, _SnapshotChanged):
                    assert self._next_snapshot is not None
                    self.snapshot, self._next_snapshot = self._next_snapshot, None
                    affected: Iterable[str] = self.types
                else:
                    request = cast(RequestT, event)
                    if _log.logger.isEnabledFor(logging.DEBUG):
                        _log.log(
                            logging.DEBUG, "request", node=self.node.id, **self.describe(request)
                        )
                    self.handle_request(request)
                    # A request only changes its own type (and CDS may owe EDS: warming).
                    affected = (
                        {request.type_url, ENDPOINT}
                        if request.type_url == CLUSTER
                        else {request.type_url}
                    )
                for response in self.responses(affected):
                    await write(response)
                if self._events.empty():
                    self._idle.set()
        finally:
            reader.cancel()
            self._idle.set()

    # -- protocol -----------------------------------------------------------------

    @abstractmethod
    def handle_request(self, request: RequestT) -> None:
        """Apply one request (subscription change, ACK or NACK) to the type state."""

    @abstractmethod
    def responses(self, type_urls: Iterable[str]) -> list[bytes]:
        """Responses owed now for these types, in push order and serialized (the server
        writes them as they are); marks them as sent."""

    @abstractmethod
    def held(self, state: StateT) -> Mapping[str, PreparedResource]:
        """What the proxy holds of the type: what it was last sent (and, once synced,
        ACKed), each resource as the current snapshot has it."""

    @abstractmethod
    def describe(self, request: RequestT) -> dict[str, object]:
        """Log fields for one request."""

    @abstractmethod
    def new_state(self, type_url: str, subscribed: set[str] | None) -> StateT:
        """Fresh per-type state for a type first requested on this stream."""

    # -- helpers for subclasses ------------------------------------------------------

    def type_state(self, type_url: str) -> StateT:
        state = self.types.get(type_url)
        if state is None:
            wildcard = type_url in WILDCARD_TYPES
            state = self.new_state(type_url, None if wildcard else set())
            self.types[type_url] = state
        return state

    def new_nonce(self) -> str:
        return self._nonce()

    def record_ack(self, state: TypeState) -> None:
        state.acked_version = state.sent_version
        state.acked_nonce = state.sent_nonce
        _log.log(
            logging.DEBUG,
            "ack",
            node=self.node.id,
            type=short_type(state.type_url),
            version=state.sent_version,
            nonce=state.sent_nonce,
        )

    def record_nack(self, state: TypeState, message: str) -> None:
        state.last_nack = NackRecord(
            version=state.sent_version or "",
            nonce=state.sent_nonce or "",
            message=message,
            time=time.time(),
        )
        _log.log(
            logging.WARNING,
            "nack",
            node=self.node.id,
            stream=self.kind,
            type=short_type(state.type_url),
            version=state.sent_version,
            nonce=state.sent_nonce,
            kept=state.acked_version,
            error=message,
        )

    def record_sent(
        self, state: TypeState, version: str, nonce: str, count: int, size: int
    ) -> None:
        state.sent_version = version
        state.sent_nonce = nonce
        state.must_respond = False
        state.resources_sent += count
        state.bytes_sent += size
        _log.log(
            logging.DEBUG,
            "push",
            node=self.node.id,
            type=short_type(state.type_url),
            version=version,
            nonce=nonce,
            resources=count,
        )

    def _put(self, event: _Event) -> None:
        self._idle.clear()
        self._events.put_nowait(event)

    async def _read_all(self, read: Callable[[], Awaitable[object]]) -> None:
        try:
            while True:
                request = await read()
                if not isinstance(request, Message):  # grpc.aio.EOF
                    break
                self._put(request)
        except (grpc.RpcError, asyncio.InvalidStateError, ConnectionError) as exc:
            _log.log(logging.DEBUG, "read_failed", node=self.node.id, error=repr(exc))
        finally:
            self._put(_END)


def short_type(type_url: str) -> str:
    """``...envoy.config.cluster.v3.Cluster`` -> ``Cluster`` for log lines."""
    return type_url.rsplit(".", 1)[-1]


def selected(snapshot: Snapshot, state: TypeState) -> Mapping[str, PreparedResource]:
    """The resources of ``state``'s type that the proxy asked for (all, if wildcard)."""
    available = snapshot.of_type(state.type_url)
    if state.subscribed is None:
        return available
    subscribed = state.subscribed
    if isinstance(available, Layers) and _holds_exactly(state, subscribed, available):
        return available  # the usual case for EDS: everything, shared and already hashed
    return {name: available[name] for name in subscribed if name in available}


def _same_names(old: Layer, new: Layer) -> bool:
    return new is old or new.has_names_of(old)


def _holds_exactly(state: TypeState, subscribed: set[str], available: Layers) -> bool:
    """Whether `available` has exactly the subscribed names; remembered per subscription
    and (shared) layers, since thousands of proxies ask again on every push."""
    seen = state.whole_layers
    layers = available.layers
    if (
        seen is not None
        and seen[0] == state.subscription
        and len(seen[1]) == len(layers)
        and all(_same_names(old, new) for old, new in zip(seen[1], layers, strict=True))
    ):
        # The same names as the layers last found whole (a new layer of the same names
        # is compared once for all proxies, not once per proxy).
        state.whole_layers = (state.subscription, layers)
        return True
    if subscribed == available.names:
        state.whole_layers = (state.subscription, layers)
        return True
    return False


def version_of(snapshot: Snapshot, state: TypeState, chosen: Mapping[str, PreparedResource]) -> str:
    """Content-hash version of what a proxy gets for a type.

    For wildcard types this is the snapshot's own version of the type; for named types it
    covers only the requested names, so a change to a resource the proxy did not ask for
    does not bump its version.
    """
    if state.subscribed is None or chosen is snapshot.of_type(state.type_url):
        return snapshot.version(state.type_url)
    return Snapshot({state.type_url: chosen}).version(state.type_url)
