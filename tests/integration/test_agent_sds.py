"""The agent's certificates, end to end: a real CA over Istio's certificate API, the agent's
certificate manager and SDS server, and a real Envoy terminating mutual TLS with them.

The CA here is `isthmus.ca` behind IstioCertificateService on a unix socket, checking pod
tokens as isthmusd does. Envoy listens on loopback with Istio's SDS secret configs (the ones
pilot generates) and requires client certificates; the test's client holds one from the
same CA. Rotation is sped up by the renewal policy, not by faking time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import ssl
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from isthmus.agent import _log
from isthmus.agent.bootstrap import sds_cluster
from isthmus.agent.certificate_manager import STATUS_FILE_NAME, CertificateManager, RenewalPolicy
from isthmus.agent.certificates import (
    CaClient,
    KeyType,
    WorkloadCertificate,
    certificate_request,
    new_private_key,
)
from isthmus.agent.envoy_process import Backoff
from isthmus.agent.sds import ROOT_SECRET, WORKLOAD_SECRET, SdsServer
from isthmus.ca import (
    CertificateAuthority,
    CsrRejected,
    PodBinding,
    TokenIssuer,
    TokenRejected,
    spiffe_id,
)
from isthmus.certificate_service import (
    AUTHORIZATION,
    BEARER,
    METHOD,
    SERVICE,
    IstioCertificateRequest,
    IstioCertificateResponse,
)
from isthmus.pilot.security.tls import sds_secret
from isthmus.testing.envoy import EnvoyProcess
from isthmus.testing.ports import LOOPBACK, free_port
from isthmus.testing.protojson import message_to_dict

pytestmark = pytest.mark.envoy

TRUST_DOMAIN = "cluster.local"
POD = PodBinding(namespace="default", pod="web-1", service_account="web", uid="uid-1")
IDENTITY = f"spiffe://{TRUST_DOMAIN}/ns/default/sa/web"
CLIENT_IDENTITY = f"spiffe://{TRUST_DOMAIN}/ns/default/sa/client"
WAIT_S = 30.0
_HCM = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_DOWNSTREAM_TLS = (
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
)


class CaService:
    """IstioCertificateService as isthmusd serves it: a pod token, then the real CA."""

    def __init__(self, authority: CertificateAuthority, tokens: TokenIssuer, path: Path) -> None:
        self.authority = authority
        self.tokens = tokens
        self.path = path
        self.requests = 0
        self._server: grpc.aio.Server | None = None

    async def start(self) -> CaService:
        handler = grpc.unary_unary_rpc_method_handler(
            self._create_certificate,
            request_deserializer=IstioCertificateRequest.FromString,
            response_serializer=IstioCertificateResponse.SerializeToString,
        )
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {METHOD: handler}),)
        )
        server.add_insecure_port(f"unix:{self.path}")
        await server.start()
        self._server = server
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
        self.path.unlink(missing_ok=True)

    async def _create_certificate(self, request: Any, context: Any) -> Any:
        self.requests += 1
        authorization = dict(context.invocation_metadata()).get(AUTHORIZATION, "")
        if not authorization.startswith(BEARER):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no bearer token")
        try:
            pod = self.tokens.verify(authorization[len(BEARER) :])
        except TokenRejected as error:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"token rejected: {error}")
        identity = spiffe_id(self.authority.trust_domain, pod.namespace, pod.service_account)
        try:
            chain = self.authority.sign_workload(
                request.csr, identity, timedelta(seconds=request.validity_duration)
            )
        except CsrRejected as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        return IstioCertificateResponse(cert_chain=chain)


class Events(logging.Handler):
    """The agent's log events, as `agent event key=value` lines."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def named(self, event: str) -> list[str]:
        return [line for line in self.lines if line.split()[1:2] == [event]]


@pytest.fixture
def events() -> Iterator[Events]:
    handler = Events()
    level = _log.logger.level
    _log.logger.addHandler(handler)
    _log.logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        _log.logger.removeHandler(handler)
        _log.logger.setLevel(level)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths must fit in 107 bytes; pytest's tmp_path may not.
    with tempfile.TemporaryDirectory(prefix="isds-") as directory:
        yield Path(directory)


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path_factory.mktemp("ca") / "root", TRUST_DOMAIN)


@pytest.fixture(scope="module")
def tokens() -> TokenIssuer:
    return TokenIssuer(os.urandom(32))


@pytest.fixture
async def ca(
    authority: CertificateAuthority, tokens: TokenIssuer, short_dir: Path
) -> AsyncIterator[CaService]:
    server = await CaService(authority, tokens, short_dir / "ca.sock").start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def token_file(tokens: TokenIssuer, short_dir: Path) -> Path:
    path = short_dir / "token"
    path.write_text(tokens.issue(POD))
    return path


@pytest.fixture
async def sds(short_dir: Path) -> AsyncIterator[SdsServer]:
    server = SdsServer(short_dir / "sds.sock", None)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


ManagerFactory = Callable[..., Awaitable[CertificateManager]]


@pytest.fixture
async def managers(sds: SdsServer) -> AsyncIterator[ManagerFactory]:
    started: list[tuple[CertificateManager, CaClient]] = []

    async def start(
        ca_socket: Path,
        token_file: Path,
        policy: RenewalPolicy | None = None,
        key_type: KeyType = "ECDSA",
    ) -> CertificateManager:
        client = CaClient(str(ca_socket), token_file)
        manager = CertificateManager(
            client,
            IDENTITY,
            sds.publish,
            ttl=timedelta(minutes=1),
            key_type=key_type,
            status_path=token_file.parent / STATUS_FILE_NAME,
            policy=policy,
            backoff=lambda: Backoff(0.05, 0.2),
        )
        started.append((manager, client))
        await manager.start()
        return manager

    try:
        yield start
    finally:
        for manager, client in started:
            await manager.stop()
            await client.close()


def mtls_bootstrap(sds_socket: Path, port: int) -> dict[str, Any]:
    """A listener terminating mutual TLS with pilot's SDS configs, answering 200 itself."""
    tls = {
        "@type": _DOWNSTREAM_TLS,
        "require_client_certificate": True,
        "common_tls_context": {
            "tls_certificate_sds_secret_configs": [message_to_dict(sds_secret(WORKLOAD_SECRET))],
            "validation_context_sds_secret_config": message_to_dict(sds_secret(ROOT_SECRET)),
        },
    }
    manager = {
        "@type": _HCM,
        "stat_prefix": "mtls",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {"prefix": "/"},
                            "direct_response": {"status": 200, "body": {"inline_string": "ok"}},
                        }
                    ],
                }
            ]
        },
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}],
    }
    listener = {
        "name": "mtls",
        "address": {"socket_address": {"address": LOOPBACK, "port_value": port}},
        "filter_chains": [
            {
                "transport_socket": {
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": tls,
                },
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager,
                    }
                ],
            }
        ],
    }
    return {
        # SDS over gRPC needs a node id and cluster.
        "node": {
            "id": f"sidecar~{LOOPBACK}~web-1.default~default.svc.cluster.local",
            "cluster": "web.default",
        },
        "static_resources": {"listeners": [listener], "clusters": [sds_cluster(str(sds_socket))]},
    }


def client_context(authority: CertificateAuthority, directory: Path) -> ssl.SSLContext:
    """A mesh client: its own certificate from the same CA, trusting the mesh root."""
    key = new_private_key("ECDSA")
    chain = authority.sign_workload(
        certificate_request(key, CLIENT_IDENTITY), CLIENT_IDENTITY, None
    )
    certificate = WorkloadCertificate.from_chain(key, CLIENT_IDENTITY, chain)
    cert_path, key_path = directory / "client.pem", directory / "client-key.pem"
    cert_path.write_bytes(certificate.certificate_chain)
    key_path.write_bytes(certificate.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # mesh peers are named by URI SANs, not host names
    context.load_verify_locations(cadata=authority.root_pem)
    context.load_cert_chain(cert_path, key_path)
    return context


class Connection:
    """One TLS connection to Envoy, kept open across requests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        self.peer = x509.load_der_x509_certificate(der)

    @classmethod
    async def open(cls, port: int, context: ssl.SSLContext) -> Connection:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(LOOPBACK, port, ssl=context), WAIT_S
        )
        return cls(reader, writer)

    @property
    def peer_uris(self) -> list[str]:
        san = self.peer.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return list(san.get_values_for_type(x509.UniformResourceIdentifier))

    @property
    def peer_key(self) -> bytes:
        return self.peer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    async def get(self) -> tuple[int, bytes]:
        """GET / on this connection; status and body."""
        self.writer.write(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
        await self.writer.drain()
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), WAIT_S)
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if line)
        length = int({k.lower(): v for k, v in headers.items()}["content-length"])
        body = await asyncio.wait_for(self.reader.readexactly(length), WAIT_S)
        return int(lines[0].split()[1]), body

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await self.writer.wait_closed()


async def answer_without_certificate(port: int, context: ssl.SSLContext) -> bytes | None:
    """What Envoy answers a request over TLS without a client certificate (None: nothing)."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(LOOPBACK, port, ssl=context), WAIT_S
        )
    except (ssl.SSLError, ConnectionError):
        return None
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S) or None
    except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.wait_closed()


async def eventually_connect(port: int, context: ssl.SSLContext) -> Connection:
    """The first handshake that succeeds: Envoy's listener warms until SDS answers."""
    last: BaseException | None = None
    async with asyncio.timeout(WAIT_S):
        while True:
            try:
                connection = await Connection.open(port, context)
                status, _ = await connection.get()
                if status == 200:
                    return connection
                await connection.close()
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as error:
                last = error
            await asyncio.sleep(0.1)
    raise AssertionError(f"no TLS connection: {last!r}")


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT_S):
            while not predicate():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_envoy_serves_the_agents_certificate_and_rotation_keeps_connections(
    ca: CaService,
    sds: SdsServer,
    managers: ManagerFactory,
    token_file: Path,
    authority: CertificateAuthority,
    short_dir: Path,
    tmp_path: Path,
) -> None:
    # A 1m certificate renewed after ~1.8 s instead of 30 s; Istio's default RSA keys.
    manager = await managers(ca.path, token_file, RenewalPolicy(grace_ratio=0.97), "RSA")
    await asyncio.wait_for(manager.wait_issued(), WAIT_S)
    port = free_port()
    context = client_context(authority, short_dir)
    with EnvoyProcess(mtls_bootstrap(sds.socket_path, port), tmp_path / "envoy") as envoy:
        before = await eventually_connect(port, context)
        assert before.peer_uris == [IDENTITY]
        assert (
            before.peer.issuer
            == x509.load_pem_x509_certificate(authority.root_pem.encode()).subject
        )
        served = before.peer.serial_number
        # Mutual TLS: a client without a mesh certificate is turned away.
        anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        anonymous.check_hostname = False
        anonymous.load_verify_locations(cadata=authority.root_pem)
        assert await answer_without_certificate(port, anonymous) is None

        # A renewal arrives; a new handshake sees it (a new certificate and a new key).
        after: Connection | None = None

        async def new_handshake_sees_a_new_certificate() -> bool:
            nonlocal after
            connection = await Connection.open(port, context)
            if connection.peer.serial_number != served:
                after = connection
                return True
            await connection.close()
            return False

        async with asyncio.timeout(WAIT_S):
            while not await new_handshake_sees_a_new_certificate():
                await asyncio.sleep(0.1)
        assert after is not None
        assert after.peer_uris == [IDENTITY]
        assert after.peer_key != before.peer_key
        assert manager.issued >= 2
        assert await after.get() == (200, b"ok")

        # The connection opened before the rotation was not dropped.
        assert await before.get() == (200, b"ok")
        await before.close()
        await after.close()
        assert envoy.running
        assert envoy.stat("sds.default.update_success") >= 2


async def test_status_file_shows_the_certificate_but_never_the_key(
    ca: CaService, managers: ManagerFactory, token_file: Path
) -> None:
    manager = await managers(ca.path, token_file)
    certificate = await asyncio.wait_for(manager.wait_issued(), WAIT_S)
    path = token_file.parent / STATUS_FILE_NAME
    text = path.read_text()
    assert "PRIVATE" not in text
    assert "BEGIN" not in text
    status = json.loads(text)
    assert status["state"] == "issued"
    assert status["san"] == IDENTITY
    assert status["serial"] == certificate.serial_hex
    assert status["not_after"] == certificate.not_after.isoformat().replace("+00:00", "Z")
    assert manager.next_rotation is not None
    assert status["next_rotation"] == manager.next_rotation.isoformat().replace("+00:00", "Z")
    # Default policy: renewal half way through the minute the certificate has left, ±10%
    # (the milliseconds between signing and arrival aside).
    left_after_renewal = (certificate.not_after - manager.next_rotation).total_seconds()
    assert 60 * 0.5 * 0.9 - 1 < left_after_renewal < 60 * 0.5 * 1.1


async def test_a_refused_token_is_retried_and_logged_once_until_it_is_replaced(
    ca: CaService,
    managers: ManagerFactory,
    token_file: Path,
    tokens: TokenIssuer,
    events: Events,
) -> None:
    token_file.write_text(TokenIssuer(os.urandom(32)).issue(POD))
    manager = await managers(ca.path, token_file)
    await wait_until(lambda: ca.requests >= 4, "the manager to retry")
    assert manager.current is None
    (refusal,) = events.named("certificate_request_failed")
    assert "UNAUTHENTICATED" in refusal
    assert "token rejected" in refusal
    status = json.loads((token_file.parent / STATUS_FILE_NAME).read_text())
    assert status["state"] == "pending"
    assert "UNAUTHENTICATED" in status["last_error"]

    # The runtime replaces the token; the next attempt reads it and is signed.
    replacement = token_file.with_name("token.new")
    replacement.write_text(tokens.issue(POD))
    replacement.replace(token_file)
    certificate = await asyncio.wait_for(manager.wait_issued(), WAIT_S)
    assert certificate.identity == IDENTITY
    assert len(events.named("certificate_issued")) == 1


async def test_a_ca_that_comes_up_late_is_waited_for(
    authority: CertificateAuthority,
    tokens: TokenIssuer,
    managers: ManagerFactory,
    token_file: Path,
    short_dir: Path,
    events: Events,
) -> None:
    path = short_dir / "late-ca.sock"
    manager = await managers(path, token_file)
    await wait_until(lambda: manager.failures >= 3, "requests to the missing CA")
    (unavailable,) = events.named("certificate_request_failed")
    assert "UNAVAILABLE" in unavailable
    late = await CaService(authority, tokens, path).start()
    try:
        certificate = await asyncio.wait_for(manager.wait_issued(), WAIT_S)
    finally:
        await late.stop()
    assert certificate.identity == IDENTITY


async def test_the_agent_process_runs_sds_with_a_token_file(
    ca: CaService, token_file: Path, short_dir: Path
) -> None:
    """The wiring of `python -m isthmus.agent --token-file`: SDS before Envoy, torn down after."""
    workdir = short_dir / "pod"
    command = [
        *(sys.executable, "-m", "isthmus.agent"),
        *("--pod", POD.pod, "--namespace", POD.namespace, "--ip", LOOPBACK),
        *("--service-account", POD.service_account, "--workdir", str(workdir)),
        *("--xds-socket", str(short_dir / "no-control-plane.sock")),
        *("--token-file", str(token_file), "--ca-socket", str(ca.path), "--key-type", "ECDSA"),
        *("--admin-port", str(free_port()), "--readiness-port", str(free_port())),
        *("--stats-port", str(free_port()), "--listen-address", LOOPBACK),
        *("--metrics-port", str(free_port())),
        *("--no-proxy-user", "--drain-duration", "0s", "--cert-ttl", "1h"),
    ]
    log_path = short_dir / "agent.log"
    with log_path.open("wb") as log:
        agent = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stderr=log, start_new_session=True
        )
    status_path = workdir / STATUS_FILE_NAME
    try:

        def issued() -> bool:
            return status_path.exists() and json.loads(status_path.read_text())["state"] == "issued"

        await wait_until(issued, f"a certificate; agent log:\n{log_path.read_text()}")
        status = json.loads(status_path.read_text())
        assert status["san"] == IDENTITY
        assert status["key_type"] == "ECDSA"
        assert (workdir / "sds.sock").exists()
        bootstrap = json.loads((workdir / "envoy-bootstrap.json").read_text())
        assert bootstrap["node"]["metadata"]["SDS"] == "true"
        assert "sds-grpc" in [c["name"] for c in bootstrap["static_resources"]["clusters"]]

        agent.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(agent.wait(), WAIT_S) == 0, log_path.read_text()
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
    log_text = log_path.read_text()
    assert log_text.index("sds_listening") < log_text.index("envoy_started")
    assert "certificate_issued" in log_text
    assert not (workdir / "sds.sock").exists()
