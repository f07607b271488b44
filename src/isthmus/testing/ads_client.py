"""A fake Envoy for tests and benchmarks: an ADS client speaking real gRPC.

It opens one StreamAggregatedResources (State-of-the-World) or DeltaAggregatedResources
stream, subscribes like Envoy does, records every response and ACKs or NACKs on command
(or automatically, for load tests). Its accepted state follows the protocol: a NACKed
response changes nothing, an ACKed one replaces (SotW wildcard types) or patches (Delta,
and SotW named types, whose responses may carry only what changed) what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.config.cluster.v3 import cluster_pb2  # noqa: F401 (registers the type)
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2  # noqa: F401
from envoy.config.listener.v3 import listener_pb2  # noqa: F401
from envoy.config.route.v3 import route_pb2  # noqa: F401
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2  # noqa: F401
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.rpc import status_pb2

_INVALID_ARGUMENT = 3  # google.rpc.Code, as Envoy reports a rejected config


@dataclass(frozen=True)
class Received:
    """One response from the server, the same shape for both protocols."""

    type_url: str
    nonce: str
    version: str  # version_info (SotW) or system_version_info (Delta)
    resources: dict[str, any_pb2.Any]
    resource_versions: dict[str, str] = field(default_factory=dict)  # Delta only
    removed: tuple[str, ...] = ()  # Delta only

    def names(self) -> list[str]:
        return sorted(self.resources)


class StreamClosed(Exception):
    """The server ended the stream; carries the gRPC status."""

    def __init__(self, code: grpc.StatusCode | None, details: str) -> None:
        super().__init__(f"ADS stream closed: {code} {details}")
        self.code = code
        self.details = details


def resource_name(resource: any_pb2.Any) -> str:
    """The name Envoy keys a resource by (``cluster_name`` for an assignment)."""
    full_name = resource.type_url.rsplit("/", 1)[-1]
    descriptor = descriptor_pool.Default().FindMessageTypeByName(full_name)
    message = message_factory.GetMessageClass(descriptor)()
    resource.Unpack(message)
    for field_name in ("name", "cluster_name"):
        if field_name in descriptor.fields_by_name:
            return str(getattr(message, field_name))
    raise ValueError(f"do not know how to name a {full_name}")


@dataclass
class _TypeState:
    names: set[str] | None = None  # None: wildcard
    accepted_version: str = ""
    last_nonce: str = ""
    accepted: dict[str, any_pb2.Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)


NackPolicy = Callable[[Received], "str | None"]


class AdsClient:
    """One fake proxy. Use ``async with AdsClient(...) as client:``."""

    def __init__(
        self,
        target: str,
        node_id: str,
        *,
        delta: bool = False,
        cluster: str = "",
        auto_ack: bool = False,
        nack_policy: NackPolicy | None = None,
    ) -> None:
        """``target`` is a gRPC address such as ``unix:/path/xds.sock``.

        With ``auto_ack`` every response is answered at once: NACKed with the message
        ``nack_policy`` returns, ACKed when it returns None (or there is no policy).
        """
        self.node = base_pb2.Node(id=node_id, cluster=cluster)
        self.delta = delta
        self.received: list[Received] = []
        self._target = target
        self._auto_ack = auto_ack
        self._nack_policy = nack_policy
        self._types: dict[str, _TypeState] = {}
        self._unread: list[Received] = []
        self._changed = asyncio.Condition()
        self._outgoing: asyncio.Queue[Any] = asyncio.Queue()
        self._node_sent = False
        self._channel: grpc.aio.Channel | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed: StreamClosed | None = None

    async def __aenter__(self) -> AdsClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        self._channel = grpc.aio.insecure_channel(self._target)
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self._channel)
        method = stub.DeltaAggregatedResources if self.delta else stub.StreamAggregatedResources
        call = method(self._requests())
        self._reader = asyncio.get_running_loop().create_task(self._read(call))

    async def close(self) -> None:
        """Half-close the stream, then drop the channel."""
        self._outgoing.put_nowait(None)
        if self._reader is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader), 1.0)
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._channel is not None:
            await self._channel.close()

    # -- subscribing ---------------------------------------------------------------------

    def subscribe(
        self,
        type_url: str,
        names: Iterable[str] | None = None,
        initial_versions: Mapping[str, str] | None = None,
    ) -> None:
        """Ask for a type: all of it (``names=None``) or exactly ``names``.

        Calling it again changes the subscription, as Envoy does when its clusters or
        listeners change. ``initial_versions`` (Delta) are what the proxy already holds.
        """
        state = self._types.get(type_url)
        first = state is None
        if state is None:
            state = self._types[type_url] = _TypeState()
        wanted = None if names is None else set(names)
        if self.delta:
            request = discovery_pb2.DeltaDiscoveryRequest(type_url=type_url)
            old = state.names or set()
            request.resource_names_subscribe.extend(sorted((wanted or set()) - old))
            request.resource_names_unsubscribe.extend(sorted(old - (wanted or set())))
            if first and initial_versions:
                request.initial_resource_versions.update(initial_versions)
                state.versions.update(initial_versions)
        else:
            request = discovery_pb2.DiscoveryRequest(
                type_url=type_url,
                version_info=state.accepted_version,
                response_nonce=state.last_nonce,
                resource_names=sorted(wanted or ()),
            )
        state.names = wanted
        self._send(request)

    # -- reading ---------------------------------------------------------------------------

    async def next(self, type_url: str | None = None, timeout: float = 5.0) -> Received:
        """The oldest response not yet returned (of ``type_url``, if given)."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                while True:
                    for i, response in enumerate(self._unread):
                        if type_url is None or response.type_url == type_url:
                            return self._unread.pop(i)
                    if self._closed is not None:
                        raise self._closed
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"no {type_url or 'xDS'} response within {timeout}s") from None

    async def expect_silence(self, type_url: str | None = None, within: float = 0.3) -> None:
        """Assert that no (further) response of ``type_url`` arrives within ``within`` s."""
        try:
            response = await self.next(type_url, timeout=within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected response {response.type_url} {response.version}")

    async def wait_closed(self, timeout: float = 5.0) -> StreamClosed:
        """Wait for the server to end the stream and return its status."""
        async with asyncio.timeout(timeout), self._changed:
            while self._closed is None:
                await self._changed.wait()
            return self._closed

    def resources(self, type_url: str) -> dict[str, any_pb2.Any]:
        """What this proxy holds of a type after its ACKs."""
        state = self._types.get(type_url)
        return dict(state.accepted) if state else {}

    def versions(self, type_url: str) -> dict[str, str]:
        """Delta: accepted resource versions, for ``initial_versions`` on reconnect."""
        state = self._types.get(type_url)
        return dict(state.versions) if state else {}

    # -- answering --------------------------------------------------------------------------

    def ack(self, response: Received) -> None:
        """Accept a response: apply it and tell the server."""
        state = self._types.setdefault(response.type_url, _TypeState())
        if self.delta:
            for name in response.removed:
                state.accepted.pop(name, None)
                state.versions.pop(name, None)
            state.accepted.update(response.resources)
            state.versions.update(response.resource_versions)
            self._send(
                discovery_pb2.DeltaDiscoveryRequest(
                    type_url=response.type_url, response_nonce=response.nonce
                )
            )
        elif state.names is None:  # wildcard (CDS, LDS): the response is the whole set
            state.accepted = dict(response.resources)
            state.accepted_version = response.version
            state.last_nonce = response.nonce
            self._send(self._sotw_answer(response, state))
        else:  # named (EDS, RDS): what the response lacks is kept, as Envoy does
            kept = {n: r for n, r in state.accepted.items() if n in state.names}
            state.accepted = {**kept, **response.resources}
            state.accepted_version = response.version
            state.last_nonce = response.nonce
            self._send(self._sotw_answer(response, state))

    def nack(self, response: Received, message: str) -> None:
        """Reject a response with Envoy-style error text; the accepted state is kept."""
        state = self._types.setdefault(response.type_url, _TypeState())
        error = status_pb2.Status(code=_INVALID_ARGUMENT, message=message)
        if self.delta:
            request: Any = discovery_pb2.DeltaDiscoveryRequest(
                type_url=response.type_url, response_nonce=response.nonce, error_detail=error
            )
        else:
            state.last_nonce = response.nonce
            request = self._sotw_answer(response, state)
            request.error_detail.CopyFrom(error)
        self._send(request)

    def _sotw_answer(self, response: Received, state: _TypeState) -> Any:
        return discovery_pb2.DiscoveryRequest(
            type_url=response.type_url,
            version_info=state.accepted_version,
            response_nonce=response.nonce,
            resource_names=sorted(state.names or ()),
        )

    # -- stream plumbing ---------------------------------------------------------------------

    def _send(self, request: Any) -> None:
        if not self._node_sent:
            request.node.CopyFrom(self.node)
            self._node_sent = True
        self._outgoing.put_nowait(request)

    async def _requests(self) -> AsyncIterator[Any]:
        while True:
            request = await self._outgoing.get()
            if request is None:
                return
            yield request

    async def _read(self, call: Any) -> None:
        closed = StreamClosed(grpc.StatusCode.OK, "")
        try:
            async for message in call:
                response = self._normalize(message)
                self.received.append(response)
                if self._auto_ack:
                    verdict = self._nack_policy(response) if self._nack_policy else None
                    if verdict is None:
                        self.ack(response)
                    else:
                        self.nack(response, verdict)
                async with self._changed:
                    self._unread.append(response)
                    self._changed.notify_all()
        except grpc.aio.AioRpcError as exc:
            closed = StreamClosed(exc.code(), exc.details() or "")
        except asyncio.CancelledError:
            closed = StreamClosed(grpc.StatusCode.CANCELLED, "client closed")
            raise
        finally:
            self._closed = closed
            with contextlib.suppress(RuntimeError):
                async with self._changed:
                    self._changed.notify_all()

    def _normalize(self, message: Any) -> Received:
        if self.delta:
            return Received(
                type_url=message.type_url,
                nonce=message.nonce,
                version=message.system_version_info,
                resources={r.name: r.resource for r in message.resources},
                resource_versions={r.name: r.version for r in message.resources},
                removed=tuple(message.removed_resources),
            )
        return Received(
            type_url=message.type_url,
            nonce=message.nonce,
            version=message.version_info,
            resources={resource_name(r): r for r in message.resources},
        )
