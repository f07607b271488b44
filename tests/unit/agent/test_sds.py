"""The agent's SDS server, spoken to as Envoy does: one SotW stream per secret, over gRPC."""

from __future__ import annotations

import asyncio
import os
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from _agent_events import Events
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc
from google.rpc import status_pb2

from isthmus.agent.certificates import (
    WorkloadCertificate,
    certificate_request,
    new_private_key,
)
from isthmus.agent.proxy_user import ProxyUser
from isthmus.agent.sds import ROOT_SECRET, SECRET_TYPE, WORKLOAD_SECRET, SdsServer
from isthmus.ca import CertificateAuthority

IDENTITY = "spiffe://cluster.local/ns/shop/sa/web"
NODE = "sidecar~10.44.0.9~web-1.shop~shop.svc.cluster.local"
TIMEOUT_S = 10.0


def issue(authority: CertificateAuthority) -> WorkloadCertificate:
    key = new_private_key("ECDSA")
    chain = authority.sign_workload(certificate_request(key, IDENTITY), IDENTITY, None)
    return WorkloadCertificate.from_chain(key, IDENTITY, chain)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="isds-") as directory:
        yield Path(directory)


@pytest.fixture
async def server(short_dir: Path) -> AsyncIterator[SdsServer]:
    sds = SdsServer(short_dir / "sds.sock", None)
    await sds.start()
    try:
        yield sds
    finally:
        await sds.stop()


@pytest.fixture
async def stub(server: SdsServer) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(f"unix:{server.socket_path}") as channel:
        yield sds_pb2_grpc.SecretDiscoveryServiceStub(channel)


def request(
    *names: str, nonce: str = "", version: str = "", error: str | None = None, node: str = ""
) -> discovery_pb2.DiscoveryRequest:
    message = discovery_pb2.DiscoveryRequest(
        type_url=SECRET_TYPE,
        resource_names=list(names),
        response_nonce=nonce,
        version_info=version,
        node=base_pb2.Node(id=node),
    )
    if error is not None:
        message.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return message


async def read(call: Any) -> discovery_pb2.DiscoveryResponse:
    response = await asyncio.wait_for(call.read(), TIMEOUT_S)
    assert isinstance(response, discovery_pb2.DiscoveryResponse), response
    return response


def secrets(response: discovery_pb2.DiscoveryResponse) -> dict[str, secret_pb2.Secret]:
    assert response.type_url == SECRET_TYPE
    out = {}
    for packed in response.resources:
        secret = secret_pb2.Secret()
        assert packed.Unpack(secret)
        out[secret.name] = secret
    return out


async def open_stream(stub: Any, server: SdsServer, *names: str) -> Any:
    """A stream whose first request the server has taken in."""
    call = stub.StreamSecrets()
    await call.write(request(*names, node=NODE))
    async with asyncio.timeout(TIMEOUT_S):
        while not any(set(s.names) == set(names) for s in server._streams):
            await asyncio.sleep(0.01)
    return call


async def test_a_stream_waits_for_the_first_certificate(
    server: SdsServer, stub: Any, authority: CertificateAuthority
) -> None:
    workload = await open_stream(stub, server, WORKLOAD_SECRET)
    roots = await open_stream(stub, server, ROOT_SECRET)
    certificate = issue(authority)
    server.publish(certificate)

    (secret,) = secrets(await read(workload)).values()
    assert secret.name == WORKLOAD_SECRET
    assert secret.tls_certificate.certificate_chain.inline_bytes == certificate.certificate_chain
    assert secret.tls_certificate.private_key.inline_bytes == certificate.key_pem
    (root,) = secrets(await read(roots)).values()
    assert root.name == ROOT_SECRET
    assert root.validation_context.trusted_ca.inline_bytes == authority.root_pem.encode()


async def test_acks_are_quiet_and_a_new_certificate_is_pushed(
    server: SdsServer, stub: Any, authority: CertificateAuthority
) -> None:
    server.publish(issue(authority))
    call = stub.StreamSecrets()
    await call.write(request(WORKLOAD_SECRET, node=NODE))
    first = await read(call)
    await call.write(request(WORKLOAD_SECRET, nonce=first.nonce, version=first.version_info))
    await call.write(request(WORKLOAD_SECRET, nonce=first.nonce, version=first.version_info))
    renewed = issue(authority)
    server.publish(renewed)
    # The next response is the renewal: the ACKs before it were answered with nothing.
    second = await read(call)
    assert (second.nonce, second.version_info) != (first.nonce, first.version_info)
    chain = secrets(second)[WORKLOAD_SECRET].tls_certificate.certificate_chain.inline_bytes
    assert chain == renewed.certificate_chain


async def test_a_nack_is_logged_and_the_same_content_not_resent(
    server: SdsServer, stub: Any, authority: CertificateAuthority, events: Events
) -> None:
    server.publish(issue(authority))
    call = stub.StreamSecrets()
    await call.write(request(WORKLOAD_SECRET, node=NODE))
    first = await read(call)
    await call.write(request(WORKLOAD_SECRET, nonce=first.nonce, error="bad key"))
    async with asyncio.timeout(TIMEOUT_S):
        while not events.named("sds_nack"):
            await asyncio.sleep(0.01)
    (line,) = events.named("sds_nack")
    assert f"node={NODE}" in line
    assert 'error="bad key"' in line
    renewed = issue(authority)
    server.publish(renewed)
    # The next response carries the new certificate: the rejected one was not sent again.
    chain = secrets(await read(call))[WORKLOAD_SECRET].tls_certificate.certificate_chain
    assert chain.inline_bytes == renewed.certificate_chain


async def test_unknown_names_get_nothing_and_are_logged(
    server: SdsServer, stub: Any, authority: CertificateAuthority, events: Events
) -> None:
    server.publish(issue(authority))
    call = await open_stream(stub, server, "file-cert:/etc/certs/cert.pem")
    assert any(
        "names=file-cert:/etc/certs/cert.pem" in line for line in events.named("sds_unknown_secret")
    )
    await call.write(request(WORKLOAD_SECRET, "file-cert:/etc/certs/cert.pem"))
    # The first response on the stream answers the second request, with the known name only.
    assert secrets(await read(call)).keys() == {WORKLOAD_SECRET}


async def test_only_streams_of_changed_secrets_get_a_push(
    server: SdsServer, stub: Any, authority: CertificateAuthority
) -> None:
    server.publish(issue(authority))
    roots = stub.StreamSecrets()
    await roots.write(request(ROOT_SECRET, node=NODE))
    first = await read(roots)
    await roots.write(request(ROOT_SECRET, nonce=first.nonce, version=first.version_info))
    workload = stub.StreamSecrets()
    await workload.write(request(WORKLOAD_SECRET, node=NODE))
    await read(workload)

    server.publish(issue(authority))  # same root: only `default` changed
    await read(workload)
    # Asking for both now: had the root stream been pushed to, that response came first.
    await roots.write(
        request(ROOT_SECRET, WORKLOAD_SECRET, nonce=first.nonce, version=first.version_info)
    )
    both = await read(roots)
    assert secrets(both).keys() == {ROOT_SECRET, WORKLOAD_SECRET}
    assert both.nonce != first.nonce


async def test_fetch_waits_for_the_first_certificate(
    server: SdsServer, stub: Any, authority: CertificateAuthority
) -> None:
    unknown = await stub.FetchSecrets(request("other"), timeout=TIMEOUT_S)
    assert list(unknown.resources) == []
    fetch = asyncio.ensure_future(stub.FetchSecrets(request(WORKLOAD_SECRET, ROOT_SECRET)))
    # Another round trip, so the server has most likely taken the fetch in before publishing;
    # had it answered at once, the answer would hold no secret.
    await stub.FetchSecrets(request("other"), timeout=TIMEOUT_S)
    server.publish(issue(authority))
    response = await asyncio.wait_for(fetch, TIMEOUT_S)
    assert secrets(response).keys() == {ROOT_SECRET, WORKLOAD_SECRET}


async def test_delta_sds_is_unimplemented(stub: Any) -> None:
    call = stub.DeltaSecrets()
    await call.write(discovery_pb2.DeltaDiscoveryRequest(type_url=SECRET_TYPE))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await asyncio.wait_for(call.read(), TIMEOUT_S)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_stop_ends_open_streams_and_removes_the_socket(
    short_dir: Path, authority: CertificateAuthority
) -> None:
    sds = SdsServer(short_dir / "sds.sock", None)
    await sds.start()
    assert stat.S_IMODE(sds.socket_path.stat().st_mode) == 0o600
    async with grpc.aio.insecure_channel(f"unix:{sds.socket_path}") as channel:
        call = sds_pb2_grpc.SecretDiscoveryServiceStub(channel).StreamSecrets()
        await call.write(request(WORKLOAD_SECRET, node=NODE))
        sds.publish(issue(authority))
        await read(call)
        await sds.stop(grace=0.1)
        with pytest.raises(grpc.aio.AioRpcError):
            await asyncio.wait_for(call.read(), TIMEOUT_S)
    assert not sds.socket_path.exists()
    assert sds.stream_count == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the socket to uid 1337")
async def test_the_proxy_user_may_connect(short_dir: Path) -> None:
    short_dir.chmod(0o755)
    sds = SdsServer(short_dir / "sds.sock", ProxyUser())
    await sds.start()
    try:
        info = sds.socket_path.stat()
        assert (info.st_uid, info.st_gid) == (os.geteuid(), 1337)
        assert stat.S_IMODE(info.st_mode) == 0o660
    finally:
        await sds.stop()
