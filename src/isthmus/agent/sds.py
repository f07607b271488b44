"""The agent's SDS server: hands the workload certificate to its own Envoy.

As Istio's agent (`etc/istio/proxy/SDS`), it listens on a unix socket in the work
directory, open to the proxy's group only, and serves Istio's two secrets: `default`
(certificate chain and key) and `ROOTCA` (the trust bundle). Envoy opens one
state-of-the-world stream per secret; a stream whose secret does not exist yet gets no
answer until it does, exactly as Envoy waits with no fetch timeout. Every publication
that changes a secret is pushed to each stream that asked for it; Envoy applies it to
new handshakes and keeps its open connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc
from google.protobuf import any_pb2

from isthmus.agent import _log
from isthmus.agent.certificates import WorkloadCertificate
from isthmus.agent.proxy_user import ProxyUser, share_file

SDS_SOCKET_NAME = "sds.sock"
WORKLOAD_SECRET = "default"
ROOT_SECRET = "ROOTCA"
SECRET_NAMES = frozenset({WORKLOAD_SECRET, ROOT_SECRET})
SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def workload_secrets(certificate: WorkloadCertificate) -> dict[str, secret_pb2.Secret]:
    """Istio's `default` and `ROOTCA` secrets for one certificate."""
    workload = secret_pb2.Secret(
        name=WORKLOAD_SECRET,
        tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=base_pb2.DataSource(inline_bytes=certificate.certificate_chain),
            private_key=base_pb2.DataSource(inline_bytes=certificate.key_pem),
        ),
    )
    roots = secret_pb2.Secret(
        name=ROOT_SECRET,
        validation_context=common_pb2.CertificateValidationContext(
            trusted_ca=base_pb2.DataSource(inline_bytes=certificate.trust_bundle)
        ),
    )
    return {WORKLOAD_SECRET: workload, ROOT_SECRET: roots}


class _Prepared:
    """A secret packed once, with a version derived from its content."""

    def __init__(self, secret: secret_pb2.Secret) -> None:
        self.any = any_pb2.Any()
        self.any.Pack(secret)
        self.version = hashlib.sha256(secret.SerializeToString(deterministic=True)).hexdigest()[:16]


def _response(chosen: Mapping[str, _Prepared], nonce: str = "") -> discovery_pb2.DiscoveryResponse:
    """The secrets in `chosen`, versioned by their contents."""
    key = _key(chosen)
    return discovery_pb2.DiscoveryResponse(
        version_info=hashlib.sha256(repr(key).encode()).hexdigest()[:16],
        type_url=SECRET_TYPE,
        nonce=nonce,
        resources=[chosen[name].any for name in sorted(chosen)],
    )


def _key(chosen: Mapping[str, _Prepared]) -> tuple[tuple[str, str], ...]:
    return tuple((name, chosen[name].version) for name in sorted(chosen))


class _Changed:
    """Queued to a stream when a publication changed some secret."""


_CHANGED = _Changed()
_Inbox = asyncio.Queue[discovery_pb2.DiscoveryRequest | _Changed | None]


class _SecretStream:
    """One StreamSecrets call: the names Envoy asked for and what it was last sent."""

    def __init__(self, server: SdsServer, context: Any) -> None:
        self._server = server
        self._context = context
        self.inbox: _Inbox = asyncio.Queue()
        self.node = ""
        self.names: tuple[str, ...] = ()
        self._sent_key: tuple[tuple[str, str], ...] | None = None
        self._sent_nonce: str | None = None

    async def serve(self) -> None:
        reader = asyncio.create_task(self._read())
        try:
            while (item := await self.inbox.get()) is not None:
                if isinstance(item, _Changed):
                    await self._respond()
                else:
                    await self._handle(item)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self) -> None:
        try:
            while (request := await self._context.read()) is not grpc.aio.EOF:
                self.inbox.put_nowait(request)
        except (grpc.RpcError, asyncio.InvalidStateError, ConnectionError):
            pass  # the peer went away; the stream ends below
        finally:
            self.inbox.put_nowait(None)

    async def _handle(self, request: discovery_pb2.DiscoveryRequest) -> None:
        if request.node.id:
            self.node = request.node.id
        if request.type_url and request.type_url != SECRET_TYPE:
            _log.log(logging.WARNING, "sds_wrong_type", node=self.node, type=request.type_url)
            return
        nonce = request.response_nonce
        if nonce and nonce != self._sent_nonce:
            return  # answers a response that a later one superseded
        if nonce and request.HasField("error_detail"):
            _log.log(
                logging.WARNING,
                "sds_nack",
                node=self.node,
                names=",".join(self.names),
                version=request.version_info,
                error=request.error_detail.message,
            )
        names = tuple(request.resource_names)
        if names != self.names:
            self.names = names
            unknown = sorted(set(names) - SECRET_NAMES)
            if unknown or not names:
                _log.log(
                    logging.WARNING,
                    "sds_unknown_secret",
                    node=self.node,
                    names=",".join(unknown) or "(none)",
                    known=",".join(sorted(SECRET_NAMES)),
                )
        await self._respond()

    async def _respond(self) -> None:
        """Send the requested secrets unless they are missing or were sent as they are."""
        chosen = self._server.prepared(self.names)
        if not chosen:
            return  # Envoy waits for the secret, and so do we
        key = _key(chosen)
        if key == self._sent_key:
            return  # ACKed, NACKed or pending: the same content is not sent twice
        response = _response(chosen, self._server.new_nonce())
        self._sent_key, self._sent_nonce = key, response.nonce
        await self._context.write(response)
        _log.log(
            logging.DEBUG,
            "sds_push",
            node=self.node,
            names=",".join(sorted(chosen)),
            version=response.version_info,
        )


class SdsServer:
    """SecretDiscoveryService on a unix socket; `publish` replaces the served secrets."""

    def __init__(self, socket_path: Path, user: ProxyUser | None) -> None:
        self.socket_path = socket_path
        self._user = user
        self._server: grpc.aio.Server | None = None
        self._secrets: dict[str, _Prepared] = {}
        self._streams: set[_SecretStream] = set()
        self._published = asyncio.Event()
        self._nonce_prefix = secrets.token_hex(4)
        self._nonces = itertools.count(1)

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    async def start(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        sds_pb2_grpc.add_SecretDiscoveryServiceServicer_to_server(_Servicer(self), server)
        server.add_insecure_port(f"unix:{self.socket_path}")
        await server.start()
        self._server = server
        share_file(self.socket_path, self._user, writable=True)
        _log.log(logging.INFO, "sds_listening", socket=self.socket_path)

    async def stop(self, grace: float = 0.5) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)
        self.socket_path.unlink(missing_ok=True)

    def publish(self, certificate: WorkloadCertificate) -> None:
        """Serve `certificate` from now on; push it to every stream whose secret changed."""
        changed = []
        for name, secret in workload_secrets(certificate).items():
            prepared = _Prepared(secret)
            current = self._secrets.get(name)
            if current is None or current.version != prepared.version:
                self._secrets[name] = prepared
                changed.append(name)
        self._published.set()
        _log.log(
            logging.INFO,
            "sds_published",
            serial=certificate.serial_hex,
            changed=",".join(changed) or "(none)",
            streams=len(self._streams),
        )
        for stream in self._streams:
            if set(changed) & set(stream.names):
                stream.inbox.put_nowait(_CHANGED)

    def prepared(self, names: tuple[str, ...]) -> Mapping[str, _Prepared]:
        return {name: self._secrets[name] for name in names if name in self._secrets}

    def new_nonce(self) -> str:
        return f"{self._nonce_prefix}-{next(self._nonces)}"

    async def stream(self, context: Any) -> None:
        stream = _SecretStream(self, context)
        self._streams.add(stream)
        try:
            await stream.serve()
        finally:
            self._streams.discard(stream)
            _log.log(
                logging.DEBUG, "sds_stream_closed", node=stream.node, names=",".join(stream.names)
            )

    async def fetch(
        self, request: discovery_pb2.DiscoveryRequest
    ) -> discovery_pb2.DiscoveryResponse:
        """FetchSecrets: waits for the first publication if a known secret is asked for."""
        names = tuple(request.resource_names)
        if SECRET_NAMES & set(names):
            await self._published.wait()
        return _response(self.prepared(names))


class _Servicer(sds_pb2_grpc.SecretDiscoveryServiceServicer):  # type: ignore[misc]
    """Binds the generated service to `SdsServer`."""

    def __init__(self, server: SdsServer) -> None:
        self._server = server

    async def StreamSecrets(
        self,
        request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        await self._server.stream(context)

    async def FetchSecrets(
        self,
        request: discovery_pb2.DiscoveryRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> discovery_pb2.DiscoveryResponse:
        return await self._server.fetch(request)

    async def DeltaSecrets(
        self,
        request_iterator: AsyncIterator[discovery_pb2.DeltaDiscoveryRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "delta SDS is not supported")
